"""A training reads a window of recent months, not the lake (issue #9): which months, and that the months outside
the window are not read at all (their Delta partitions are not opened)."""

from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable

from lakehouse.ml import training
from lakehouse.ml.registry import data_fingerprint, read_training_split, read_training_window
from lakehouse.ml.training import window_months
from lakehouse.tables import FLIGHT_FEATURES, Lake

MONTHS = [f"2013-{m:02d}" for m in range(1, 7)]


def test_the_window_is_the_newest_training_months_plus_validation_and_test():
    assert window_months(MONTHS, 0) == MONTHS  # 0: every month
    assert window_months(list(reversed(MONTHS)), 2) == ["2013-03", "2013-04", "2013-05", "2013-06"]
    assert window_months(MONTHS, 10) == MONTHS  # a window longer than the lake reads the lake
    with pytest.raises(ValueError, match="train_window_months"):
        window_months(MONTHS, -1)


def six_months(tmp_path: Path) -> tuple[Lake, int]:
    """A feature view of six months, two flights each (listed out of time order), with the columns training reads."""
    lake = Lake(str(tmp_path / "lake"))
    for m in range(1, 7):
        month = date(2013, m, 1)
        frame = pl.DataFrame(
            {
                "flight_id": [f"{m}-a", f"{m}-b"],
                "flight_month": [month, month],
                "flight_date": [date(2013, m, 2), date(2013, m, 1)],
                "sched_dep_utc": [datetime(2013, m, 2, tzinfo=UTC), datetime(2013, m, 1, tzinfo=UTC)],
                "carrier": ["UA", "AA"],
                "origin": ["EWR", "JFK"],
                "dest": ["LAX", "ORD"],
                **{c: pl.Series([None, None], dtype=pl.Float64) for c in training.NUMERIC},  # nullable ones
                "month": [float(m), float(m)],  # within the view's check constraints
                "distance": [100.0, 200.0],
                training.LABEL: pl.Series([m % 2, 1 - m % 2], dtype=pl.Int8),
                "not_read_by_training": ["x", "y"],
            }
        )
        lake.replace_partition(FLIGHT_FEATURES, frame, month, {"silver/flights": 0})
    return lake, lake.version(FLIGHT_FEATURES)


def test_the_split_is_read_by_parts_and_equals_the_split_of_the_window(tmp_path):
    lake, version = six_months(tmp_path)
    for window in (0, 2):
        rows, months = read_training_window(lake, version, window)
        split, read = read_training_split(lake, version, window)
        assert read == months
        expected = training.time_split(rows)
        for part in ("train", "valid", "test"):
            assert getattr(split, part).equals(getattr(expected, part)), part
        assert (split.train_months, split.valid_month, split.test_month) == (
            expected.train_months,
            expected.valid_month,
            expected.test_month,
        )
        # the fingerprint of the parts is that of the window (the idempotency check sees no difference)
        assert data_fingerprint([split.train, split.valid, split.test]) == data_fingerprint(rows)
    assert "not_read_by_training" not in split.train.columns  # only the columns training needs are read
    assert data_fingerprint([split.train, split.valid]) != data_fingerprint(rows)


def test_the_window_reads_only_its_partitions(tmp_path):
    lake, version = six_months(tmp_path)
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
