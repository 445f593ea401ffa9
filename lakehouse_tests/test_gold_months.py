"""A month of the feature view computed from its context (about two months of flights) equals the whole-year
computation restricted to that month, on the real flights of January-April 2013 (DST starts 2013-03-10)."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from lakehouse.gold import features as gold
from lakehouse.landing import read_raw_table
from lakehouse.silver.conform import conform
from lakehouse.sources import SOURCES
from lakehouse_tests.helpers import bronze_of

MONTHS = ["1", "2", "3", "4"]


def silver(name: str, raw: pl.DataFrame) -> pl.DataFrame:
    return conform(bronze_of(name, raw), SOURCES[name]).valid


@pytest.fixture(scope="module")
def spring(raw_flights):
    """Silver flights, weather and planes of January-April 2013 (about 110,000 flights)."""
    in_spring = pl.col("month").is_in(MONTHS)
    flights = silver("flights", raw_flights.filter(in_spring))
    weather = silver("weather", read_raw_table("weather").filter(in_spring))
    planes = silver("planes", read_raw_table("planes"))
    return flights, weather, planes


@pytest.fixture(scope="module")
def whole(spring):
    return gold.flight_features(*spring)


@pytest.mark.parametrize("month", [date(2013, 2, 1), date(2013, 3, 1)])
def test_a_month_from_its_context_equals_the_whole_computation(spring, whole, month):
    flights, weather, planes = spring
    start, end = gold.month_bounds(month)
    expected = whole.filter(pl.col("sched_dep_utc").is_between(start, end, closed="left"))
    got = gold.month_features(flights, weather, planes, month)
    assert got.height == expected.height > 20_000
    assert got["flight_date"].dt.month().unique().to_list() == [month.month]
    assert_frame_equal(got.sort("flight_id"), expected.sort("flight_id"))


def test_the_context_is_all_a_month_needs(spring, whole):
    """Flights outside the context are ignored: removing them changes nothing (so reading them is waste)."""
    flights, weather, planes = spring
    month = date(2013, 3, 1)
    lo, hi = gold.month_context(month)
    inside = flights.filter(pl.col("sched_dep_utc").is_between(lo, hi, closed="left"))
    assert inside.height < flights.height * 0.7
    assert_frame_equal(
        gold.month_features(inside, weather, planes, month).sort("flight_id"),
        gold.month_features(flights, weather, planes, month).sort("flight_id"),
    )


def test_the_context_is_not_larger_than_needed(spring):
    """Cutting the context one day shorter changes some features (the lookback is not padding)."""
    flights, weather, planes = spring
    month = date(2013, 3, 1)
    lo, _ = gold.month_context(month)
    start, end = gold.month_bounds(month)
    full = gold.month_features(flights, weather, planes, month)
    cut = flights.filter(pl.col("sched_dep_utc") >= lo + (start - lo) / 31 * 4)  # 4 days less history
    shorter = gold.flight_features(cut, weather, planes).filter(
        pl.col("sched_dep_utc").is_between(start, end, closed="left")
    )
    assert not full.sort("flight_id").equals(shorter.sort("flight_id"))


def test_month_bounds_are_local_months_in_utc():
    start, end = gold.month_bounds(date(2013, 3, 1))
    assert (start.isoformat(), end.isoformat()) == ("2013-03-01T05:00:00+00:00", "2013-04-01T04:00:00+00:00")
    with pytest.raises(ValueError, match="first day"):
        gold.month_bounds(date(2013, 3, 2))


def test_changed_flights_affect_the_span_their_windows_reach(spring):
    flights, _, _ = spring
    march = flights.filter(pl.col("month") == 3)
    lo, hi = gold.affected_span(march)
    assert lo == march["sched_dep_utc"].min() - gold.LOOKAHEAD
    assert hi == march["sched_dep_utc"].max() + gold.LOOKBACK
    assert gold.affected_span(march.clear()) is None
