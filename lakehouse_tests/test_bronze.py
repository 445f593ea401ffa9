"""Bronze transforms: formats, encodings, schema drift, bad lines, row numbers, ingest metadata."""

import gzip
import io
import json
from datetime import UTC, datetime

import polars as pl
import pytest

from lakehouse.bronze.parsing import (
    PARSE_COLUMNS,
    RejectedFileError,
    content_hash,
    discover_files,
    empty_bronze,
    parse_file,
    to_bronze,
)
from lakehouse.sources import SOURCES
from lakehouse_tests.helpers import NOW, bronze_of

AIRLINES_CSV = b"carrier,name\n9E,Endeavor Air Inc.\nAA,American Airlines Inc.\n"


def test_csv_values_stay_raw_text(raw_flights):
    head = raw_flights.head(50)
    payload = head.write_csv().encode()
    parsed = parse_file(payload, "flights_2013_01.csv")
    assert parsed.schema == pl.Schema({**dict.fromkeys(head.columns, pl.String), **PARSE_COLUMNS})
    assert parsed.drop(*PARSE_COLUMNS).equals(head)
    assert parsed.get_column("_row_number").to_list() == list(range(1, 51))
    assert parsed.get_column("_parse_error").null_count() == 50


def test_row_numbers_are_file_lines_below_the_header_and_blank_lines_are_skipped():
    payload = b'carrier,name\r\n9E,Endeavor\r\n\r\nAA,"American\r\nAirlines"\r\nB6\r\nUA,United\r\n\r\n'
    parsed = parse_file(payload, "a.csv")  # a quoted field spans lines 4-5: the csv module splits the file
    assert parsed.select("carrier", "name", "_row_number").rows() == [
        ("9E", "Endeavor", 1),
        ("AA", "American\nAirlines", 3),
        (None, None, 5),
        ("UA", "United", 6),
    ]
    assert parsed.get_column("_corrupt_record").to_list() == [None, None, "B6", None]
    assert parsed["_parse_error"][2] == "field_count: line 6 has 1 fields, the header has 2"


def test_bad_lines_become_bronze_rows_with_the_raw_line_and_no_rescued_data():
    raw = parse_file(b"carrier,name,alliance\n9E,Endeavor,SkyTeam\nAA\nB6,JetBlue,none\n", "a.csv")
    out = bronze_of("airlines", raw)
    assert out.columns == list(empty_bronze(SOURCES["airlines"]).columns)
    assert out.select("carrier", "_rescued_data", "_corrupt_record", "_row_number").rows() == [
        ("9E", '{"alliance":"SkyTeam"}', None, 1),
        (None, None, "AA", 2),
        ("B6", '{"alliance":"none"}', None, 3),
    ]


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("a.csv", AIRLINES_CSV),
        ("a.csv", b"\xef\xbb\xbf" + AIRLINES_CSV),  # UTF-8 with BOM
        ("a.csv.gz", gzip.compress(AIRLINES_CSV, mtime=0)),  # mtime=0: the same bytes in every xdist worker
        (
            "a.ndjson",
            b'{"carrier":"9E","name":"Endeavor Air Inc."}\n{"carrier":"AA","name":"American Airlines Inc."}\n',
        ),
    ],
    ids=["csv", "csv-bom", "csv-gzip", "ndjson"],
)
def test_formats_parse_to_the_same_rows(name, payload):
    frame = parse_file(payload, name)
    assert frame.select("carrier", "name").rows() == [("9E", "Endeavor Air Inc."), ("AA", "American Airlines Inc.")]


def test_parquet_values_become_text():
    buf = io.BytesIO()
    pl.DataFrame({"carrier": ["9E"], "name": ["Endeavor"], "n": [3]}).write_parquet(buf)
    frame = parse_file(buf.getvalue(), "x.parquet")
    assert frame.schema["n"] == pl.String and frame.row(0) == ("9E", "Endeavor", "3", 1, None, None)


def test_typed_parquet_values_become_the_text_silver_parses():
    instants = [datetime(2013, 1, 1, 10, tzinfo=UTC), datetime(2013, 7, 1, 4, 30, 0, 500_000, tzinfo=UTC), None]
    frame = pl.DataFrame({"t": instants}).with_columns(
        pl.col("t").dt.convert_time_zone("America/New_York").alias("aware"),
        pl.col("t").dt.replace_time_zone(None).alias("naive"),
        pl.Series("code", ["EWR", "JFK", "EWR"], dtype=pl.Categorical),
        pl.Series("small", [1, -2, None], dtype=pl.Int8),
        pl.Series("nested", [[1, 2], [], None], dtype=pl.List(pl.Int64)),
    )
    buf = io.BytesIO()
    frame.drop("t").write_parquet(buf)
    parsed = parse_file(buf.getvalue(), "typed.parquet")
    assert parsed.drop(*PARSE_COLUMNS).rows() == [
        ("2013-01-01T10:00:00Z", "2013-01-01 10:00:00", "EWR", "1", "[1,2]"),
        ("2013-07-01T04:30:00.500Z", "2013-07-01 04:30:00.500", "JFK", "-2", "[]"),
        (None, None, "EWR", None, None),
    ]


def test_non_utf8_file_is_rejected_with_reason():
    payload = "carrier,name\nXX,Compañía\n".encode("latin-1")
    with pytest.raises(RejectedFileError) as err:
        parse_file(payload, "airlines.csv")
    assert err.value.reason == "encoding" and "UTF-8" in str(err.value)


def test_one_undecodable_line_among_many_is_a_bad_line_not_a_rejection():
    payload = AIRLINES_CSV + "XX,Compañía\n".encode("latin-1") + b"B6,JetBlue Airways\n"
    parsed = parse_file(payload, "airlines.csv")
    assert parsed.get_column("carrier").to_list() == ["9E", "AA", None, "B6"]
    assert parsed["_corrupt_record"][2] == "XX,Compa\\xf1\\xeda"
    assert parsed["_parse_error"][2].startswith("encoding: line 4 is not valid UTF-8")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"carrier;name\n9E;Endeavor\n", "delimiter"),
        (b"", "unreadable"),
        (b'[{"carrier": "9E"},', "unreadable"),  # a JSON array that never closes
    ],
)
def test_unreadable_wholes_are_rejected(payload, reason):
    name = "a.json" if payload.startswith(b"[") else "a.csv"
    with pytest.raises(RejectedFileError) as err:
        parse_file(payload, name)
    assert err.value.reason == reason


def test_missing_required_column_rejects_the_file():
    raw = parse_file(b"carrier\n9E\n", "a.csv")
    with pytest.raises(RejectedFileError) as err:
        bronze_of("airlines", raw)
    assert err.value.reason == "missing_columns" and "name" in err.value.detail


def test_extra_columns_are_rescued_and_order_does_not_matter():
    raw = parse_file(b"Name,CARRIER,alliance\nEndeavor Air Inc.,9E,SkyTeam\n", "a.csv")
    out = bronze_of("airlines", raw, file="a.csv", seq=7)
    assert out.get_column("carrier").to_list() == ["9E"]
    assert json.loads(out.get_column("_rescued_data")[0]) == {"alliance": "SkyTeam"}
    assert out.select("_source_file", "_row_number", "_batch_seq").row(0) == ("a.csv", 1, 7)
    assert out.get_column("_ingested_at").dtype == pl.Datetime("us", "UTC")


def test_row_numbers_and_hash_identify_each_landed_row():
    raw = parse_file(AIRLINES_CSV, "a.csv")
    out = to_bronze(
        raw,
        SOURCES["airlines"],
        source_file="a.csv",
        file_hash=content_hash(AIRLINES_CSV),
        batch_id="b",
        batch_seq=1,
        ingested_at=NOW,
    )
    assert out.get_column("_row_number").to_list() == [1, 2]
    assert out.get_column("_content_hash").unique().to_list() == [content_hash(AIRLINES_CSV)]
    assert content_hash(AIRLINES_CSV) != content_hash(AIRLINES_CSV + b"\n")


def test_discovery_skips_hidden_temporary_and_partial_files(tmp_path):
    for name in ["a.csv", ".hidden.csv", "b.csv.part", "c.csv.tmp", "d.csv~", "e.txt", "f.parquet", "_x.csv"]:
        (tmp_path / name).write_text("x")
    assert [p.name for p in discover_files(tmp_path)] == ["a.csv", "f.parquet"]
