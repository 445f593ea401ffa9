"""Bronze: read a landed file as raw text rows and stamp them with ingest metadata.

Bronze keeps every value exactly as landed, as ``pl.String``; typing happens in silver, so a value of the
wrong type quarantines its row there instead of failing the whole file here. A line that cannot be split into
the file's columns is kept too, as a bronze row holding the raw line (like Spark's ``PERMISSIVE`` mode), and
silver quarantines it with the reason; only a file that cannot be read faithfully as a whole is rejected.

Bronze frame shape (one row per landed data row, good or bad)::

    <expected source columns>  String   raw values, null where the file lacks an optional column (all null
                                        on a bad line)
    _rescued_data              String   JSON object of unexpected extra columns, null when there are none
    _corrupt_record            String   the raw text of a line that could not be parsed (undecodable bytes
                                        as ``\\xNN`` escapes); null on every parsed row
    _parse_error               String   why, as ``<kind>: <message naming the file's line>``, kind one of
                                        ``encoding, field_count, truncated, quoting, json``; null when parsed
    _source_file               String   file name relative to the source's landing folder
    _content_hash              String   sha256 hex digest of the file's bytes
    _row_number                Int64    1-based position of the row in the file (see "Row numbers")
    _batch_id                  String   id of the ingest batch (one Dagster run)
    _batch_seq                 Int64    monotonically increasing batch number per source
    _ingested_at               Datetime(us, UTC)

How each format is read (:func:`parse_file`):

* **CSV** (``.csv``, ``.csv.gz``; UTF-8 with or without BOM; ``,`` separated; LF or CRLF). The header is split by
  Python's :mod:`csv` module. The usual file (valid UTF-8, no ``"`` anywhere, every line with exactly the header's
  number of commas, checked on the bytes with numpy) is read as it is by ``polars.read_csv`` (every column
  ``String``, an empty field null). Any other file is split into lines, each decoded on its own, so one
  undecodable byte costs one line, not the file. A data line is *good* when it has exactly as many fields as the
  header: for a line without ``"`` that is its number of commas + 1, and good lines without quotes are parsed by
  ``polars.read_csv``; a line with quotes is split by the :mod:`csv` module, whose fields it keeps (empty =
  null). When a quoted field spans lines (an odd number of ``"`` on some line), the whole file is split by the
  :mod:`csv` module, one row per record. Blank (whitespace-only) lines are skipped: they are not rows.
* **Newline-delimited JSON** (``.json``, ``.jsonl``, ``.ndjson``): each non-blank line is parsed by :mod:`json`
  and must be an object. A ``.json`` file whose first character is ``[`` is read as one JSON **array** of
  objects instead (each element a row). Values become text: strings as they are, null as null, anything else
  as its compact JSON (``5``, ``1.5``, ``true``, ``{"a":1}``).
* **Parquet**: values keep their meaning as text: integers of any width and dictionary-encoded strings as
  their values; time-zone-aware timestamps converted to UTC as ``2013-01-01T10:00:00Z`` and naive ones as
  ``2013-01-01 10:00:00`` (the forms silver parses; fractional seconds are kept only when not zero);
  nested values as JSON; everything else by ``cast(pl.String)``.

Bad lines and whole-file rejection. A line is *bad* (one bronze row with ``_corrupt_record`` and
``_parse_error``, then quarantined by silver) when it is not valid UTF-8 (``encoding``), has another number of
fields than the header (``field_count``), is cut off mid-row (the last line, without a line end, with too few
fields or inside a quoted field: ``truncated``; a last line without a line end but with all its fields is
kept, as many writers omit the final line end), has a quoted field that is never closed or that :mod:`csv`
cannot split (``quoting``), or is not a JSON object (``json``). The file is **rejected whole**
(:class:`RejectedFileError`, reason code in brackets) when it cannot be read faithfully: an unsupported format
(``format``); corrupt compression, a JSON array that does not parse, an empty file (``unreadable``); a header
that is not UTF-8 (``encoding``); a header that is a single field holding ``;``, tab or ``|``, i.e. another
delimiter than the feed's ``,`` (``delimiter``); a required column missing (``missing_columns``, by
:func:`to_bronze`); or **more than half** of its data lines bad (:data:`MAX_BAD_LINE_SHARE`; the code is that of
the most common kind, ``encoding``, ``truncated`` or ``malformed``; e.g. a Latin-1 file whose lines mostly
hold accents is ``encoding``): a few bad lines are bad data, a majority means the file is in another format or
encoding than the feed's.

Row numbers (``_row_number``, with ``_content_hash`` the identity of a landed row): CSV: the line number in
the file **not counting the header**: the line just below the header is row 1, so with the header on line 1,
``_row_number`` + 1 is the line an editor shows (``_parse_error`` names that file line directly). Blank lines
are not rows but keep their line numbers, so row numbers skip them; a record spanning lines is numbered by its
first line. Newline-delimited JSON: the line number (no header). JSON array: the element's position.
Parquet: the row's position. All 1-based.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from lakehouse.folders import Entry, Folder
from lakehouse.sources import SourceSpec

SUPPORTED_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".json", ".jsonl", ".ndjson")
# Names of files that are still being written or are not data (Spark/Hadoop, editors, our own .part).
IGNORED_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", "~", ".reason.json")

META_COLUMNS = {
    "_rescued_data": pl.String(),
    "_corrupt_record": pl.String(),
    "_parse_error": pl.String(),
    "_source_file": pl.String(),
    "_content_hash": pl.String(),
    "_row_number": pl.Int64(),
    "_batch_id": pl.String(),
    "_batch_seq": pl.Int64(),
    "_ingested_at": pl.Datetime("us", "UTC"),
}
PARSE_COLUMNS = {"_row_number": pl.Int64(), "_corrupt_record": pl.String(), "_parse_error": pl.String()}
"""Columns :func:`parse_file` adds after the file's own: each row's position and, for a bad line, its raw text
and the reason (see the module docstring)."""

MAX_BAD_LINE_SHARE = 0.5
"""A file with more than this share of bad data lines is rejected whole (module docstring)."""
DELIMITER = ","
OTHER_DELIMITERS = (";", "\t", "|")
BOM = b"\xef\xbb\xbf"
# The reason code of a rejected file by the most common kind of its bad lines.
REJECTION_BY_KIND = {
    "encoding": "encoding",
    "truncated": "truncated",
    "field_count": "malformed",
    "quoting": "malformed",
    "json": "malformed",
}


class RejectedFileError(ValueError):
    """A landed file that cannot be ingested faithfully; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def is_candidate_name(name: str) -> bool:
    """True for the name of a visible, finished data file (no hidden, temporary or partial names)."""
    return (
        not name.startswith((".", "_"))
        and not name.endswith(IGNORED_SUFFIXES)
        and name.lower().endswith(SUPPORTED_SUFFIXES)
    )


def is_candidate(path: Path) -> bool:
    """True for visible, finished data files (no hidden, temporary or partial names)."""
    return path.is_file() and is_candidate_name(path.name)


def discover_files(folder: Path) -> list[Path]:
    """Candidate files directly inside ``folder``, sorted by name."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if is_candidate(p))


def discover(folder: Folder) -> list[Entry]:
    """Candidate files directly inside ``folder`` (a local folder or an S3 prefix), sorted by name: the same
    files :func:`discover_files` finds in a local folder."""
    return [e for e in folder.entries() if is_candidate_name(e.name)]


def content_hash(payload: bytes) -> str:
    """sha256 hex digest of a file's bytes: the identity of its content."""
    return hashlib.sha256(payload).hexdigest()


@dataclass(frozen=True)
class _BadLine:
    """A data line that could not be parsed: its row number, raw text and ``<kind>: <message>``."""

    row: int
    kind: str
    message: str
    raw: str

    @property
    def error(self) -> str:
        return f"{self.kind}: {self.message}"


@dataclass(frozen=True)
class _Lines:
    """A text file split into lines (without their ``\\n`` / ``\\r\\n``), each decoded as UTF-8 on its own.

    ``undecodable`` maps the 0-based index of each line that is not valid UTF-8 to the error (its text in
    ``lines`` has the bad bytes as ``\\xNN`` escapes); ``ends_with_newline`` says whether the last line ended;
    ``has_quote`` whether a ``"`` occurs anywhere.
    """

    lines: pl.Series
    undecodable: dict[int, str]
    ends_with_newline: bool
    has_quote: bool


_LineCheck = Callable[..., "_BadLine | None"]
"""``check(i, n_fields, error=None, span=1)``: the bad line starting at data line ``i``, or None when it is good."""


def _split_lines(payload: bytes) -> _Lines:
    payload = payload.removeprefix(BOM)
    ends = payload.endswith(b"\n")
    undecodable: dict[int, str] = {}
    try:
        text = payload.decode("utf-8")
        has_quote, has_cr = '"' in text, "\r" in text
        lines = pl.Series("text", [text], dtype=pl.String).str.split("\n").explode()
    except UnicodeDecodeError:
        decoded = []
        for i, raw in enumerate(payload.split(b"\n")):
            try:
                decoded.append(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                decoded.append(raw.decode("utf-8", "backslashreplace"))
                bad_bytes = raw[exc.start : exc.start + 4]
                undecodable[i] = f"is not valid UTF-8 (byte {exc.start + 1} of the line: {bad_bytes!r})"
        has_quote, has_cr = any('"' in line for line in decoded), True
        lines = pl.Series("text", decoded, dtype=pl.String)
    if ends:
        lines = lines.head(-1)  # the empty piece after the last line end
    if has_cr:
        lines = lines.str.strip_suffix("\r")
    return _Lines(lines, undecodable, ends, has_quote)


def _check_bad_share(bad: list[_BadLine], rows: int, name: str) -> None:
    """Reject the file when more than :data:`MAX_BAD_LINE_SHARE` of its ``rows`` data rows are bad."""
    if not bad or len(bad) <= MAX_BAD_LINE_SHARE * rows:
        return
    kind = Counter(b.kind for b in bad).most_common(1)[0][0]
    advice = "; re-export it as UTF-8" if kind == "encoding" else ""
    raise RejectedFileError(
        REJECTION_BY_KIND[kind],
        f"{name}: {len(bad)} of {rows} data lines cannot be read, more than "
        f"{MAX_BAD_LINE_SHARE:.0%} (first: {bad[0].message}){advice}",
    )


def _with_parse_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """A frame of good rows (with ``_row_number``) completed with null ``_corrupt_record`` / ``_parse_error``."""
    return frame.with_columns(
        pl.col("_row_number").cast(pl.Int64),
        pl.lit(None, pl.String).alias("_corrupt_record"),
        pl.lit(None, pl.String).alias("_parse_error"),
    )


def _assemble(good: list[pl.DataFrame], bad: list[_BadLine], columns: list[str]) -> pl.DataFrame:
    """Good rows (file columns + ``_row_number``) and bad lines: one frame in row order with :data:`PARSE_COLUMNS`."""
    schema = pl.Schema({**dict.fromkeys(columns, pl.String()), **PARSE_COLUMNS})
    frames = [_with_parse_columns(g).select(list(schema)) for g in good if g.height]
    if bad:
        frames.append(
            pl.DataFrame(
                {
                    **{c: [None] * len(bad) for c in columns},
                    "_row_number": [b.row for b in bad],
                    "_corrupt_record": [b.raw for b in bad],
                    "_parse_error": [b.error for b in bad],
                },
                schema=schema,
            )
        )
    if not frames:
        return pl.DataFrame(schema=schema)
    if len(frames) == 1:
        return frames[0].cast(schema)
    return pl.concat([f.cast(schema) for f in frames], how="vertical").sort("_row_number")


def _records_frame(records: list[tuple[int, list[str]]], columns: list[str]) -> pl.DataFrame:
    """Rows split by the :mod:`csv` module (``(row number, fields)``) as a String frame; empty fields are null."""
    values = list(zip(*[fields for _, fields in records], strict=True)) if records else [() for _ in columns]
    return pl.DataFrame(
        {
            **{
                c: pl.Series(c, [v or None for v in col], dtype=pl.String)
                for c, col in zip(columns, values, strict=True)
            },
            "_row_number": pl.Series([row for row, _ in records], dtype=pl.Int64),
        }
    )


def _csv_fields(line: str) -> list[str]:
    return next(csv.reader([line]), [])


def _read_csv(data: bytes, header: list[str]) -> pl.DataFrame:
    """Quote-free CSV lines (no header) parsed by ``polars.read_csv``: every column ``String``, empty fields null."""
    return pl.read_csv(
        io.BytesIO(data),
        has_header=False,
        new_columns=header,
        infer_schema=False,
        quote_char=None,
        separator=DELIMITER,
    )


def _header(line: str, name: str) -> list[str]:
    """The header's column names, split by the :mod:`csv` module.

    Raises:
        RejectedFileError: it cannot be split, or it is one field holding another delimiter than the feed's.
    """
    try:
        header = _csv_fields(line)
    except csv.Error as exc:
        raise RejectedFileError("unreadable", f"{name}: the header cannot be split into fields: {exc}") from exc
    if len(header) == 1 and any(d in header[0] for d in OTHER_DELIMITERS):
        raise RejectedFileError(
            "delimiter",
            f"{name}: the header is one field ({header[0][:80]!r}); the feed is separated by {DELIMITER!r}, "
            "this file by another delimiter",
        )
    return header


def _read_usual_csv(data: bytes, name: str) -> pl.DataFrame | None:
    """The usual file read straight by ``polars.read_csv``, or None when it is not one.

    Usual: valid UTF-8 without a BOM (already removed), no ``"`` anywhere, a header on the first line with at least
    two columns, and every following line with exactly the header's number of commas (so no line is blank, short
    or long). That is checked on the positions of ``,`` and ``\\n`` in the bytes (numpy), which is exact without
    quotes and much cheaper than splitting the file into lines.
    """
    if b'"' in data:
        return None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    first_end = data.find(b"\n")
    header_line = data[: first_end if first_end >= 0 else len(data)].decode().removesuffix("\r")
    if not header_line.strip():
        return None
    header = _header(header_line, name)
    if len(header) < 2 or first_end < 0:
        return None
    raw = np.frombuffer(data, dtype=np.uint8)
    line_ends = np.flatnonzero(raw == ord("\n"))
    if line_ends[-1] != len(data) - 1:
        line_ends = np.append(line_ends, len(data))  # a last line without a line end
    commas = np.flatnonzero(raw == ord(DELIMITER))
    per_line = len(header) - 1
    if len(commas) != per_line * len(line_ends):
        return None
    # the commas in order, per_line to a line: each block lies inside its line, so every line has exactly per_line
    blocks = commas.reshape(len(line_ends), per_line)
    if not ((blocks[:, -1] < line_ends).all() and (blocks[1:, 0] > line_ends[:-1]).all()):
        return None
    frame = pl.read_csv(io.BytesIO(data), infer_schema=False)  # as polars reads any plain CSV
    if frame.height != len(line_ends) - 1 or frame.width != len(header):  # defensive: both must agree
        return None
    return _with_parse_columns(frame.with_columns(pl.int_range(1, pl.len() + 1).alias("_row_number")))


def _parse_csv(payload: bytes, name: str) -> pl.DataFrame:
    """See the module docstring, "How each format is read"."""
    usual = _read_usual_csv(payload.removeprefix(BOM), name)
    if usual is not None:
        return usual
    text = _split_lines(payload)
    if text.lines.len() and text.lines[0].strip():
        header_at = 0  # no blank lines before the header
    else:
        nonblank = text.lines.str.contains(r"\S")
        if not nonblank.any():
            raise RejectedFileError("unreadable", f"{name}: the file is empty (no header line)")
        header_at = int(nonblank.arg_true()[0])
    if header_at in text.undecodable:
        detail = text.undecodable[header_at]
        raise RejectedFileError(
            "encoding", f"{name}: the header (line {header_at + 1}) {detail}; re-export the file as UTF-8"
        )
    header = _header(text.lines[header_at], name)
    body = text.lines.slice(header_at + 1)
    line_of = header_at + 2  # file line number (1-based) of body[0]; body[i] is row i + 1
    bad_encoding = {i - header_at - 1: e for i, e in text.undecodable.items()}
    last = body.len() - 1

    def check(i: int, n_fields: int, error: str | None = None, span: int = 1) -> _BadLine | None:
        """The bad line starting at body[i] (``span`` lines), or None when it splits into the header's fields."""
        lineno = line_of + i
        raw = "\n".join(body.slice(i, span).to_list())
        failed = [j for j in range(i, i + span) if j in bad_encoding]
        if failed:
            return _BadLine(i + 1, "encoding", f"line {line_of + failed[0]} {bad_encoding[failed[0]]}", raw)
        if error is None and n_fields == len(header):
            return None
        if i + span - 1 == last and not text.ends_with_newline and (error is not None or n_fields < len(header)):
            found = f"has {n_fields} of {len(header)} fields" if error is None else f"ends inside a field ({error})"
            return _BadLine(
                i + 1,
                "truncated",
                f"line {lineno} {found} and no line end: the file looks cut off (interrupted copy?)",
                raw,
            )
        if error is not None:
            return _BadLine(i + 1, "quoting", f"line {lineno} cannot be split into fields: {error}", raw)
        return _BadLine(i + 1, "field_count", f"line {lineno} has {n_fields} fields, the header has {len(header)}", raw)

    commas = body.str.count_matches(DELIMITER, literal=True)
    scan = pl.DataFrame({"text": body, "commas": commas}).with_row_index("i")
    scan = scan.with_columns(
        (~pl.col("text").str.contains(r"\S")).alias("blank"),
        (pl.col("text").str.count_matches('"', literal=True) if text.has_quote else pl.lit(0)).alias("quotes"),
        pl.col("i").is_in(list(bad_encoding)).alias("undecodable"),
    ).with_columns(
        (
            ~pl.col("blank") & (pl.col("quotes") == 0) & ~pl.col("undecodable") & (pl.col("commas") + 1 == len(header))
        ).alias("plain_ok")
    )
    bad: list[_BadLine] = []
    good: list[pl.DataFrame] = []
    if scan.select((pl.col("quotes") % 2 == 1).any()).item():  # a quoted field spans lines: csv splits it all
        good.append(_records_frame(_split_records(body.to_list(), check, bad), header))
    else:
        rows = scan.filter(~pl.col("blank"))
        plain_ok = rows.filter(pl.col("plain_ok"))
        good.append(_read_plain(plain_ok, header, name))
        for i, commas in rows.filter(~pl.col("plain_ok") & (pl.col("quotes") == 0)).select("i", "commas").iter_rows():
            problem = check(i, commas + 1)
            if problem is not None:  # always: the line is undecodable or has another width
                bad.append(problem)
        quoted: list[tuple[int, list[str]]] = []
        for i, line in rows.filter(pl.col("quotes") > 0).select("i", "text").iter_rows():
            try:
                fields, error = _csv_fields(line), None
            except csv.Error as exc:
                fields, error = [], str(exc)
            problem = check(i, len(fields), error)
            if problem is None:
                quoted.append((i + 1, fields))
            else:
                bad.append(problem)
        good.append(_records_frame(quoted, header))
    bad.sort(key=lambda b: b.row)
    _check_bad_share(bad, sum(g.height for g in good) + len(bad), name)
    return _assemble(good, bad, header)


def _read_plain(lines: pl.DataFrame, header: list[str], name: str) -> pl.DataFrame:
    """Good lines without quotes (``i``, ``text``) parsed by ``polars.read_csv`` (all String) with ``_row_number``."""
    if lines.is_empty():
        return pl.DataFrame(schema={**dict.fromkeys(header, pl.String()), "_row_number": pl.Int64()})
    frame = _read_csv((lines.select(pl.col("text").str.join("\n")).item() + "\n").encode(), header)
    if frame.height != lines.height:  # defensive: the line scan and polars disagree on what a row is
        raise RejectedFileError("unreadable", f"{name}: {lines.height} good data lines but polars read {frame.height}")
    return frame.with_columns((lines.get_column("i").cast(pl.Int64) + 1).alias("_row_number"))


def _split_records(body: list[str], check: _LineCheck, bad: list[_BadLine]) -> list[tuple[int, list[str]]]:
    """Split every data line with the :mod:`csv` module (a quoted field may span lines); return the good records
    as ``(row number, fields)`` and append the bad ones to ``bad``."""
    reader = csv.reader(line + "\n" for line in body)
    good: list[tuple[int, list[str]]] = []
    start = 0
    while start < len(body):
        error = None
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            fields, error = [], str(exc)
        end = max(reader.line_num, start + 1)
        if end - start == 1 and not body[start].strip() and error is None:
            start = end
            continue  # a blank line is not a row
        if error is None and "\n".join(body[start:end]).count('"') % 2:
            error = "a quoted field is never closed"
        problem = check(start, len(fields), error, end - start)
        if problem is None:
            good.append((start + 1, fields))
        else:
            bad.append(problem)
        start = end
    return good


def _json_text(value: Any) -> str | None:
    """A JSON value as bronze text: strings as they are, null as null, anything else as compact JSON."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _objects_frame(objects: list[tuple[int, dict]]) -> tuple[pl.DataFrame, list[str]]:
    columns = list(dict.fromkeys(k for _, obj in objects for k in obj))
    frame = pl.DataFrame(
        {
            **{c: pl.Series(c, [_json_text(obj.get(c)) for _, obj in objects], dtype=pl.String) for c in columns},
            "_row_number": pl.Series([row for row, _ in objects], dtype=pl.Int64),
        }
    )
    return frame, columns


def _kind_of(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")


def _parse_ndjson(payload: bytes, name: str) -> pl.DataFrame:
    """One object per line (see the module docstring); a ``.json`` file starting with ``[`` is an array."""
    if payload.removeprefix(BOM).lstrip().startswith(b"["):
        return _parse_json_array(payload, name)
    text = _split_lines(payload)
    objects: list[tuple[int, dict]] = []
    bad: list[_BadLine] = []
    last = text.lines.len() - 1
    for i, line in enumerate(text.lines.to_list()):
        if i in text.undecodable:
            bad.append(_BadLine(i + 1, "encoding", f"line {i + 1} {text.undecodable[i]}", line))
            continue
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            kind = "truncated" if i == last and not text.ends_with_newline else "json"
            bad.append(_BadLine(i + 1, kind, f"line {i + 1} is not valid JSON ({exc.msg}, column {exc.colno})", line))
            continue
        if isinstance(obj, dict):
            objects.append((i + 1, obj))
        else:
            bad.append(_BadLine(i + 1, "json", f"line {i + 1} is {_kind_of(obj)}, not a JSON object", line))
    _check_bad_share(bad, len(objects) + len(bad), name)
    frame, columns = _objects_frame(objects)
    return _assemble([frame], bad, columns)


def _parse_json_array(payload: bytes, name: str) -> pl.DataFrame:
    """A JSON document that is one array: each object element is a row, numbered by its position."""
    try:
        text = payload.removeprefix(BOM).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RejectedFileError(
            "encoding",
            f"{name} is not valid UTF-8 (byte {exc.start}); a JSON document is read whole; re-export it as UTF-8",
        ) from exc
    decoder = json.JSONDecoder()
    space = re.compile(r"\s*")
    pos = space.match(text, text.index("[") + 1).end()  # type: ignore[union-attr]
    objects: list[tuple[int, dict]] = []
    bad: list[_BadLine] = []
    line, counted = 1, 0
    while pos < len(text) and text[pos] != "]":
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise RejectedFileError("unreadable", f"{name}: the JSON array does not parse: {exc}") from exc
        line, counted = line + text.count("\n", counted, pos), pos
        element = len(objects) + len(bad) + 1
        if isinstance(value, dict):
            objects.append((element, value))
        else:
            bad.append(
                _BadLine(
                    element,
                    "json",
                    f"element {element} (line {line}) is {_kind_of(value)}, not a JSON object",
                    text[pos:end],
                )
            )
        pos = space.match(text, end).end()  # type: ignore[union-attr]
        if pos < len(text) and text[pos] == ",":
            pos = space.match(text, pos + 1).end()  # type: ignore[union-attr]
        elif pos >= len(text) or text[pos] != "]":
            raise RejectedFileError("unreadable", f"{name}: the JSON array is not closed or not separated by commas")
    if pos >= len(text) or text[pos + 1 :].strip():
        raise RejectedFileError("unreadable", f"{name}: the JSON array is not closed, or text follows it")
    _check_bad_share(bad, len(objects) + len(bad), name)
    frame, columns = _objects_frame(objects)
    return _assemble([frame], bad, columns)


def _as_text(frame: pl.DataFrame) -> pl.DataFrame:
    """Typed (Parquet) columns as the text bronze keeps (see the module docstring)."""
    exprs: list[pl.Expr] = []
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        if isinstance(dtype, pl.Datetime):
            if dtype.time_zone is not None:
                col, fmt, suffix = col.dt.convert_time_zone("UTC"), "%Y-%m-%dT%H:%M:%S", "Z"
            else:
                fmt, suffix = "%Y-%m-%d %H:%M:%S", ""
            whole = col.dt.truncate("1s") == col
            text = pl.when(whole).then(col.dt.to_string(fmt + suffix)).otherwise(col.dt.to_string(fmt + "%.f" + suffix))
            exprs.append(text.alias(name))
        elif isinstance(dtype, pl.List | pl.Array | pl.Struct):
            encoded = pl.struct(col.alias("v")).struct.json_encode().str.strip_prefix('{"v":').str.strip_suffix("}")
            exprs.append(pl.when(col.is_null()).then(None).otherwise(encoded).alias(name))
        else:
            exprs.append(col.cast(pl.String))
    return frame.select(exprs)


def _decompress(payload: bytes, name: str) -> bytes:
    try:
        return gzip.decompress(payload)
    except (OSError, EOFError, zlib.error) as exc:
        raise RejectedFileError("unreadable", f"{name}: corrupt gzip compression: {type(exc).__name__}: {exc}") from exc


def parse_file(payload: bytes, name: str) -> pl.DataFrame:
    """Parse a landed file's bytes into the file's columns, all ``pl.String``, plus :data:`PARSE_COLUMNS`.

    Formats by file name: ``.csv``, ``.csv.gz``, ``.parquet``, ``.json``/``.jsonl``/``.ndjson``; how each is read,
    what a bad line is and when a file is rejected whole: see the module docstring.

    Raises:
        RejectedFileError: the file cannot be read faithfully (module docstring).
    """
    lower = name.lower()
    try:
        if lower.endswith(".csv.gz"):
            payload, lower = _decompress(payload, name), lower[:-3]
        if lower.endswith(".csv"):
            return _parse_csv(payload, name)
        if lower.endswith((".json", ".jsonl", ".ndjson")):
            return _parse_ndjson(payload, name)
        if lower.endswith(".parquet"):
            frame = _as_text(pl.read_parquet(io.BytesIO(payload)))
            return frame.with_columns(
                pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("_row_number"),
                pl.lit(None, pl.String).alias("_corrupt_record"),
                pl.lit(None, pl.String).alias("_parse_error"),
            )
        raise RejectedFileError("format", f"{name}: unsupported format; expected one of {SUPPORTED_SUFFIXES}")
    except RejectedFileError:
        raise
    except (pl.exceptions.PolarsError, OSError, EOFError, ValueError) as exc:
        raise RejectedFileError("unreadable", f"{name}: {type(exc).__name__}: {exc}") from exc


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
    ``_rescued_data`` as JSON. ``_row_number``, ``_corrupt_record`` and ``_parse_error`` are taken from ``raw``
    when :func:`parse_file` made it; a frame without them (built by hand) gets rows 1..n and no bad lines.

    Raises:
        RejectedFileError: a required column of ``spec`` is missing.
    """
    raw = raw.rename({c: c.strip().lower() for c in raw.columns if c not in PARSE_COLUMNS})
    missing = [c for c in spec.required_columns if c not in raw.columns]
    if missing:
        data_columns = [c for c in raw.columns if c not in PARSE_COLUMNS]
        raise RejectedFileError(
            "missing_columns", f"{source_file}: required column(s) {missing} missing; found {data_columns}"
        )
    extra = [c for c in raw.columns if c not in spec.columns and c not in PARSE_COLUMNS]
    corrupt = pl.col("_corrupt_record") if "_corrupt_record" in raw.columns else pl.lit(None, pl.String)
    rescued = pl.struct(extra).struct.json_encode() if extra else pl.lit(None, dtype=pl.String)
    row_number = (
        pl.col("_row_number").cast(pl.Int64)
        if "_row_number" in raw.columns
        else pl.int_range(1, pl.len() + 1, dtype=pl.Int64)
    )
    return raw.select(
        *[
            pl.col(c).cast(pl.String) if c in raw.columns else pl.lit(None, dtype=pl.String).alias(c)
            for c in spec.columns
        ],
        pl.when(corrupt.is_null()).then(rescued).alias("_rescued_data"),
        corrupt.cast(pl.String).alias("_corrupt_record"),
        (pl.col("_parse_error") if "_parse_error" in raw.columns else pl.lit(None, pl.String))
        .cast(pl.String)
        .alias("_parse_error"),
        pl.lit(source_file).alias("_source_file"),
        pl.lit(file_hash).alias("_content_hash"),
        row_number.alias("_row_number"),
        pl.lit(batch_id).alias("_batch_id"),
        pl.lit(batch_seq, dtype=pl.Int64).alias("_batch_seq"),
        pl.lit(ingested_at).cast(pl.Datetime("us", "UTC")).alias("_ingested_at"),
    )


def bad_line_summary(bronze: pl.DataFrame) -> str | None:
    """``"<k> of <n> rows are unparseable lines (quarantined by silver); first: <message>"``, or None when none are."""
    errors = bronze.get_column("_parse_error").drop_nulls() if "_parse_error" in bronze.columns else pl.Series([])
    if errors.is_empty():
        return None
    return (
        f"{errors.len()} of {bronze.height} rows are unparseable lines (kept raw, quarantined by silver); "
        f"first: {errors[0]}"
    )


def empty_bronze(spec: SourceSpec) -> pl.DataFrame:
    """A zero-row frame with the bronze schema of ``spec``."""
    return pl.DataFrame(schema={**{c: pl.String() for c in spec.columns}, **META_COLUMNS})
