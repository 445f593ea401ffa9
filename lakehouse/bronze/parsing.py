"""Bronze: read a landed file as raw text rows and stamp them with ingest metadata.

Bronze keeps every value exactly as landed, as ``pl.String``; typing happens in silver, so a value of the
wrong type quarantines its row there instead of failing the whole file here. A file is rejected whole only
when it cannot be read faithfully (unknown format, undecodable text, a required column missing).

Bronze frame shape (one row per landed data row)::

    <expected source columns>  String   raw values, null where the file lacks an optional column
    _rescued_data              String   JSON object of unexpected extra columns, null when there are none
    _source_file               String   file name relative to the source's landing folder
    _content_hash              String   sha256 hex digest of the file's bytes
    _row_number                Int64    1-based position of the row among the file's data rows
    _batch_id                  String   id of the ingest batch (one Dagster run)
    _batch_seq                 Int64    monotonically increasing batch number per source
    _ingested_at               Datetime(us, UTC)
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from datetime import datetime
from pathlib import Path

import polars as pl

from lakehouse.sources import SourceSpec

SUPPORTED_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".json", ".jsonl", ".ndjson")
# Names of files that are still being written or are not data (Spark/Hadoop, editors, our own .part).
IGNORED_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", "~", ".reason.json")

META_COLUMNS = {
    "_rescued_data": pl.String(),
    "_source_file": pl.String(),
    "_content_hash": pl.String(),
    "_row_number": pl.Int64(),
    "_batch_id": pl.String(),
    "_batch_seq": pl.Int64(),
    "_ingested_at": pl.Datetime("us", "UTC"),
}


class RejectedFileError(ValueError):
    """A landed file that cannot be ingested faithfully; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def is_candidate(path: Path) -> bool:
    """True for visible, finished data files (no hidden, temporary or partial names)."""
    name = path.name
    return (
        path.is_file()
        and not name.startswith((".", "_"))
        and not name.endswith(IGNORED_SUFFIXES)
        and name.lower().endswith(SUPPORTED_SUFFIXES)
    )


def discover_files(folder: Path) -> list[Path]:
    """Candidate files directly inside ``folder``, sorted by name."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if is_candidate(p))


def content_hash(payload: bytes) -> str:
    """sha256 hex digest of a file's bytes: the identity of its content."""
    return hashlib.sha256(payload).hexdigest()


def _decode_text(payload: bytes, name: str) -> bytes:
    """UTF-8 bytes without a BOM; raises :class:`RejectedFileError` for any other encoding."""
    if payload.startswith(b"\xef\xbb\xbf"):
        payload = payload[3:]
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RejectedFileError(
            "encoding",
            f"{name} is not valid UTF-8 (byte {exc.start}: {payload[exc.start : exc.start + 4]!r}); "
            "re-export it as UTF-8",
        ) from exc
    return payload


def _reject_truncated_csv(text: bytes, name: str) -> None:
    """Reject a CSV cut off mid-row: no final newline and a last line with fewer fields than the header.

    polars fills the missing fields of such a row with nulls; the row would then look like bad data, while
    the truth is an incomplete file (an interrupted copy), which must be re-delivered whole.
    """
    if not text or text.endswith(b"\n"):
        return
    header, _, _ = text.partition(b"\n")
    last = text.rsplit(b"\n", 1)[-1]
    n_header = len(next(csv.reader([header.decode()])))
    n_last = len(next(csv.reader([last.decode()])))
    if n_last < n_header:
        raise RejectedFileError(
            "truncated",
            f"{name}: the last line has {n_last} of {n_header} fields and no "
            "line end; the file looks cut off (interrupted copy?)",
        )


def parse_file(payload: bytes, name: str) -> pl.DataFrame:
    """Parse a landed file's bytes into a frame whose columns are all ``pl.String``.

    Formats by file name: ``.csv``, ``.csv.gz``, ``.parquet``, ``.json``/``.jsonl``/``.ndjson``
    (newline-delimited JSON).

    Raises:
        RejectedFileError: unsupported format, undecodable text or unparseable content.
    """
    lower = name.lower()
    try:
        if lower.endswith(".csv.gz"):
            payload, lower = gzip.decompress(payload), lower[:-3]
        if lower.endswith(".csv"):
            text = _decode_text(payload, name)
            _reject_truncated_csv(text, name)
            frame = pl.read_csv(io.BytesIO(text), infer_schema=False)
        elif lower.endswith(".parquet"):
            frame = pl.read_parquet(io.BytesIO(payload))
        elif lower.endswith((".json", ".jsonl", ".ndjson")):
            frame = pl.read_ndjson(io.BytesIO(_decode_text(payload, name)), infer_schema_length=None)
        else:
            raise RejectedFileError("format", f"{name}: unsupported format; expected one of {SUPPORTED_SUFFIXES}")
    except RejectedFileError:
        raise
    except (pl.exceptions.PolarsError, OSError, EOFError, gzip.BadGzipFile) as exc:
        raise RejectedFileError("unreadable", f"{name}: {type(exc).__name__}: {exc}") from exc
    return frame.with_columns(pl.all().cast(pl.String))


def to_bronze(
    raw: pl.DataFrame,
    spec: SourceSpec,
    *,
    source_file: str,
    file_hash: str,
    batch_id: str,
    batch_seq: int,
    ingested_at: datetime,
) -> pl.DataFrame:
    """Conform a parsed file to the bronze shape in the module docstring.

    Column names are matched case-insensitively after trimming; order does not matter. Extra columns go to
    ``_rescued_data`` as JSON.

    Raises:
        RejectedFileError: a required column of ``spec`` is missing.
    """
    renamed = {c: c.strip().lower() for c in raw.columns}
    raw = raw.rename(renamed)
    missing = [c for c in spec.required_columns if c not in raw.columns]
    if missing:
        raise RejectedFileError(
            "missing_columns", f"{source_file}: required column(s) {missing} missing; found {raw.columns}"
        )
    extra = [c for c in raw.columns if c not in spec.columns]
    rescued = (pl.struct(extra).struct.json_encode() if extra else pl.lit(None, dtype=pl.String)).alias("_rescued_data")
    return raw.select(
        *[
            pl.col(c).cast(pl.String) if c in raw.columns else pl.lit(None, dtype=pl.String).alias(c)
            for c in spec.columns
        ],
        rescued,
        pl.lit(source_file).alias("_source_file"),
        pl.lit(file_hash).alias("_content_hash"),
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("_row_number"),
        pl.lit(batch_id).alias("_batch_id"),
        pl.lit(batch_seq, dtype=pl.Int64).alias("_batch_seq"),
        pl.lit(ingested_at).cast(pl.Datetime("us", "UTC")).alias("_ingested_at"),
    )


def empty_bronze(spec: SourceSpec) -> pl.DataFrame:
    """A zero-row frame with the bronze schema of ``spec``."""
    return pl.DataFrame(schema={**{c: pl.String() for c in spec.columns}, **META_COLUMNS})
