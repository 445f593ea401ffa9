"""Ingestion that keeps every good row: partially bad files, typed inputs, blank lines, text bounds, reasons.

Each test lands a few small files cut from the real data into a temporary landing folder, ingests them with
the bronze entry point (``ingest_source``) into a temporary lake, conforms bronze with silver's ``conform``, and
checks the row accounting (rows read = bronze = silver + quarantined + superseded). No Dagster: these are the
pure layers, and they run in seconds.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from lakehouse.bronze.ingest import ingest_source
from lakehouse.silver.accounting import account_rows
from lakehouse.silver.conform import LINEAGE, SilverBatch, conform
from lakehouse.sources import SOURCES
from lakehouse.tables import BRONZE, INGEST_LOG, Lake, Landing

NOW = datetime(2026, 1, 1, tzinfo=UTC)
FLIGHTS = SOURCES["flights"]


@dataclass
class Landed:
    log: pl.DataFrame
    bronze: pl.DataFrame
    silver: SilverBatch
    rejected_dir: Path

    def status(self, name: str) -> str:
        return self.log.filter(pl.col("file_name") == name).get_column("status").item()

    def rejection(self, name: str) -> dict:
        return json.loads((self.rejected_dir / f"{name}.reason.json").read_text())

    def silver_rows(self, name: str) -> pl.DataFrame:
        return self.silver.valid.filter(pl.col("_source_file") == name)

    def quarantined(self, name: str) -> pl.DataFrame:
        return self.silver.quarantine.filter(pl.col("_source_file") == name).sort("_row_number")


def land_and_ingest(tmp_path: Path, files: dict[str, bytes], source: str = "flights") -> Landed:
    """Write ``files`` into a fresh landing folder of ``source``, ingest them, conform bronze, check accounting."""
    lake, landing = Lake(str(tmp_path / "lake")), Landing(str(tmp_path / "landing"))
    folder = Path(landing.source_dir(source))
    folder.mkdir(parents=True)
    for name, payload in files.items():
        (folder / name).write_bytes(payload)
    spec = SOURCES[source]
    ingest_source(lake, landing, spec, batch_id="b1", now=NOW)
    log = lake.read(INGEST_LOG[source])
    bronze = lake.read(BRONZE[source]) if lake.exists(BRONZE[source]) else pl.DataFrame()
    batch = conform(bronze, spec, now=NOW) if bronze.height else None
    if batch is not None:
        books = account_rows(log, bronze, batch.valid, batch.quarantine, spec)
        assert books.get_column("ok").all(), books
        assert batch.quarantine.filter(pl.col("reason").fill_null("").str.strip_chars() == "").is_empty()
    empty = SilverBatch(pl.DataFrame(schema={"_source_file": pl.String}), pl.DataFrame(), 0)
    return Landed(log, bronze, batch or empty, Path(landing.rejected_dir(source)))


@pytest.fixture(scope="module")
def jan(raw_flights) -> pl.DataFrame:
    """40 real January flights (every column as text), from several carriers and airports."""
    return raw_flights.filter(pl.col("month") == "1").gather_every(600).head(40)


def csv_lines(frame: pl.DataFrame) -> list[bytes]:
    """``frame`` as CSV lines (header first), without line ends."""
    return frame.write_csv().encode().splitlines()


def test_a_partially_bad_csv_keeps_its_good_rows_and_quarantines_each_bad_line(tmp_path, jan):
    lines = csv_lines(jan)  # lines[0] is the header, lines[k] is data row k (file line k + 1)
    lines[5] = lines[5].rsplit(b",", 2)[0]  # two fields short
    lines[9] = lines[9] + b",surplus"  # one field too many
    lines[14] = lines[14].replace(jan["tailnum"][13].encode(), "N\u00e9W".encode("latin-1"))  # a Latin-1 byte
    lines[-1] = lines[-1][: len(lines[-1]) // 2]  # the copy stopped mid-row: no line end either
    landed = land_and_ingest(tmp_path, {"partial.csv": b"\n".join(lines)})

    assert landed.status("partial.csv") == "ingested"
    log = landed.log.row(0, named=True)
    assert log["rows"] == jan.height == landed.bronze.height  # every data line is counted and kept
    assert log["reason"].startswith("4 of 40 rows are unparseable lines")
    bad_rows = [5, 9, 14, 40]
    q = landed.quarantined("partial.csv")
    assert q.get_column("_row_number").to_list() == bad_rows
    assert q.get_column("failed_checks").to_list() == [
        "parse:field_count",
        "parse:field_count",
        "parse:encoding",
        "parse:truncated",
    ]
    for row, reason in zip(bad_rows, q.get_column("reason"), strict=True):
        assert f"line {row + 1} " in reason  # the file line a person opens: row number + 1 (the header)
    assert "has 17 fields, the header has 19" in q["reason"][0]
    assert "UTF-8" in q["reason"][2] and "cut off" in q["reason"][3]
    assert json.loads(q["record"][1]) == {"_corrupt_record": lines[9].decode()}
    assert "\\xe9" in json.loads(q["record"][2])["_corrupt_record"]  # the bad byte, visible

    good = landed.silver_rows("partial.csv").sort("_row_number")
    assert good.height == 36
    expected = conform_text(jan.filter(~pl.int_range(1, pl.len() + 1).is_in(bad_rows)))
    assert good.select(FLIGHTS.natural_key).equals(expected.select(FLIGHTS.natural_key))
    assert good.drop(*LINEAGE, "_updated_at").equals(expected.drop(*LINEAGE, "_updated_at"))


def conform_text(raw: pl.DataFrame) -> pl.DataFrame:
    """Silver rows of a clean all-text flights frame, in input order (the reference for the salvaged rows)."""
    from lakehouse.bronze.parsing import to_bronze

    bronze = to_bronze(raw, FLIGHTS, source_file="ref", file_hash="ref", batch_id="r", batch_seq=1, ingested_at=NOW)
    return conform(bronze, FLIGHTS, now=NOW).valid.sort("_row_number")


def test_json_array_and_broken_json_lines_keep_their_good_rows(tmp_path, jan):
    records, other = jan.head(12).to_dicts(), jan.slice(12, 12).to_dicts()  # other flights: no key is superseded
    array = [*records[:5], "not a flight", *records[5:]]  # element 6 is a string
    pretty = json.dumps(array, indent=1).encode()  # a JSON document (an array), not lines
    ndjson = [json.dumps(r) for r in other]
    ndjson[3] = ndjson[3][:-10]  # a line cut short: invalid JSON
    landed = land_and_ingest(tmp_path, {"array.json": pretty, "lines.ndjson": ("\n".join(ndjson) + "\n").encode()})
    assert landed.status("array.json") == landed.status("lines.ndjson") == "ingested"
    assert landed.silver_rows("array.json").height == 12
    (element,) = landed.quarantined("array.json").iter_rows(named=True)
    assert element["_row_number"] == 6 and element["failed_checks"] == "parse:json"
    assert "element 6 (line " in element["reason"] and "a string, not a JSON object" in element["reason"]
    line = landed.quarantined("lines.ndjson").row(0, named=True)
    assert line["_row_number"] == 4 and "line 4 is not valid JSON" in line["reason"]
    assert landed.silver_rows("lines.ndjson").height == 11
    # the salvaged JSON rows are the same flights as the CSV rows
    both = landed.silver_rows("array.json").sort("flight_id").drop(*LINEAGE, "_updated_at")
    assert both.equals(conform_text(jan.head(12)).sort("flight_id").drop(*LINEAGE, "_updated_at"))


def test_typed_parquet_ingests_the_same_rows_as_the_equivalent_csv(tmp_path, jan):
    typed = jan.with_columns(pl.all().replace("NA", None)).with_columns(
        pl.col("year").cast(pl.Int16),
        pl.col("month", "day", "hour", "minute").cast(pl.Int8),
        pl.col("dep_time", "sched_dep_time", "arr_time", "sched_arr_time").cast(pl.Int16),
        pl.col("dep_delay", "arr_delay", "flight", "air_time", "distance").cast(pl.Int32),
        pl.col("carrier", "tailnum", "origin", "dest").cast(pl.Categorical),  # dictionary-encoded in Parquet
        pl.col("time_hour")
        .str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC")
        .dt.convert_time_zone("America/New_York"),  # time-zone-aware, not UTC
    )
    path = tmp_path / "typed.parquet"
    typed.write_parquet(path)
    assert pl.read_parquet_schema(path)["time_hour"] == pl.Datetime("us", "America/New_York")
    parquet = land_and_ingest(tmp_path / "p", {"typed.parquet": path.read_bytes()})
    text = land_and_ingest(tmp_path / "c", {"typed.csv": jan.write_csv().encode()})

    assert parquet.silver.quarantine.is_empty() and text.silver.quarantine.is_empty()
    assert parquet.bronze.get_column("time_hour").to_list() == jan.get_column("time_hour").to_list()
    columns = [FLIGHTS.surrogate_key, *FLIGHTS.columns, "sched_dep_utc", "flight_date"]
    assert (
        parquet.silver.valid.select(columns)
        .sort("flight_id")
        .equals(text.silver.valid.select(columns).sort("flight_id"))
    )


def test_blank_lines_are_not_rows(tmp_path, jan):
    lines = csv_lines(jan.head(6))
    body = (
        b"\r\n".join([*lines[:4], b"", b"   ", *lines[4:]]) + b"\r\n\r\n\r\n"
    )  # CRLF, blank lines inside and at the end
    landed = land_and_ingest(tmp_path, {"crlf.csv": body})
    assert landed.log.get_column("rows").to_list() == [6]
    assert landed.bronze.height == 6 and landed.bronze.filter(pl.col("year").is_null()).is_empty()
    # rows keep their file positions: the two blank lines (file lines 5 and 6) are skipped, not renumbered
    assert landed.bronze.get_column("_row_number").sort().to_list() == [1, 2, 3, 6, 7, 8]
    assert landed.silver.quarantine.is_empty() and landed.silver.valid.height == 6


def test_an_absurdly_long_text_value_is_quarantined_by_its_bound(tmp_path, jan):
    huge = "N" + "9" * (1 << 20)  # a 1 MiB tail number
    rows = jan.head(5).with_columns(
        pl.when(pl.int_range(pl.len()) == 2).then(pl.lit(huge)).otherwise(pl.col("tailnum")).alias("tailnum")
    )
    landed = land_and_ingest(tmp_path, {"long.csv": rows.write_csv().encode()})
    assert landed.bronze.get_column("tailnum").str.len_chars().max() == len(huge)  # bronze keeps it, raw
    (q,) = landed.quarantined("long.csv").iter_rows(named=True)
    assert q["_row_number"] == 3 and q["failed_checks"] == "str_length(2, 10):tailnum"
    assert q["reason"].startswith("tailnum failed str_length(2, 10) (value N999") and len(q["reason"]) < 200
    assert f"({len(huge)} chars)" in q["reason"]
    assert landed.silver.valid.get_column("tailnum").str.len_chars().max() <= 10


def test_null_failures_have_a_readable_reason(tmp_path, jan):
    rows = jan.head(4).with_columns(
        pl.when(pl.int_range(pl.len()) == 1).then(None).otherwise(pl.col("origin")).alias("origin"),
        pl.when(pl.int_range(pl.len()) == 2).then(pl.lit("NA")).otherwise(pl.col("carrier")).alias("carrier"),
    )
    landed = land_and_ingest(tmp_path, {"nulls.csv": rows.write_csv().encode()})
    q = landed.quarantined("nulls.csv")
    assert q.select("_row_number", "failed_checks", "reason").rows() == [
        (2, "not_nullable:origin", "origin is missing (null) but required"),
        (3, "not_nullable:carrier", "carrier is missing (null) but required"),
    ]


GOOD_ROWS = 30


def _latin1_file(jan: pl.DataFrame) -> bytes:
    return jan.head(GOOD_ROWS).with_columns(pl.lit("N\u00e9W").alias("tailnum")).write_csv().encode("latin-1")


@pytest.mark.parametrize(
    ("case", "make", "reason", "detail"),
    [
        ("semicolons", lambda j: j.head(GOOD_ROWS).write_csv(separator=";").encode(), "delimiter", "one field"),
        ("corrupt_gzip", lambda j: gzip.compress(j.write_csv().encode())[:300], "unreadable", "gzip"),
        ("no_origin", lambda j: j.head(GOOD_ROWS).drop("origin").write_csv().encode(), "missing_columns", "origin"),
        (
            "latin1_header",
            lambda j: "ann\u00e9e,".encode("latin-1") + j.head(GOOD_ROWS).write_csv().encode(),
            "encoding",
            "header",
        ),
        ("latin1_everywhere", _latin1_file, "encoding", f"{GOOD_ROWS} of {GOOD_ROWS} data lines"),
        (
            "mostly_ragged",
            lambda j: b"\n".join(
                line + b",x" if k > 3 else line for k, line in enumerate(csv_lines(j.head(GOOD_ROWS)))
            ),
            "malformed",
            "more than 50%",
        ),
    ],
)
def test_files_that_cannot_be_read_faithfully_are_still_rejected_whole(tmp_path, jan, case, make, reason, detail):
    name = f"{case}.csv.gz" if case == "corrupt_gzip" else f"{case}.csv"
    payload = make(jan)
    landed = land_and_ingest(tmp_path, {name: payload})
    assert landed.status(name) == "rejected" and landed.bronze.is_empty()
    assert (landed.rejected_dir / name).read_bytes() == payload
    assert landed.rejection(name)["reason"] == reason and detail in landed.rejection(name)["detail"]


@pytest.mark.parametrize("fault", ["a row missing from silver", "a row twice in silver"])
def test_row_accounting_fails_when_silver_loses_or_doubles_a_row(tmp_path, jan, fault):
    """The books balance on a clean batch (land_and_ingest asserts it) and fail on either fault: a lost row is
    unaccounted, a doubled one makes bronze look larger than what was read."""
    landed = land_and_ingest(tmp_path, {"jan.csv": b"\n".join(csv_lines(jan)) + b"\n"})
    valid = landed.silver.valid
    broken = valid.slice(1) if fault == "a row missing from silver" else pl.concat([valid, valid.head(1)])
    books = account_rows(landed.log, landed.bronze, broken, landed.silver.quarantine, FLIGHTS)
    assert not books.get_column("ok").any()
    if fault == "a row missing from silver":
        assert books.get_column("rows_unaccounted").to_list() == [1]
    else:
        assert books.get_column("rows_bronze").to_list() == [jan.height + 1]
