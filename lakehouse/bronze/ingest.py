"""Landing zone -> bronze: ingest every landed file exactly once, by content.

For one source, :func:`ingest_source` lists the landing folder (a local folder or an S3 prefix, through
:class:`lakehouse.folders.Folder`: the same steps on both) and, for each candidate file:

* same name and same bytes as a file already logged -> nothing to do (re-runs are idempotent);
* bytes already ingested under another name -> logged as ``duplicate`` (rows not ingested again);
* cannot be read faithfully as a whole (see :mod:`lakehouse.bronze.parsing`: another delimiter, corrupt
  compression, a header that is not UTF-8, a required column missing, more than half of its lines bad...) ->
  ``rejected``: copied intact to the source's rejected folder (:meth:`lakehouse.tables.Landing.rejected_dir`)
  with ``<file>.reason.json`` beside it; the landed file itself is left in place;
* otherwise -> ``ingested``: its rows are appended to ``bronze/<source>`` in a **batch**: one Delta commit and
  one ``_batch_seq`` for consecutive files until they hold ``max_batch_rows`` rows (a larger file is a batch of its
  own), so a run holds at most about one batch in memory and silver can consume a bounded number of rows per
  MERGE, while many small files still make few commits (a new version of a file
  with the same name is a correction, and silver upserts its rows over the old ones). A file with a few bad
  lines (wrong number of fields, cut off, an undecodable byte, not a JSON object) is ingested too: each bad line
  is a bronze row with its raw text in ``_corrupt_record`` and the reason in ``_parse_error``, which silver
  quarantines; the log's ``reason`` then says how many lines were bad and names the first.

The ingest log ``bronze/<source>_ingest_log`` has one row per (file name, content hash): ``source,
file_name, content_hash, size_bytes (Int64, bytes), status, reason, rows (Int64), batch_id, batch_seq,
logged_at (Datetime UTC), file_version``. ``rows`` counts every data row of an ingested file, bad lines included
(blank lines are not rows), so it equals the file's rows in bronze.

**A run costs the new files, not the landing zone.** Reading and hashing every landed file on every run would
grow with the landing zone (at 10x, adding a 12th month cost 1.56x adding the 2nd in ``bronze__flights``). So the
log also keeps ``file_version``, the file's :attr:`lakehouse.folders.Entry.fingerprint` when it was read (size and
ETag for an object; size and change time ``max(mtime, ctime)`` in ns for a local file), and a file whose name and
fingerprint are in the log is skipped from the listing alone, unread; any other file is read and hashed as before.
The fast path is the quick check rsync makes (size and mtime), made stronger by ``ctime``, which every write sets
and no user can set back. Like git's "racily clean" index entries, a local file changed less than
:data:`RACY_SECONDS` before the run started may still be rewritten with the same size within the same tick of the
filesystem's clock, so its fingerprint is not recorded then (null). A later run reads and hashes such a file again,
finds its name and content in the log, and records the fingerprint it now trusts on the file's log row (one MERGE
of those rows per run), so the file is read once more, not by every run; the same holds for a file whose fingerprint
changed while its bytes did not (copied back, touched) and for rows without one (logs written before this column
existed, which read it as null, or rows rebuilt from bronze after a crash).

Exactly once: a batch's bronze rows and its sequence number are committed atomically (a Delta ``txn``); the log
rows of its files are written right after (with those of the duplicate and rejected files met before them). If a
crash falls between the two, the next run rebuilds the missing log rows from bronze itself, so a file is never
ingested twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import polars as pl

from lakehouse.bronze.parsing import (
    RejectedFileError,
    bad_line_summary,
    content_hash,
    discover,
    parse_file,
    to_bronze,
)
from lakehouse.folders import Entry, Folder
from lakehouse.sources import SourceSpec
from lakehouse.tables import BRONZE, INGEST_LOG, Lake, Landing

MAX_BATCH_ROWS = 1_000_000  # bronze rows per batch (commit); bounds ingestion's memory, see the module docstring
RACY_SECONDS = 2.0  # a local file changed this close before a run is hashed by every run (module docstring)
LOG_SCHEMA = pl.Schema(
    {
        "source": pl.String(),
        "file_name": pl.String(),
        "content_hash": pl.String(),
        "size_bytes": pl.Int64(),
        "status": pl.String(),
        "reason": pl.String(),
        "rows": pl.Int64(),
        "batch_id": pl.String(),
        "batch_seq": pl.Int64(),
        "logged_at": pl.Datetime("us", "UTC"),
        "file_version": pl.String(),
    }
)


@dataclass
class IngestReport:
    """What one ingest did: ``log`` (:data:`LOG_SCHEMA`, one row per file met) and ``batch_seq``, the newest
    batch number the source has after it (one batch per ``max_batch_rows`` rows of ingested files)."""

    source: str
    batch_seq: int
    log: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=LOG_SCHEMA))

    def count(self, status: str) -> int:
        return self.log.filter(pl.col("status") == status).height

    @property
    def rows(self) -> int:
        return int(self.log.get_column("rows").sum() or 0)


def read_log(lake: Lake, spec: SourceSpec) -> pl.DataFrame:
    """The source's whole ingest log (:data:`LOG_SCHEMA`; a column a log written by an older release lacks is
    null)."""
    log = lake.read(INGEST_LOG[spec.name])
    missing = [pl.lit(None, dtype).alias(c) for c, dtype in LOG_SCHEMA.items() if c not in log.columns]
    return log.with_columns(missing).select(list(LOG_SCHEMA)).cast(LOG_SCHEMA)


def trusted_fingerprint(entry: Entry, now: datetime) -> str | None:
    """``entry``'s fingerprint when the ingest log may skip the file by it later: always for an object; for a
    local file only when it last changed at least :data:`RACY_SECONDS` before ``now`` (module docstring)."""
    if entry.version is None and entry.changed_ns > (now - timedelta(seconds=RACY_SECONDS)).timestamp() * 1e9:
        return None
    return entry.fingerprint


def _reconcile(lake: Lake, spec: SourceSpec, now: datetime) -> pl.DataFrame:
    """The ingest log, completed with any file present in bronze but missing from the log (crash recovery)."""
    log = read_log(lake, spec)
    if not lake.exists(BRONZE[spec.name]):
        return log
    # The log is appended after the bronze commit, one commit per batch, so only batches after the newest logged
    # one can be missing from it: read those (the files of older batches are skipped by their _batch_seq
    # statistics in the Delta log, so a run does not read the lake's bronze).
    logged = log.get_column("batch_seq").max()
    newest_logged = -1 if logged is None else int(logged)  # type: ignore[arg-type]
    in_bronze = (
        lake.scan(BRONZE[spec.name])
        .filter(pl.col("_batch_seq") > newest_logged)
        .group_by(pl.col("_source_file").alias("file_name"), pl.col("_content_hash").alias("content_hash"))
        .agg(
            pl.len().cast(pl.Int64).alias("rows"),
            pl.col("_batch_id").first().alias("batch_id"),
            pl.col("_batch_seq").first().alias("batch_seq"),
        )
        .collect()
    )
    missing = in_bronze.join(log, on=["file_name", "content_hash"], how="anti")
    if missing.is_empty():
        return log
    recovered = missing.select(
        pl.lit(spec.name).alias("source"),
        "file_name",
        "content_hash",
        pl.lit(None, pl.Int64).alias("size_bytes"),
        pl.lit("ingested").alias("status"),
        pl.lit("recovered from bronze after an interrupted run").alias("reason"),
        "rows",
        "batch_id",
        "batch_seq",
        pl.lit(now).alias("logged_at"),
        pl.lit(None, pl.String).alias("file_version"),
    ).cast(LOG_SCHEMA)
    lake.append(INGEST_LOG[spec.name], recovered)
    return pl.concat([log, recovered])


def reject(landing: Landing, spec: SourceSpec, name: str, digest: str, error: RejectedFileError, now: datetime) -> str:
    """Copy the rejected file ``name`` of the source's landing folder intact to its rejected folder, with a JSON
    reason beside it (``<name>.reason.json``); return the copy's location. The landed file stays where it is."""
    target_dir = landing.rejected(spec.name)
    target = target_dir.copy_in(landing.source(spec.name), name)
    reason = {
        "source": spec.name,
        "file_name": name,
        "content_hash": digest,
        "reason": error.reason,
        "detail": error.detail,
        "rejected_at": now.isoformat(),
    }
    target_dir.write(f"{name}.reason.json", json.dumps(reason, indent=2).encode())
    return target


def next_batch_seq(lake: Lake, spec: SourceSpec, log: pl.DataFrame) -> int:
    """The batch sequence number of the next ingest: one more than any in the log or committed to bronze."""
    seqs = [int(log.select(pl.col("batch_seq").max()).item() or 0)] if log.height else [0]
    if lake.exists(BRONZE[spec.name]):
        seqs.append(lake.consumed_version(BRONZE[spec.name]))
    return max(seqs) + 1


def ingest_source(
    lake: Lake,
    landing: Landing,
    spec: SourceSpec,
    batch_id: str,
    now: datetime | None = None,
    only: list[str] | None = None,
    max_batch_rows: int = MAX_BATCH_ROWS,
) -> IngestReport:
    """Ingest the new files of one source (see module docstring) and return what happened to each.

    Args:
        only: restrict to these file names (a sensor's batch); files already logged are still skipped.
        max_batch_rows: close a bronze batch (one commit) once its files hold at least this many rows.
    """
    now = now or datetime.now(UTC)
    log = _reconcile(lake, spec, now)
    batch_seq = next_batch_seq(lake, spec, log)
    logged = set(zip(log.get_column("file_name").to_list(), log.get_column("content_hash").to_list(), strict=True))
    unchanged = set(log.drop_nulls("file_version").select("file_name", "file_version").iter_rows())
    fingerprints: list[tuple[str, str, str]] = []  # (file_name, content_hash, file_version) to record on the log
    first_name = {
        h: n
        for n, h, s in zip(log["file_name"], log["content_hash"], log["status"], strict=True)
        if s in ("ingested", "rejected")
    }
    entries: list[dict] = []
    frames: list[pl.DataFrame] = []
    pending_rows = 0
    logs: list[pl.DataFrame] = []

    def flush() -> None:
        """Commit the pending batch (rows and number atomically), then the log rows of its files."""
        nonlocal batch_seq, pending_rows
        if frames:
            lake.append(BRONZE[spec.name], pl.concat(frames, how="vertical"), progress=batch_seq)
            frames.clear()
            pending_rows = 0
            batch_seq += 1
        if entries:
            logs.append(pl.DataFrame(entries, schema=LOG_SCHEMA))
            lake.append(INGEST_LOG[spec.name], logs[-1])
            entries.clear()

    wanted = set(only) if only is not None else None
    folder = landing.source(spec.name)
    for file in discover(folder):
        if wanted is not None and file.name not in wanted:
            continue
        if (file.name, file.fingerprint) in unchanged:
            continue  # the same file as one logged: not read again
        payload = folder.read(file.name)
        digest = content_hash(payload)
        if (file.name, digest) in logged:
            fingerprint = trusted_fingerprint(file, now)  # read for nothing: record what would have skipped it
            if fingerprint is not None:
                fingerprints.append((file.name, digest, fingerprint))
            continue
        entry = {
            "source": spec.name,
            "file_name": file.name,
            "content_hash": digest,
            "size_bytes": len(payload),
            "reason": None,
            "rows": 0,
            "batch_id": batch_id,
            "batch_seq": batch_seq,
            "logged_at": now,
            "file_version": trusted_fingerprint(file, now),
        }
        if digest in first_name:
            entries.append(
                {
                    **entry,
                    "status": "duplicate",
                    "reason": f"same content as {first_name[digest]} (sha256 {digest[:12]}…)",
                }
            )
            continue
        try:
            rows = to_bronze(
                parse_file(payload, file.name),
                spec,
                source_file=file.name,
                file_hash=digest,
                batch_id=batch_id,
                batch_seq=batch_seq,
                ingested_at=now,
            )
        except RejectedFileError as err:
            reject(landing, spec, file.name, digest, err, now)
            entries.append({**entry, "status": "rejected", "reason": str(err)})
            first_name[digest] = file.name
            continue
        del payload
        frames.append(rows)
        pending_rows += rows.height
        entries.append({**entry, "status": "ingested", "rows": rows.height, "reason": bad_line_summary(rows)})
        first_name[digest] = file.name
        logged.add((file.name, digest))
        if pending_rows >= max_batch_rows:
            flush()
    flush()
    if fingerprints:
        lake.merge(INGEST_LOG[spec.name], with_fingerprints(log, fingerprints))
    new_log = pl.concat(logs) if logs else pl.DataFrame(schema=LOG_SCHEMA)
    return IngestReport(source=spec.name, batch_seq=batch_seq - 1, log=new_log)


def with_fingerprints(log: pl.DataFrame, fingerprints: list[tuple[str, str, str]]) -> pl.DataFrame:
    """The rows of ``log`` (:data:`LOG_SCHEMA`) for the files ``(file_name, content_hash, file_version)``, one per
    file (the newest logged), with ``file_version`` set to the given fingerprint: the source of a MERGE on the log's
    key that updates those rows only (every other column keeps its logged value)."""
    found = pl.DataFrame(fingerprints, schema=["file_name", "content_hash", "file_version"], orient="row")
    return (
        log.drop("file_version")
        .unique(subset=["file_name", "content_hash"], keep="last", maintain_order=True)
        .join(found, on=["file_name", "content_hash"], how="inner")
        .select(list(LOG_SCHEMA))
        .cast(LOG_SCHEMA)
    )


def already_handled(lake: Lake, spec: SourceSpec, folder: Folder, names: list[str]) -> set[str]:
    """The ``names`` (files in ``folder``) whose exact bytes are already in the ingest log under the same name, as
    ingested, duplicate or rejected: a bronze run for them would do nothing.

    The landing sensor uses it so that a fresh sensor cursor (the first ``lakehouse ui`` after ``lakehouse run``)
    does not start runs for files the CLI already ingested. Costs one read of the (small) log and one sha256 per
    name.
    """
    if not names or not lake.exists(INGEST_LOG[spec.name]):
        return set()
    logged = set(lake.read(INGEST_LOG[spec.name], ["file_name", "content_hash"]).iter_rows())
    handled = set()
    for name in names:
        try:
            digest = content_hash(folder.read(name))
        except OSError:
            continue  # gone or unreadable now: bronze decides
        if (name, digest) in logged:
            handled.add(name)
    return handled
