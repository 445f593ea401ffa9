"""Point-in-time properties of the gold feature view, checked on real flights (2013-01-01..04).

The rule (:mod:`lakehouse.gold.features`): a feature of flight f may use f's schedule facts and what was known
about other flights and the world strictly before f's scheduled departure ``s``, never f's own outcome. An
outcome of flight g becomes known at its actual departure (``sched_dep_utc + dep_delay``) for its departure, at
its scheduled departure for a cancellation, at ``actual departure + air_time + ARRIVAL_KNOWN_AFTER`` for its
arrival (``DIVERSION_KNOWN_AFTER`` after departure for a diversion); a weather row of hour H is complete at H:51.

Each property rewrites outcomes (or weather) and recomputes the whole feature view, so it would catch a leak in
any feature, present or future.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from lakehouse.gold import features as gold
from lakehouse.landing import read_raw_table
from lakehouse.silver.conform import LOCAL_TZ, conform
from lakehouse.sources import SOURCES
from lakehouse_tests.helpers import bronze_of

DAYS = ["1", "2", "3", "4"]
KINDS = ["early", "delay", "cancel", "arrive_late", "divert"]
NEVER = datetime(2100, 1, 1, tzinfo=UTC)


def silver(name: str, raw: pl.DataFrame) -> pl.DataFrame:
    return conform(bronze_of(name, raw), SOURCES[name]).valid


@pytest.fixture(scope="module")
def days(raw_flights):
    """Silver flights, weather and planes of 2013-01-01..04 (about 3,500 flights)."""
    january = (pl.col("month") == "1") & pl.col("day").is_in(DAYS)
    flights = silver("flights", raw_flights.filter(january))
    weather = silver("weather", read_raw_table("weather").filter(january))
    planes = silver("planes", read_raw_table("planes"))
    return flights, weather, planes


def feature_columns(features: pl.DataFrame) -> list[str]:
    return [c for c in features.columns if c not in gold.LABEL_COLUMNS]


def hhmm(minutes: int) -> int:
    return (minutes // 60 % 24) * 100 + minutes % 60


def rewrite_outcome(flights: pl.DataFrame, flight_id: str, kind: str, rng: np.random.Generator) -> pl.DataFrame:
    """``flights`` with the outcome of one flight rewritten (consistently: local ``dep_time``/``arr_time`` follow
    the delays): ``early`` pushes back up to 40 min early, ``delay`` departs 30-300 min late, ``cancel`` never
    departs, ``arrive_late`` keeps the departure and arrives 40-240 min later, ``divert`` never arrives."""
    row = flights.filter(pl.col("flight_id") == flight_id).row(0, named=True)
    dep, air = row["dep_delay"], row["air_time"] or max(30, row["distance"] // 8)
    arr = row["arr_delay"] if row["arr_delay"] is not None else dep
    if kind == "early":
        dep = -int(rng.integers(1, 41))
        arr = dep - int(rng.integers(0, 20))
    elif kind == "delay":
        dep = (dep or 0) + int(rng.integers(30, 301))
        arr = dep + int(rng.integers(-20, 31))
    elif kind == "arrive_late":
        dep = dep if dep is not None else int(rng.integers(0, 60))
        arr = (arr if arr is not None else dep) + int(rng.integers(40, 241))
        air = air + int(rng.integers(10, 61))
    elif kind == "divert":
        dep = dep if dep is not None else int(rng.integers(0, 60))
        arr, air = None, None
    elif kind == "cancel":
        dep, arr, air = None, None, None
    else:
        raise ValueError(kind)
    sched = row["sched_dep_time"] // 100 * 60 + row["sched_dep_time"] % 100
    sched_arr = row["sched_arr_time"] // 100 * 60 + row["sched_arr_time"] % 100
    new = {
        "dep_delay": dep,
        "dep_time": None if dep is None else hhmm(sched + dep),
        "arr_delay": arr,
        "arr_time": None if arr is None else hhmm(sched_arr + arr),
        "air_time": air,
    }
    assert set(new) == set(gold.OUTCOME_COLUMNS)
    me = pl.col("flight_id") == flight_id
    return flights.with_columns(
        pl.when(me).then(pl.lit(v, dtype=flights.schema[c])).otherwise(pl.col(c)).alias(c) for c, v in new.items()
    )


def known_at(row: dict) -> tuple[datetime | None, datetime | None]:
    """(departure facts, arrival facts) known at, per the rule of the module docstring (None: never)."""
    if row["dep_delay"] is None:
        return row["sched_dep_utc"], None
    departed = row["sched_dep_utc"] + timedelta(minutes=row["dep_delay"])
    if row["air_time"] is None or row["arr_delay"] is None:
        return departed, departed + gold.DIVERSION_KNOWN_AFTER
    return departed, departed + timedelta(minutes=row["air_time"]) + gold.ARRIVAL_KNOWN_AFTER


def earliest_change(before: dict, after: dict) -> datetime:
    """The first instant at which the two versions of one flight's outcome can be told apart."""
    (dep0, arr0), (dep1, arr1) = known_at(before), known_at(after)
    if (before["dep_delay"], dep0) != (after["dep_delay"], dep1):
        return min(t for t in (dep0, dep1) if t is not None)
    return min((t for t in (arr0, arr1) if t is not None), default=NEVER)


def test_a_flights_features_do_not_depend_on_its_own_outcome(days):
    """Own-outcome invariance: rewrite one flight's outcome at a time (depart early or late, cancel, arrive late,
    divert); none of that flight's features changes."""
    flights, weather, planes = days
    base = gold.flight_features(flights, weather, planes)
    cols = feature_columns(base)
    rng = np.random.default_rng(12)
    sample = flights.get_column("flight_id").sample(25, seed=12).to_list()
    for i, flight_id in enumerate(sample):
        kind = KINDS[i % len(KINDS)]
        after = gold.flight_features(rewrite_outcome(flights, flight_id, kind, rng), weather, planes)
        mine = lambda f: f.filter(pl.col("flight_id") == flight_id).select(cols)  # noqa: E731, B023
        assert mine(after).equals(mine(base)), f"{kind} of {flight_id} changed its own features"


def test_no_feature_changes_before_an_outcome_is_known(days):
    """Information time: rewrite flight g's outcome; no feature of any flight scheduled at or before the first
    instant the rewritten outcome could be told apart from the original (a departure when it happens, a
    cancellation at the scheduled departure, an arrival ARRIVAL_KNOWN_AFTER after departure + air time) changes.

    Besides random flights, g includes evening flights whose arrival is known only after 06:00 the next morning,
    when the next day's first flights have already left: no feature of those may see that arrival."""
    flights, weather, planes = days
    base = gold.flight_features(flights, weather, planes)
    cols = feature_columns(base)
    rng = np.random.default_rng(7)
    next_morning = (pl.col("flight_date") + timedelta(days=1)).cast(pl.Datetime) + timedelta(hours=6)
    arrival_known = gold.arrival_known_at().dt.convert_time_zone(LOCAL_TZ).dt.replace_time_zone(None)
    overnight = flights.filter((arrival_known >= next_morning) & (pl.col("day") < int(DAYS[-1])))
    sample = [
        *[(g, ["arrive_late", "divert"][i % 2]) for i, g in enumerate(overnight["flight_id"].sample(10, seed=7))],
        *[(g, KINDS[i % len(KINDS)]) for i, g in enumerate(flights["flight_id"].sample(15, seed=8))],
    ]
    checked = 0
    for flight_id, kind in sample:
        rewritten = rewrite_outcome(flights, flight_id, kind, rng)
        before = flights.filter(pl.col("flight_id") == flight_id).row(0, named=True)
        after_row = rewritten.filter(pl.col("flight_id") == flight_id).row(0, named=True)
        cutoff = earliest_change(before, after_row)
        after = gold.flight_features(rewritten, weather, planes)
        earlier = lambda f: f.filter(pl.col("sched_dep_utc") <= cutoff).select(cols).sort("flight_id")  # noqa: E731, B023
        assert earlier(after).equals(earlier(base)), f"{kind} of {flight_id} (known {cutoff}) changed earlier features"
        checked += earlier(base).height
    assert checked > 10_000  # the property was checked on many flights, not vacuously


def test_no_feature_uses_weather_recorded_after_the_scheduled_departure(days):
    """A weather row of hour H holds the station's records of minutes 0-51 of H; rewrite every row not complete
    by a cutoff c (H + 51 min >= c); no feature of a flight scheduled at or before c changes."""
    flights, weather, planes = days
    base = gold.flight_features(flights, weather, planes)
    cols = feature_columns(base)
    start = flights.get_column("sched_dep_utc").min()
    rng = np.random.default_rng(3)
    for minutes in sorted(rng.integers(6 * 60, 4 * 24 * 60, size=6)):
        cutoff = start + timedelta(minutes=int(minutes))
        late = pl.col("time_hour") + timedelta(minutes=51) >= cutoff
        noisy = weather.with_columns(
            pl.when(late).then(pl.col(c) + 7).otherwise(pl.col(c)).alias(c) for c in ("temp", "precip", "visib")
        )
        after = gold.flight_features(flights, noisy, planes)
        earlier = lambda f: f.filter(pl.col("sched_dep_utc") <= cutoff).select(cols).sort("flight_id")  # noqa: E731, B023
        assert earlier(after).equals(earlier(base)), f"weather after {cutoff} leaked"
