"""Gold transforms: labels and point-in-time correctness (no feature sees the flight's own day outcome)."""

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from lakehouse.gold import features as gold
from lakehouse.landing import read_raw_table
from lakehouse.silver.conform import conform
from lakehouse.sources import SOURCES
from lakehouse_tests.helpers import bronze_of


def silver(name: str, raw: pl.DataFrame) -> pl.DataFrame:
    return conform(bronze_of(name, raw), SOURCES[name]).valid


@pytest.fixture(scope="module")
def week(raw_flights):
    """Silver flights, weather and planes for 2013-01-01..07."""
    days = [str(d) for d in range(1, 8)]
    flights = silver("flights", raw_flights.filter((pl.col("month") == "1") & pl.col("day").is_in(days)))
    weather = silver("weather", read_raw_table("weather").filter((pl.col("month") == "1") & pl.col("day").is_in(days)))
    planes = silver("planes", read_raw_table("planes"))
    return flights, weather, planes


def test_labels_count_cancelled_and_diverted_as_late(week):
    labelled = gold.label(week[0])
    by = dict(labelled.group_by("outcome").agg(pl.col("is_late").unique()).iter_rows())
    assert by["cancelled"] == [1] and by["diverted"] == [1] and by["late"] == [1] and by["on_time"] == [0]
    assert labelled.filter((pl.col("outcome") == "late") & (pl.col("arr_delay") <= 15)).height == 0


def test_features_do_not_change_when_the_same_day_outcomes_change(week):
    flights, weather, planes = week
    base = gold.flight_features(flights, weather, planes)
    day = date(2013, 1, 5)
    # Rewrite every outcome of Jan 5 *after* each flight's departure time would have been known: arrivals.
    tampered = flights.with_columns(
        pl.when(pl.col("flight_date") == day).then(pl.lit(600)).otherwise(pl.col("arr_delay")).alias("arr_delay")
    )
    after = gold.flight_features(tampered, weather, planes)
    cols = [c for c in base.columns if c not in ("outcome", "is_late")]
    same_day = lambda f: f.filter(pl.col("flight_date") <= day).select(cols).sort("flight_id")  # noqa: E731
    assert same_day(base).equals(same_day(after))
    # ...while the next days' rolling rates do see them.
    nxt = lambda f: f.filter(pl.col("flight_date") == day + timedelta(days=1)).sort("flight_id")  # noqa: E731
    assert not nxt(base).get_column("carrier_late_rate_7d").equals(nxt(after).get_column("carrier_late_rate_7d"))


def test_rolling_rates_use_strictly_earlier_days():
    d = [date(2013, 1, 1), date(2013, 1, 2), date(2013, 1, 2), date(2013, 1, 9)]
    labelled = pl.DataFrame({"carrier": ["AA"] * 4, "flight_date": d, "is_late": [1, 0, 0, 1]})
    rates = gold.rolling_late_rates(labelled, ["carrier"], "carrier", days=(7,)).sort("flight_date")
    # Jan 1: nothing before; Jan 2: Jan 1 only (its own day excluded); Jan 9: window Jan 2..8.
    assert rates.get_column("carrier_late_rate_7d").to_list() == [None, 1.0, 0.0]
    assert rates.get_column("carrier_flights_7d").to_list() == [0, 1, 2]


def test_recent_departures_count_only_departures_strictly_before_schedule():
    t = datetime(2013, 1, 1, 12, tzinfo=UTC)
    flights = pl.DataFrame(
        {
            "flight_id": ["a", "b", "c", "d"],
            "origin": ["EWR"] * 4,
            "sched_dep_utc": [t - timedelta(minutes=90), t - timedelta(minutes=30), t, t + timedelta(minutes=10)],
            "dep_delay": [
                10,
                40,
                0,
                None,
            ],  # a departs 10:40, b departs 12:10 (after c's schedule, exactly at d's), c 12:00, d cancelled
        }
    )
    out = gold.recent_departures(flights, "origin", "origin").sort("flight_id")
    counts = dict(zip(out["flight_id"], out["origin_departed_2h"], strict=True))
    assert counts == {"a": 0, "b": 1, "c": 1, "d": 2}
    delays = dict(zip(out["flight_id"], out["origin_mean_dep_delay_2h"], strict=True))
    assert delays["c"] == 10.0 and delays["d"] == 5.0 and delays["a"] is None


def test_weather_is_the_latest_observation_at_or_before_departure(week):
    flights, weather, planes = week
    features = gold.flight_features(flights, weather, planes)
    row = features.filter(pl.col("origin") == "EWR").row(100, named=True)
    obs = weather.filter((pl.col("origin") == "EWR") & (pl.col("time_hour") <= row["sched_dep_utc"])).sort("time_hour")
    assert row["temp"] == obs.get_column("temp")[-1]
    assert features.height == flights.height and features.get_column("flight_id").n_unique() == features.height


def test_route_daily_delays_adds_up_to_the_flights(week):
    agg = gold.route_daily_delays(week[0])
    assert agg.get_column("flights").sum() == week[0].height
    assert agg.select(pl.col("late_share").is_between(0, 1).all()).item()
