"""Which months the champion scores (lakehouse.ml.scoring), on real Delta tables written the way the assets write
them (one replace-where commit per month, recording what it read)."""

from datetime import date

import polars as pl

from lakehouse.ml.scoring import CHAMPION_INPUT, FEATURES_INPUT, scoring_months
from lakehouse.tables import FLIGHT_FEATURES, PREDICTIONS, Lake

JAN, FEB, MAR = date(2013, 1, 1), date(2013, 2, 1), date(2013, 3, 1)
YEAR = [date(2013, m, 1) for m in range(1, 13)]


def month_rows(month: date, n: int = 3) -> pl.DataFrame:
    return pl.DataFrame(
        {"flight_id": [f"{month:%Y%m}-{i}" for i in range(n)], "flight_month": [month] * n},
        schema={"flight_id": pl.String, "flight_month": pl.Date},
    )


def build_features(lake: Lake, month: date) -> None:
    lake.replace_partition(FLIGHT_FEATURES, month_rows(month), month, {"silver/flights": 0})


def score(lake: Lake, month: date, champion: int) -> None:
    inputs = {FEATURES_INPUT: lake.version(FLIGHT_FEATURES), CHAMPION_INPUT: champion}
    lake.replace_partition(PREDICTIONS, month_rows(month), month, inputs)


def test_new_months_rewritten_months_and_the_newest_month_after_a_new_champion(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    assert scoring_months(lake, 1, YEAR) == []  # no feature view yet
    build_features(lake, JAN)
    build_features(lake, FEB)
    assert scoring_months(lake, None, YEAR) == []  # no champion: nothing can score
    assert scoring_months(lake, 1, YEAR) == [JAN, FEB]  # the first champion scores every month once
    score(lake, JAN, 1)
    score(lake, FEB, 1)
    assert scoring_months(lake, 1, YEAR) == []  # nothing new: nothing to do

    build_features(lake, MAR)  # a new month arrives
    assert scoring_months(lake, 1, YEAR) == [MAR]
    score(lake, MAR, 1)
    assert scoring_months(lake, 2, YEAR) == [MAR]  # a new champion re-scores the newest month only
    score(lake, MAR, 2)
    assert scoring_months(lake, 2, YEAR) == []

    build_features(lake, JAN)  # a correction of January rewrites its features after they were scored
    assert scoring_months(lake, 2, YEAR) == [JAN]
    assert scoring_months(lake, 2, [FEB, MAR]) == []  # only months of the partitions definition
    score(lake, JAN, 2)
    assert scoring_months(lake, 2, YEAR) == []
    by_month = dict(lake.read(PREDICTIONS).group_by("flight_month").agg(pl.len()).sort("flight_month").iter_rows())
    assert by_month == {JAN: 3, FEB: 3, MAR: 3}  # each rewrite replaced its month, nothing doubled
