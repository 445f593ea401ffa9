"""Keep the lake's Delta tables small and fast with delta-rs's own maintenance API (pure: no Dagster, no MLflow).

Without maintenance every gold run leaves the previous copy of the table on disk (five runs: 113 MB of Parquet for
a 23 MB ``gold/flight_features``), every MERGE leaves the files it superseded, append-only tables (drift,
decisions, ingest logs, bronze) gain a small file per run or per landed batch, and the Delta log grows by one JSON
commit per write. :func:`maintain` does, per table of the catalogue (:mod:`lakehouse.tables`):

1. **compact** (``DeltaTable.optimize.compact``): rewrite small files into files of about ``target_size`` bytes
   (delta-rs default 100 MB), per partition, keeping row order within a partition. Not for tables the writer
   replaces whole (``Table.overwritten``: gold, predictions, decisions): each write is already one file, and a
   compaction committed while an overwrite is in flight makes the overwrite keep the compacted copy of the old
   rows next to its new ones (docs/stack-notes.md, "Delta maintenance").
2. **vacuum** (``DeltaTable.vacuum(retention_hours, dry_run=False, enforce_retention_duration,
   keep_versions)``), in delta-rs's default *lite* mode: delete the data files the log removed more than
   ``retention_hours`` ago, **except the files of** ``keep_versions`` (the Delta versions registered models were
   trained on, :func:`lakehouse.ml.registry.trained_versions`: :func:`lakehouse.ml.registry.reproduce` and drift's
   reference time-travel to them). Lite mode never deletes a file the log does not mention, so an uncommitted
   file of a writer in flight is never touched. Default retention: :data:`DEFAULT_RETENTION_HOURS` (Delta's
   ``delta.deletedFileRetentionDuration`` default, 7 days); a shorter one turns off delta-rs's retention check
   (``enforce_retention_duration=False``) and may delete files a reader of an older snapshot still reads.
3. **checkpoint** (``create_checkpoint``): a Parquet checkpoint of the current version, so opening the table
   reads one file instead of every JSON commit.
4. **clean the log** (``cleanup_metadata``): delete JSON commits older than ``delta.logRetentionDuration``
   (30 days) that precede the checkpoint; skipped for a table with ``keep_versions``, whose time travel needs
   those commits.
5. **table properties**: give a table created by an earlier version the properties every table is now created
   with (:data:`lakehouse.storage.TABLE_PROPERTIES`: a checkpoint every 10 commits, the log's clean-up left to
   step 4), one ``SET TBLPROPERTIES`` commit, nothing when it has them.

Maintenance changes no row. Its commits (``OPTIMIZE``, ``VACUUM START/END``, ``SET TBLPROPERTIES``) are looked
through by :meth:`lakehouse.tables.Lake.data_version`, so maintained silver tables do not make gold rebuild.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote

import polars as pl

from lakehouse import storage
from lakehouse.tables import ALL_TABLES, Lake, Table

DEFAULT_RETENTION_HOURS = 168
"""Delta's default ``delta.deletedFileRetentionDuration`` (``interval 1 week``), which delta-rs enforces."""


@dataclass(frozen=True)
class Footprint:
    """What a table holds: ``files``/``bytes`` of its current version (from the Delta log) and ``disk_files``/
    ``disk_bytes`` of every Parquet data file in its folder (all versions; None for a non-local location)."""

    version: int
    files: int
    bytes: int
    disk_files: int | None
    disk_bytes: int | None


@dataclass(frozen=True)
class TableReport:
    """What :func:`maintain` did to one table (``path``: ``<layer>/<name>``). ``files_compacted``: small files the
    compaction replaced by ``files_written``; ``files_vacuumed``: data files deleted from disk; ``versions_kept``:
    the versions whose files vacuum kept (``keep_versions``); ``skipped``: why nothing was done (table missing)."""

    path: str
    before: Footprint | None
    after: Footprint | None
    files_compacted: int = 0
    files_written: int = 0
    files_vacuumed: int = 0
    versions_kept: list[int] = field(default_factory=list)
    checkpoint: bool = False
    log_cleaned: bool = False
    skipped: str | None = None

    def as_row(self) -> dict:
        """One flat row (the :func:`reports_frame` columns)."""
        b, a = self.before, self.after
        return {
            "table": self.path,
            "version_before": b.version if b else None,
            "version_after": a.version if a else None,
            "files_before": b.files if b else None,
            "files_after": a.files if a else None,
            "bytes_before": b.bytes if b else None,
            "bytes_after": a.bytes if a else None,
            "disk_files_before": b.disk_files if b else None,
            "disk_files_after": a.disk_files if a else None,
            "disk_bytes_before": b.disk_bytes if b else None,
            "disk_bytes_after": a.disk_bytes if a else None,
            "files_compacted": self.files_compacted,
            "files_written": self.files_written,
            "files_vacuumed": self.files_vacuumed,
            "versions_kept": ",".join(map(str, self.versions_kept)),
            "skipped": self.skipped,
        }


REPORT_SCHEMA = pl.Schema(
    {
        "table": pl.String(),
        "version_before": pl.Int64(),
        "version_after": pl.Int64(),
        "files_before": pl.Int64(),  # data files of the current version
        "files_after": pl.Int64(),
        "bytes_before": pl.Int64(),
        "bytes_after": pl.Int64(),
        "disk_files_before": pl.Int64(),  # Parquet files in the table's folder, every version
        "disk_files_after": pl.Int64(),
        "disk_bytes_before": pl.Int64(),
        "disk_bytes_after": pl.Int64(),
        "files_compacted": pl.Int64(),
        "files_written": pl.Int64(),
        "files_vacuumed": pl.Int64(),
        "versions_kept": pl.String(),  # comma-separated Delta versions
        "skipped": pl.String(),
    }
)


def reports_frame(reports: Iterable[TableReport]) -> pl.DataFrame:
    """The reports as a frame with :data:`REPORT_SCHEMA` (one row per table)."""
    return pl.DataFrame([r.as_row() for r in reports], schema=REPORT_SCHEMA)


def _disk_files(location: str) -> dict[str, int] | None:
    """Every Parquet data file in a local table's folder (all versions) with its size; None for a URI."""
    if "://" in location:
        return None
    return {
        os.path.join(folder, name): os.path.getsize(os.path.join(folder, name))
        for folder, _, names in os.walk(location)
        if "_delta_log" not in os.path.relpath(folder, location).split(os.sep)
        for name in names
        if name.endswith(".parquet")
    }


def footprint(location: str) -> Footprint:
    """:class:`Footprint` of the Delta table at ``location``."""
    dt = storage.open_table(location)
    actions = pl.DataFrame(dt.get_add_actions(flatten=True))
    disk = _disk_files(location)
    return Footprint(
        version=dt.version(),
        files=actions.height,
        bytes=int(actions.get_column("size_bytes").sum()) if actions.height else 0,
        disk_files=None if disk is None else len(disk),
        disk_bytes=None if disk is None else sum(disk.values()),
    )


def live_files(location: str) -> set[str]:
    """Absolute paths of the data files of the current version (for tests and checks)."""
    return {
        os.path.join(location, unquote(p))
        for p in pl.DataFrame(storage.open_table(location).get_add_actions()).get_column("path")
    }


def maintain(
    lake: Lake,
    table: Table,
    *,
    retention_hours: int = DEFAULT_RETENTION_HOURS,
    keep_versions: Sequence[int] = (),
    compact: bool = True,
    target_size: int | None = None,
) -> TableReport:
    """Compact (unless ``table.overwritten`` or not ``compact``), vacuum, checkpoint, clean the log of and set the
    missing table properties of ``table`` (module docstring). ``retention_hours``: how long a removed file stays
    on disk (hours, >= 0); ``keep_versions``: Delta versions whose files are kept whatever their age (versions the
    table no longer has are ignored); ``target_size``: bytes per compacted file (None: ``delta.targetFileSize`` or
    100 MB).

    Raises:
        ValueError: ``retention_hours`` is negative.
        deltalake.exceptions.CommitFailedError: a concurrent writer committed a MERGE or an overwrite while the
            compaction ran (delta-rs refuses the compaction; nothing is changed). The Dagster job prevents it
            with the writer's concurrency pool.
    """
    if retention_hours < 0:
        raise ValueError(f"retention_hours must be >= 0, got {retention_hours}")
    location = lake.location(table)
    if not lake.exists(table):
        return TableReport(table.path, None, None, skipped="table does not exist")
    before = footprint(location)
    compacted = written = 0
    if compact and not table.overwritten:
        metrics = storage.open_table(location).optimize.compact(target_size=target_size)
        compacted, written = int(metrics["numFilesRemoved"]), int(metrics["numFilesAdded"])
    dt = storage.open_table(location)
    kept = sorted({int(v) for v in keep_versions if 0 <= int(v) <= dt.version()})
    on_disk = _disk_files(location)
    vacuumed = dt.vacuum(
        retention_hours=retention_hours,
        dry_run=False,
        enforce_retention_duration=retention_hours >= DEFAULT_RETENTION_HOURS,
        keep_versions=kept or None,
    )
    dt = storage.open_table(location)
    dt.create_checkpoint()
    if not kept:
        dt.cleanup_metadata()
    configuration = dt.metadata().configuration
    missing = {k: v for k, v in storage.TABLE_PROPERTIES.items() if configuration.get(k) != v}
    if missing:
        dt.alter.set_table_properties(missing)
    return TableReport(
        table.path,
        before,
        footprint(location),
        files_compacted=compacted,
        files_written=written,
        # delta-rs 1.6 lists again, with keep_versions, files an earlier vacuum already deleted: count what went
        files_vacuumed=len(vacuumed) if on_disk is None else len(on_disk.keys() - (_disk_files(location) or {})),
        versions_kept=kept,
        checkpoint=True,
        log_cleaned=not kept,
    )


def maintain_lake(
    lake: Lake,
    tables: Sequence[Table] = ALL_TABLES,
    *,
    protected: Mapping[str, Sequence[int]] | None = None,
    retention_hours: int = DEFAULT_RETENTION_HOURS,
    compact: bool = True,
    target_size: int | None = None,
) -> list[TableReport]:
    """:func:`maintain` every table of ``tables``, keeping the versions ``protected`` names for it
    (``<layer>/<name>`` -> versions, e.g. :func:`lakehouse.ml.registry.trained_versions`)."""
    protected = protected or {}
    return [
        maintain(
            lake,
            t,
            retention_hours=retention_hours,
            keep_versions=protected.get(t.path, ()),
            compact=compact,
            target_size=target_size,
        )
        for t in tables
    ]
