"""Bronze transforms: formats, encodings, schema drift, ingest metadata."""

import gzip
import io
import json

import polars as pl
import pytest

from lakehouse.bronze.parsing import (
    RejectedFileError,
    content_hash,
    discover_files,
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
    assert parsed.schema == pl.Schema(dict.fromkeys(head.columns, pl.String))
    assert parsed.equals(head)


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("a.csv", AIRLINES_CSV),
        ("a.csv", b"\xef\xbb\xbf" + AIRLINES_CSV),  # UTF-8 with BOM
        ("a.csv.gz", gzip.compress(AIRLINES_CSV)),
        (
            "a.ndjson",
            b'{"carrier":"9E","name":"Endeavor Air Inc."}\n{"carrier":"AA","name":"American Airlines Inc."}\n',
        ),
    ],
)
def test_formats_parse_to_the_same_rows(name, payload):
    frame = parse_file(payload, name)
    assert frame.select("carrier", "name").rows() == [("9E", "Endeavor Air Inc."), ("AA", "American Airlines Inc.")]


def test_parquet_values_become_text():
    buf = io.BytesIO()
    pl.DataFrame({"carrier": ["9E"], "name": ["Endeavor"], "n": [3]}).write_parquet(buf)
    frame = parse_file(buf.getvalue(), "x.parquet")
    assert frame.schema["n"] == pl.String and frame.row(0) == ("9E", "Endeavor", "3")


def test_non_utf8_file_is_rejected_with_reason():
    payload = "carrier,name\nXX,Compañía\n".encode("latin-1")
    with pytest.raises(RejectedFileError) as err:
        parse_file(payload, "airlines.csv")
    assert err.value.reason == "encoding" and "UTF-8" in str(err.value)


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
