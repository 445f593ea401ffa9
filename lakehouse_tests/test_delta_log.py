"""Every table the lake creates checkpoints its own Delta log and leaves the log's clean-up to maintenance.

Opening a table replays the JSON commits since its last checkpoint: without checkpoints a write's cost grows with
the table's commits, which breaks "a month costs O(that month)". The checkpoints delta-rs writes after a commit
would also delete expired JSON commits, and with them time travel to the versions models record
(:data:`lakehouse.storage.TABLE_PROPERTIES`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from deltalake import write_deltalake
from deltalake.exceptions import TableNotFoundError

from lakehouse import storage
from lakehouse.maintenance.housekeeping import maintain
from lakehouse.tables import Lake, Table

MONTH = date(2013, 1, 1)
WRITES: dict[str, Callable[[str, pl.DataFrame], object]] = {
    "create": lambda p, f: storage.create(p, f, checks={"id_positive": "id > 0"}),
    "append": lambda p, f: storage.append(p, f),
    "overwrite": lambda p, f: storage.overwrite(p, f),
    "upsert": lambda p, f: storage.upsert(p, f, ["id"]),
    "replace_partition": lambda p, f: storage.replace_partition(
        p, f, column="month", value=MONTH, partition_by=["month"], checks={"id_positive": "id > 0"}
    ),
}


@pytest.mark.parametrize("first_write", WRITES)
def test_a_new_table_checkpoints_its_log_and_keeps_old_commits_for_time_travel(tmp_path: Path, first_write: str):
    location = str(tmp_path / "t")
    WRITES[first_write](location, pl.DataFrame({"month": [MONTH], "id": [1], "x": [0.0]}))
    first = storage.open_table(location)
    written, rows = first.version(), (0 if first_write == "create" else 1)
    assert first.metadata().configuration.items() >= storage.TABLE_PROPERTIES.items()
    # every commit is past its retention at once: a log clean-up at the next checkpoint would delete them all
    first.alter.set_table_properties({"delta.logRetentionDuration": "interval 0 seconds"})
    for i in range(12):
        storage.append(location, pl.DataFrame({"month": [MONTH], "id": [i + 2], "x": [float(i)]}))

    log = tmp_path / "t" / "_delta_log"
    assert sorted(p.name for p in log.glob("*.checkpoint.parquet")), "no checkpoint after 12 more commits"
    assert (log / f"{0:020d}.json").exists()
    assert storage.scan(location, version=0).collect().height == (0 if written else rows)
    assert storage.scan(location, version=written).collect().height == rows
    assert storage.scan(location).collect().height == 12 + rows


def test_maintenance_gives_an_older_table_the_properties_without_changing_its_data_version(tmp_path: Path):
    lake, table = Lake(str(tmp_path / "lake")), Table("ml", "older", "created by an earlier version")
    location = lake.location(table)
    Path(location).parent.mkdir(parents=True)
    write_deltalake(location, pl.DataFrame({"id": [1, 2]}))  # no configuration: what earlier versions created
    assert not storage.TABLE_PROPERTIES.items() <= storage.open_table(location).metadata().configuration.items()

    maintain(lake, table)
    assert storage.open_table(location).metadata().configuration.items() >= storage.TABLE_PROPERTIES.items()
    assert lake.data_version(table) == 0
    version = lake.version(table)
    maintain(lake, table)  # has them now: no second commit
    assert lake.version(table) == version


def test_a_version_whose_commits_were_cleaned_up_is_refused_not_read_as_a_missing_table(tmp_path: Path):
    lake, table = Lake(str(tmp_path / "lake")), Table("silver", "kept", "time travel past the log clean-up")
    location = lake.location(table)
    storage.append(location, pl.DataFrame({"id": [1]}))
    storage.open_table(location).alter.set_table_properties({"delta.logRetentionDuration": "interval 0 seconds"})
    for i in range(10):  # past a checkpoint (every 10 commits)
        storage.append(location, pl.DataFrame({"id": [i + 2]}))
    storage.open_table(location).cleanup_metadata()  # deletes the JSON commits before the checkpoint
    assert not (Path(location) / "_delta_log" / f"{0:020d}.json").exists()
    assert lake.read(table).height == 11
    with pytest.raises(TableNotFoundError):
        lake.read(table, version=0)
    with pytest.raises(TableNotFoundError):
        lake.partitions(table, version=0)
    assert lake.read(Table("silver", "absent", "never written"), version=0).is_empty()  # not there at all: empty
