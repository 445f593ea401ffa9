"""The lake on object storage: every Delta write pattern of :class:`lakehouse.tables.Lake` on a real S3-compatible
server (moto on loopback, lakehouse_tests/object_store.py), reached only through the ``AWS_*`` variables: append
with application transactions, MERGE upserts, time travel, replace-where per partition, CHECK constraints,
maintenance. Real flights rows throughout; every table's objects are checked to be in the bucket, none on disk.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import obstore
import polars as pl
import pytest

from lakehouse.maintenance.housekeeping import maintain
from lakehouse.repair import RepairUnsupported, find_damage, repair
from lakehouse.silver.conform import conform
from lakehouse.sources import SOURCES
from lakehouse.storage import ConstraintViolation
from lakehouse.tables import BRONZE, SILVER, Lake, Table
from lakehouse_tests.helpers import bronze_of
from lakehouse_tests.object_store import S3Server, list_keys

FLIGHTS = SILVER["flights"]
LAKEHOUSE = str(Path(sys.executable).with_name("lakehouse"))


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> S3Server:
    """The ``AWS_*`` variables of the test server set for this test (and the working directory a temporary one, so
    a location silently taken as a local path would show up as a folder there)."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    return s3_server


@pytest.fixture
def lake(s3_env: S3Server, s3_bucket: str, tmp_path: Path) -> Iterator[Lake]:
    yield Lake(f"s3://{s3_bucket}/lake")
    assert list(tmp_path.iterdir()) == []  # nothing went to a local folder (e.g. one named "s3:")


def day_rows(raw_flights: pl.DataFrame, month: int, day: int) -> pl.DataFrame:
    return raw_flights.filter((pl.col("month") == str(month)) & (pl.col("day") == str(day)))


def silver_rows(raw_flights: pl.DataFrame, month: int, day: int) -> pl.DataFrame:
    batch = conform(bronze_of("flights", day_rows(raw_flights, month, day)), SOURCES["flights"])
    assert batch.quarantine.is_empty()
    return batch.valid


def test_appends_record_their_progress_atomically_on_s3(lake, s3_env, s3_bucket, raw_flights):
    bronze = BRONZE["flights"]
    first, second = (bronze_of("flights", day_rows(raw_flights, 1, d), f"d{d}.csv", seq=d) for d in (1, 2))
    assert lake.consumed_version(bronze) == -1
    lake.append(bronze, first, progress=1)
    lake.append(bronze, second, progress=2)
    again = Lake(lake.root)  # a fresh reader sees what the writer committed
    assert again.consumed_version(bronze) == 2
    assert again.version(bronze) == 1
    assert again.read(bronze).height == first.height + second.height
    assert again.scan(bronze, version=0).select(pl.len()).collect().item() == first.height
    keys = list_keys(s3_env, s3_bucket, "lake/bronze/flights/")
    assert "lake/bronze/flights/_delta_log/00000000000000000001.json" in keys
    assert sum(k.endswith(".parquet") for k in keys) == 2


def test_merge_upserts_and_time_travel_on_s3(lake, raw_flights):
    jan1 = silver_rows(raw_flights, 1, 1)
    lake.merge(FLIGHTS, jan1, progress=1, changed={"months": ["2013-01"]})
    v_first = lake.version(FLIGHTS)
    # a correction of 10 rows of Jan 1 (a later dep_delay) and the new rows of Jan 2, in one MERGE
    corrected = jan1.head(10).with_columns((pl.col("dep_delay") + 1).alias("dep_delay"))
    metrics = lake.merge(FLIGHTS, pl.concat([corrected, silver_rows(raw_flights, 1, 2)]), progress=2)
    assert metrics["num_target_rows_updated"] == 10
    assert metrics["num_target_rows_inserted"] == silver_rows(raw_flights, 1, 2).height
    now = lake.read(FLIGHTS)
    then = lake.read(FLIGHTS, version=v_first)  # time travel
    assert then.height == jan1.height
    assert now.height == jan1.height + silver_rows(raw_flights, 1, 2).height
    ids = corrected.get_column("flight_id")
    delay = {r["flight_id"]: r["dep_delay"] for r in now.filter(pl.col("flight_id").is_in(ids)).iter_rows(named=True)}
    old = {r["flight_id"]: r["dep_delay"] for r in then.filter(pl.col("flight_id").is_in(ids)).iter_rows(named=True)}
    assert all(delay[k] == old[k] + 1 for k in ids if old[k] is not None)
    assert lake.consumed_version(FLIGHTS) == 2
    assert [v for v, _ in lake.changes_since(FLIGHTS, v_first - 1)] == [v_first + 1, v_first]
    assert lake.changes_since(FLIGHTS, v_first)[0][1] is None  # the second MERGE recorded no `changed`
    assert {p["month"] for p in lake.partitions(FLIGHTS)} == {"1"}


def test_check_constraints_refuse_bad_rows_on_s3(lake, raw_flights):
    good = silver_rows(raw_flights, 2, 1)
    lake.merge(FLIGHTS, good)
    assert "distance_gt_0" in lake.constraints(FLIGHTS)
    version = lake.version(FLIGHTS)
    bad = good.head(3).with_columns(pl.lit(-5.0).cast(good.schema["distance"]).alias("distance"))
    with pytest.raises(ConstraintViolation, match=r"distance_gt_0 \(3 rows\)"):
        lake.merge(FLIGHTS, bad)
    assert lake.version(FLIGHTS) == version  # nothing committed
    assert lake.read(FLIGHTS).height == good.height


def test_replace_partition_rewrites_one_month_on_s3(lake, raw_flights):
    months = Table("gold", "months_probe", "test table", partition_by=("flight_month",))

    def month(m: int, day: int) -> pl.DataFrame:
        rows = day_rows(raw_flights, m, day).select("carrier", "flight", "origin", "dest")
        return rows.with_columns(pl.lit(date(2013, m, 1)).alias("flight_month"))

    versions = [
        lake.replace_partition(months, month(1, 1), date(2013, 1, 1), {"silver/flights": 3}),
        lake.replace_partition(months, month(2, 1), date(2013, 2, 1), {"silver/flights": 4}),
        lake.replace_partition(months, month(1, 5), date(2013, 1, 1), {"silver/flights": 5}),
    ]
    assert versions == [0, 1, 2] and lake.version(months) == 2  # each returns its own commit's version
    rows = lake.read(months).group_by("flight_month").len().sort("flight_month")
    assert rows.rows() == [(date(2013, 1, 1), month(1, 5).height), (date(2013, 2, 1), month(2, 1).height)]
    assert lake.partitions_built(months) == {
        date(2013, 1, 1): {"silver/flights": 5},
        date(2013, 2, 1): {"silver/flights": 4},
    }


def test_maintenance_compacts_and_vacuums_on_s3(lake, s3_env, s3_bucket, raw_flights):
    bronze = BRONZE["flights"]
    for d in (1, 2, 3):
        lake.append(bronze, bronze_of("flights", day_rows(raw_flights, 1, d), f"d{d}.csv", seq=d), progress=d)
    report = maintain(lake, bronze, retention_hours=0)
    assert (report.before.files, report.after.files) == (3, 1)
    assert report.after.disk_files is None  # an object store's files are not counted here
    assert lake.read(bronze).height == sum(day_rows(raw_flights, 1, d).height for d in (1, 2, 3))
    assert lake.consumed_version(bronze) == 3
    keys = list_keys(s3_env, s3_bucket, "lake/bronze/flights/")
    parquet = [k for k in keys if k.endswith(".parquet") and "/_delta_log/" not in k]
    assert len(parquet) == 1  # vacuumed: the three small files are gone from the bucket


def test_damage_is_found_on_s3_and_repair_refuses_to_move_tables(lake, s3_env, s3_bucket, raw_flights):
    bronze = BRONZE["flights"]
    for d in (1, 2):
        lake.append(bronze, bronze_of("flights", day_rows(raw_flights, 1, d), f"d{d}.csv", seq=d), progress=d)
    assert lake.damage(bronze) == []
    store = s3_env.store(s3_bucket)
    data = sorted(k for k in list_keys(s3_env, s3_bucket, "lake/bronze/flights/") if k.endswith(".parquet"))
    truncated, deleted = data
    obstore.put(store, truncated, bytes(obstore.get(store, truncated).bytes())[:100])
    obstore.delete(store, deleted)
    problems = sorted(lake.damage(bronze))
    assert len(problems) == 2
    assert problems[0].startswith(f"s3://{s3_bucket}/{truncated} has 100 bytes, the Delta log recorded ")
    assert problems[0].endswith("(truncated or overwritten)")
    assert problems[1] == f"s3://{s3_bucket}/{deleted} is missing"
    damage = find_damage(lake)
    assert [d.table for d in damage] == [bronze]
    before = list_keys(s3_env, s3_bucket)
    with pytest.raises(RepairUnsupported, match="bronze/flights would be moved aside"):
        repair(lake, damage)
    assert list_keys(s3_env, s3_bucket) == before  # nothing changed


@pytest.mark.slow  # three `lakehouse` processes, ~8 s each
def test_summary_reads_an_s3_lake_and_repair_refuses_in_one_line(
    lake, s3_env, s3_bucket, raw_flights, tmp_path_factory
):
    bronze = BRONZE["flights"]
    lake.append(bronze, bronze_of("flights", day_rows(raw_flights, 1, 1)), progress=1)
    data = tmp_path_factory.mktemp("data")  # Dagster's and MLflow's folder; the lake is on S3
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "DAGSTER_"))}
    env.update(LAKEHOUSE_DATA_DIR=str(data), LAKEHOUSE_LAKE_DIR=lake.root, LAKEHOUSE_LANDING_DIR=f"{lake.root}-in")

    def lakehouse(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([LAKEHOUSE, *args], env=env, capture_output=True, text=True, timeout=120, check=False)

    summary = lakehouse("summary")
    assert summary.returncode == 0, summary.stderr
    assert f"Lake: {lake.root}" in summary.stdout
    rows = day_rows(raw_flights, 1, 1).height
    assert any(line.split() == ["bronze/flights", f"{rows:,}", "0"] for line in summary.stdout.splitlines())
    assert "Rejected files: 0" in summary.stdout

    (key,) = [k for k in list_keys(s3_env, s3_bucket, "lake/bronze/flights/") if k.endswith(".parquet")]
    obstore.delete(s3_env.store(s3_bucket), key)
    damaged = lakehouse("summary")
    assert damaged.returncode == 1 and f"bronze/flights                          DAMAGED: s3://{s3_bucket}/{key}" in (
        damaged.stdout
    )
    repaired = lakehouse("repair")
    assert repaired.returncode == 1
    assert repaired.stdout.splitlines() == [f"bronze/flights is damaged: s3://{s3_bucket}/{key} is missing"]
    (line,) = repaired.stderr.splitlines()
    assert line.startswith("lakehouse: nothing repaired: bronze/flights would be moved aside") and lake.root in line
    assert not (data / "lake").exists() and not (data / "landing").exists()
