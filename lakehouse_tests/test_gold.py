"""Gold transforms: labels, the windows over other flights, rotation, weather timing (the point-in-time
properties on real data are in test_point_in_time.py)."""

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from lakehouse.gold import features as gold
from lakehouse.landing import read_raw_table
from lakehouse.ml import training
from lakehouse.silver.conform import conform
from lakehouse.sources import SOURCES
from lakehouse_tests.helpers import bronze_of

T = datetime(2013, 1, 1, 12, tzinfo=UTC)


def silver(name: str, raw: pl.DataFrame) -> pl.DataFrame:
    return conform(bronze_of(name, raw), SOURCES[name]).valid


def at(minutes: int) -> datetime:
    return T + timedelta(minutes=minutes)


def by_id(frame: pl.DataFrame, column: str) -> dict:
    return dict(zip(frame["flight_id"], frame[column], strict=True))


@pytest.fixture(scope="module")
def week(raw_flights):
    """Silver flights, weather and planes for 2013-01-01..07."""
    days = [str(d) for d in range(1, 8)]
    flights = silver("flights", raw_flights.filter((pl.col("month") == "1") & pl.col("day").is_in(days)))
    weather = silver("weather", read_raw_table("weather").filter((pl.col("month") == "1") & pl.col("day").is_in(days)))
    planes = silver("planes", read_raw_table("planes"))
    return flights, weather, planes


@pytest.fixture(scope="module")
def features(week):
    return gold.flight_features(*week)


def test_labels_count_cancelled_and_diverted_as_late(week):
    labelled = gold.label(week[0])
    by = dict(labelled.group_by("outcome").agg(pl.col("is_late").unique()).iter_rows())
    assert by["cancelled"] == [1] and by["diverted"] == [1] and by["late"] == [1] and by["on_time"] == [0]
    assert labelled.filter((pl.col("outcome") == "late") & (pl.col("arr_delay") <= 15)).height == 0


def test_recent_departures_count_other_flights_departed_strictly_before_schedule():
    flights = pl.DataFrame(
        {
            "flight_id": ["a", "b", "c", "d", "e"],
            "origin": ["EWR"] * 5,
            "sched_dep_utc": [at(-90), at(-30), at(0), at(10), at(20)],
            # a departs 10:40, b 12:10 (after c's schedule, exactly at d's), c 12:00, d cancelled,
            # e pushes back 30 min early at 11:50: inside its own window, but never counted by itself
            "dep_delay": [10, 40, 0, None, -30],
        }
    )
    out = gold.recent_departures(flights, "origin", "origin")
    # e's own departure (11:50) lies in its window [10:20, 12:20) but is not counted; c and d do see it
    assert by_id(out, "origin_departed_2h") == {"a": 0, "b": 1, "c": 2, "d": 3, "e": 3}
    delays = by_id(out, "origin_mean_dep_delay_2h")
    assert delays["a"] is None and delays["b"] == 10.0 and delays["c"] == -10.0
    assert delays["d"] == pytest.approx(-20 / 3) and delays["e"] == pytest.approx(50 / 3)


def test_trailing_sums_are_exact_with_ties_and_exclude_the_flight_itself():
    # four events known at the same minute, one minute before everyone's schedule: each of a-d sees the other
    # three, q (no event of its own) sees all four
    flights = pl.DataFrame(
        {
            "flight_id": list("abcdq"),
            "g": ["x"] * 5,
            "sched_dep_utc": [at(0)] * 4 + [at(0)],
            "t": [at(-1)] * 4 + [None],
            "v": [1.0, 2.0, 3.0, 4.0, None],
        }
    )
    out = gold.trailing_sums(flights, ["g"], pl.col("t"), {"v": pl.col("v")}, "1h")
    assert by_id(out, "n") == {"a": 3, "b": 3, "c": 3, "d": 3, "q": 4}
    assert by_id(out, "sum_v") == {"a": 9.0, "b": 8.0, "c": 7.0, "d": 6.0, "q": 10.0}
    shifted = flights.with_columns(pl.lit(at(0)).alias("t"))  # known exactly at the schedule: not before it
    assert set(by_id(gold.trailing_sums(shifted, ["g"], pl.col("t"), {}, "1h"), "n").values()) == {0}


def test_rolling_late_rates_use_only_outcomes_known_before_the_scheduled_departure():
    day = datetime(2013, 1, 1, 10, tzinfo=UTC)
    flights = pl.DataFrame(
        {
            "flight_id": ["arrived", "cancelled", "diverted", "q1", "q2", "q3", "q4"],
            "carrier": ["AA"] * 7,
            "sched_dep_utc": [day, day + timedelta(hours=2), day, *[day + timedelta(hours=h) for h in (4, 5, 6, 40)]],
            "dep_delay": [0, None, 0, 0, 0, 0, 0],
            "air_time": [60, None, None, 60, 60, 60, 60],
            "arr_delay": [30, None, None, 0, 0, 0, 0],
            "is_late": [1, 1, 1, 0, 0, 0, 0],
        }
    )
    out = gold.rolling_late_rates(flights, ["carrier"], "carrier", ("7d",))
    # cancelled: known at its schedule (12:00); arrived: at departure + air time + 4 h (15:00);
    # diverted: 24 h after departure (next day 10:00); q1 (14:00, known 19:00) and the others after that
    assert by_id(out, "carrier_flights_7d") == {
        "arrived": 0,
        "cancelled": 0,
        "diverted": 0,
        "q1": 1,
        "q2": 1,
        "q3": 2,
        "q4": 6,
    }
    assert by_id(out, "carrier_late_rate_7d")["q3"] == 1.0 and by_id(out, "carrier_late_rate_7d")["q4"] == 0.5


def test_waiting_departures_count_scheduled_flights_not_yet_departed():
    flights = pl.DataFrame(
        {
            "flight_id": ["a", "b", "c", "d", "old"],
            "origin": ["JFK"] * 5,
            "sched_dep_utc": [at(-90), at(-60), at(-30), at(0), at(-200)],
            "dep_delay": [5, 120, None, 0, 300],  # a gone at 10:35; b leaves 13:00; c cancelled; old leaves 13:40
        }
    )
    out = gold.waiting_departures(flights, "origin", "origin")
    assert by_id(out, "origin_scheduled_3h") == {"a": 1, "b": 2, "c": 3, "d": 3, "old": 0}
    assert by_id(out, "origin_waiting_3h") == {"a": 1, "b": 1, "c": 2, "d": 2, "old": 0}
    assert by_id(out, "origin_waited_min_3h")["d"] == (60 + 30) / 2  # b and c, waiting 60 and 30 minutes so far


def test_waiting_departures_agree_with_counting_every_pair():
    """The interval counting (O(n log n)) against the definition, pair by pair, on ties, cancellations and delays
    longer than the window."""
    rng = np.random.default_rng(3)
    n = 400
    delays = rng.choice([-5, 0, 0, 10, 45, 150, 400], n).astype(float)
    delays[rng.random(n) < 0.1] = np.nan  # cancelled
    flights = pl.DataFrame(
        {
            "flight_id": np.arange(n),
            "origin": rng.choice(["EWR", "JFK", "LGA"], n),
            "sched_dep_utc": [at(int(m)) for m in rng.integers(0, 24 * 60, n) // 15 * 15],  # many ties
            "dep_delay": delays,
        }
    ).with_columns(pl.col("dep_delay").fill_nan(None))
    out = gold.waiting_departures(flights, "origin", "origin")
    rows = flights.to_dicts()
    for flight in rows:
        s = flight["sched_dep_utc"]
        waits = [
            (s - other["sched_dep_utc"]).total_seconds() / 60
            for other in rows
            if other["origin"] == flight["origin"]
            and s - timedelta(hours=3) <= other["sched_dep_utc"] < s
            and (other["dep_delay"] is None or other["sched_dep_utc"] + timedelta(minutes=other["dep_delay"]) >= s)
        ]
        got = out.row(by_predicate=pl.col("flight_id") == flight["flight_id"], named=True)
        assert got["origin_waiting_3h"] == len(waits)
        assert got["origin_waited_min_3h"] == (pytest.approx(sum(waits) / len(waits)) if waits else None)


@pytest.mark.parametrize(
    ("part", "args"),
    [
        (gold.rolling_late_rates, (["carrier"], "carrier", ("7d", "12h"))),
        (gold.recent_departures, ("origin", "origin")),
        (gold.waiting_departures, ("origin", "origin")),
        (gold.scheduled_around, ("origin", "origin")),
    ],
    ids=["rolling_late_rates", "recent_departures", "waiting_departures", "scheduled_around"],
)
def test_queried_flights_still_count_every_flight_as_an_event(week, part, args):
    """A month asks only for its own flights (``queries``) while every flight of its context stays an event: the
    queried rows equal the same rows of the computation over every flight, and the others are absent."""
    labelled = gold.label(week[0]).filter(pl.col("sched_dep_utc").is_not_null())
    asked = pl.col("sched_dep_utc") >= datetime(2013, 1, 4, 17, tzinfo=UTC)  # from noon: every window reaches back
    full = part(labelled, *args)
    only = part(labelled, *args, queries=asked)
    expected_ids = labelled.filter(asked).get_column("flight_id")
    assert 0 < only.height == full.filter(pl.col("flight_id").is_in(expected_ids.implode())).height < full.height
    assert only.equals(full.filter(pl.col("flight_id").is_in(expected_ids.implode())))
    assert set(only.get_column("flight_id")) <= set(expected_ids)


def test_scheduled_around_counts_other_flights_within_the_hour():
    flights = pl.DataFrame(
        {"flight_id": list("abcd"), "origin": ["LGA"] * 4, "sched_dep_utc": [at(0), at(60), at(61), at(0)]}
    )
    out = gold.scheduled_around(flights, "origin", "origin")
    assert by_id(out, "origin_scheduled_pm1h") == {"a": 2, "b": 3, "c": 1, "d": 2}


def test_rotation_sees_the_previous_leg_only_as_far_as_it_was_known():
    base = datetime(2013, 1, 1, 11, tzinfo=UTC)
    legs = pl.DataFrame(
        {
            "flight_id": ["l1", "l2", "l3", "l4", "other"],
            "tailnum": ["N1", "N1", "N1", "N1", None],
            "flight_date": [datetime(2013, 1, 1).date()] * 3 + [datetime(2013, 1, 2).date()] * 2,
            "sched_dep_utc": [base + timedelta(hours=h) for h in (0, 3, 6, 24, 0)],
            "dep_delay": [10, 480, 0, 0, 0],  # l2 leaves 8 h late, after l3's schedule
            "air_time": [60, 100, 60, 60, 60],
            "arr_delay": [5, 470, -5, 0, 0],
            "distance": [500, 700, 300, 400, 400],
        }
    )
    out = gold.rotation(legs)
    assert set(out["flight_id"]) == {"l1", "l2", "l3", "l4"}
    assert by_id(out, "tail_prev_gap_min") == {"l1": None, "l2": 180.0, "l3": 180.0, "l4": 1080.0}
    assert by_id(out, "tail_prev_departed") == {"l1": None, "l2": 1, "l3": 0, "l4": 1}
    assert by_id(out, "tail_prev_dep_delay") == {"l1": None, "l2": 10.0, "l3": None, "l4": 0.0}
    # l1's arrival is known at 11:10 + 60 min + 4 h = 16:10, after l2's schedule (14:00); l3's at 22:00
    assert by_id(out, "tail_prev_arr_delay") == {"l1": None, "l2": None, "l3": None, "l4": -5.0}
    assert by_id(out, "tail_prev_distance")["l2"] == 500.0
    assert by_id(out, "tail_legs_before") == {"l1": 0, "l2": 1, "l3": 2, "l4": 0}
    # slack: from the previous departure (actual if known by now, else now) out and back at 7.5 miles a minute
    slack = by_id(out, "tail_prev_slack_min")
    assert slack["l1"] is None and slack["l2"] == 170 - 1000 / 7.5 and slack["l3"] == -1400 / 7.5
    assert slack["l4"] == 1080 - 600 / 7.5


def test_a_flight_without_tail_number_takes_a_donors_tail_columns(week, features):
    flights = week[0]
    no_tail = flights.filter(pl.col("tailnum").is_null()).get_column("flight_id")
    assert no_tail.len() > 0  # all of them are cancelled in the real data
    assert flights.filter(pl.col("tailnum").is_null() & pl.col("dep_time").is_not_null()).height == 0
    imputed = features.filter(pl.col("flight_id").is_in(no_tail.to_list()))
    assert imputed.get_column("tail_legs_before").null_count() < imputed.height / 10
    row = imputed.filter(pl.col("tail_prev_gap_min").is_not_null()).row(0, named=True)
    donors = features.filter(
        (pl.col("carrier") == row["carrier"])
        & (pl.col("origin") == row["origin"])
        & (pl.col("sched_dep_utc") <= row["sched_dep_utc"])
        & ~pl.col("flight_id").is_in(no_tail.to_list())
    )
    last = donors.filter(pl.col("sched_dep_utc") == pl.col("sched_dep_utc").max())
    assert row["tail_prev_gap_min"] in last.get_column("tail_prev_gap_min").to_list()


def test_weather_is_the_latest_row_complete_before_departure(week, features):
    flights, weather, _ = week
    row = features.filter(pl.col("origin") == "EWR").row(100, named=True)
    complete = weather.filter(
        (pl.col("origin") == "EWR") & (pl.col("time_hour") + timedelta(hours=1) <= row["sched_dep_utc"])
    ).sort("time_hour")
    assert row["temp"] == complete.get_column("temp")[-1]
    assert features.height == flights.height and features.get_column("flight_id").n_unique() == features.height


def test_the_view_does_not_depend_on_the_row_order(week, features):
    flights, weather, planes = week
    shuffled = gold.flight_features(flights.sample(fraction=1.0, shuffle=True, seed=5), weather, planes)
    assert shuffled.equals(features)


def test_every_model_feature_is_in_the_view(features):
    assert set(training.FEATURES) <= set(features.columns)


def test_route_daily_delays_adds_up_to_the_flights(week):
    agg = gold.route_daily_delays(week[0])
    assert agg.get_column("flights").sum() == week[0].height
    assert agg.select(pl.col("late_share").is_between(0, 1).all()).item()


def test_route_daily_delays_needs_only_its_input_columns(week):
    """The route asset reads only ``ROUTE_INPUT_COLUMNS`` of silver: the aggregate of those is the whole one."""
    assert gold.route_daily_delays(week[0].select(gold.ROUTE_INPUT_COLUMNS)).equals(gold.route_daily_delays(week[0]))


def test_rotation_breaks_ties_between_legs_at_the_same_minute_by_flight_id():
    t0 = datetime(2013, 1, 1, 11, tzinfo=UTC)
    legs = pl.DataFrame(
        {
            "flight_id": ["a", "b", "c"],
            "tailnum": ["N2"] * 3,
            "flight_date": [t0.date()] * 3,
            "sched_dep_utc": [t0, t0, t0 + timedelta(hours=2)],  # a and b at the same minute (as in the real data)
            "dep_delay": [1, 2, 0],
            "air_time": [50] * 3,
            "arr_delay": [0] * 3,
            "distance": [100, 200, 300],
        }
    )
    forward, backward = gold.rotation(legs), gold.rotation(legs.reverse())
    assert by_id(forward, "tail_prev_distance")["c"] == 200.0  # b, the greater flight_id, is the later leg
    assert forward.sort("flight_id").equals(backward.sort("flight_id"))
