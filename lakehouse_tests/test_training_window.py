"""A training reads a window of recent months, not the lake (issue #9): which months, and that the months outside
the window are not read at all (their Delta partitions are not opened)."""

from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable

from lakehouse.ml.registry import read_training_window
from lakehouse.ml.training import window_months
from lakehouse.tables import FLIGHT_FEATURES, Lake

MONTHS = [f"2013-{m:02d}" for m in range(1, 7)]


def test_the_window_is_the_newest_training_months_plus_validation_and_test():
    assert window_months(MONTHS, 0) == MONTHS  # 0: every month
    assert window_months(list(reversed(MONTHS)), 2) == ["2013-03", "2013-04", "2013-05", "2013-06"]
    assert window_months(MONTHS, 10) == MONTHS  # a window longer than the lake reads the lake
    with pytest.raises(ValueError, match="train_window_months"):
        window_months(MONTHS, -1)


def test_the_window_reads_only_its_partitions(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    for m in range(1, 7):
        month = date(2013, m, 1)
        frame = pl.DataFrame(
            {
                "flight_id": [f"{m}-a", f"{m}-b"],
                "flight_month": [month, month],
                "sched_dep_utc": [datetime(2013, m, 2, tzinfo=UTC), datetime(2013, m, 1, tzinfo=UTC)],
            }
        )
        lake.replace_partition(FLIGHT_FEATURES, frame, month, {"silver/flights": 0})
    version = lake.version(FLIGHT_FEATURES)
    # remove the data files of January-March: a read that opened them would fail
    dt = DeltaTable(lake.location(FLIGHT_FEATURES))
    for path in pl.DataFrame(dt.get_add_actions(flatten=True)).get_column("path"):
        if "flight_month=2013-0" in path and path.split("flight_month=2013-0")[1][0] in "123":
            (Path(lake.location(FLIGHT_FEATURES)) / path).unlink()
    rows, months = read_training_window(lake, version, 1)
    assert months == ["2013-04", "2013-05", "2013-06"]
    assert rows.get_column("flight_id").to_list() == ["4-b", "4-a", "5-b", "5-a", "6-b", "6-a"]  # time order
    with pytest.raises(Exception):  # noqa: B017  the whole lake would need the removed files
        read_training_window(lake, version, 0)
