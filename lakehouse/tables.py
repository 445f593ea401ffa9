"""The table catalogue: every table of the lakehouse, declared once, as data.

A :class:`Table` says what a table is (layer and name, hence its asset key and its place in the lake; its natural
and MERGE keys, its Delta partitioning, the Delta application-transaction id of its writer). A :class:`Lake` turns
a table into a location under the lake root and reads or writes it with the keys the catalogue declares; a
:class:`Landing` does the same for the landing zone's folders (a source's folder, its rejected folder). Nothing
else in the code base builds a table location.

Locations are strings (:mod:`lakehouse.locations`): an absolute local path, or ``s3://bucket/prefix/<layer>/<name>``
under an object-store root; the same joins give both, and every Delta call goes through :mod:`lakehouse.storage`,
which passes the location's storage options.

| table | layer | written by | key |
|---|---|---|---|
| ``bronze/<source>`` | bronze | append, txn ``bronze.<source>`` = batch sequence | ``_content_hash, _row_number`` |
| ``bronze/<source>_ingest_log`` | bronze | append; MERGE of a re-read file's version | ``file_name, content_hash`` |
| ``silver/<source>`` | silver | MERGE on the surrogate key, txn ``silver.<source>`` = consumed batch | natural key |
| ``silver/<source>_quarantine`` | silver | MERGE on ``_content_hash, _row_number`` | same |
| ``gold/flight_features`` | gold | replace-where per month (``flight_month``) | ``flight_id`` |
| ``gold/route_daily_delays`` | gold | replace-where per month (``flight_month``) | ``flight_date, origin, dest`` |
| ``gold/flight_delay_predictions`` | gold | replace-where per month (``flight_month``) | ``flight_id`` |
| ``ml/feature_drift`` | ml | append (one row per column per evaluation) | ``evaluation_id, column`` |
| ``ml/model_decisions`` | ml | append (one row per champion/challenger decision) | ``challenger_version`` |

**CHECK constraints.** A table whose ``constraints_from`` names contracts carries, as Delta CHECK constraints, the
SQL form of those contracts' column checks (:func:`lakehouse.contracts.check_constraints`): silver tables their own
contract, gold tables the contracts of the columns they carry over unchanged. :class:`Lake` creates such a table
with its constraints before its first rows and, before every write, adds what an existing table lacks (and drops
what is no longer declared); a row that fails one is refused by the table itself
(:class:`lakehouse.storage.ConstraintViolation`), whoever writes it.

**Maintenance commits.** ``OPTIMIZE``, ``VACUUM START/END``, ``ADD/DROP CONSTRAINT`` and ``SET TBLPROPERTIES``
commits change no row: :meth:`Lake.data_version` and :meth:`Lake.built_from` look through them, so compacting or
vacuuming silver does not make gold rebuild.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from urllib.parse import unquote

import polars as pl
from deltalake import DeltaTable

from lakehouse import storage
from lakehouse.contracts import CONTRACTS, check_constraints
from lakehouse.folders import Folder, object_sizes, open_folder
from lakehouse.locations import is_object_store
from lakehouse.sources import SOURCES

INPUTS_KEY = "lakehouse.inputs"  # commit metadata: the input tables' Delta versions a derived table was built from
PARTITION_KEY = "lakehouse.partition"  # commit metadata: the partition (ISO date) a replace-where commit wrote
CHANGED_KEY = "lakehouse.changed"  # commit metadata: what a silver commit's rows touch (Lake.merge)
NO_DATA_CHANGE = frozenset(
    {"OPTIMIZE", "VACUUM START", "VACUUM END", "ADD CONSTRAINT", "DROP CONSTRAINT", "SET TBLPROPERTIES"}
)
"""Delta operations (``history()[i]["operation"]`` in delta-rs 1.6) that leave every row as it was."""
ROW_ID = ("_content_hash", "_row_number")
"""Identity of a landed row: the sha256 of its file's bytes and its 1-based line in the file, header not counted
(see :mod:`lakehouse.bronze.parsing`, "Row numbers")."""


@dataclass(frozen=True)
class Table:
    """One Delta table of the lake.

    ``merge_key``: the MERGE (upsert) key, empty for tables that are appended or overwritten; ``natural_key``: what
    identifies a row for a reader; ``partition_by``: Delta partition columns; ``app_id``: the Delta
    application-transaction id under which the writer commits its progress with its data (None: no progress kept).
    ``overwritten``: the writer replaces the whole table (maintenance never compacts it: a compaction racing an
    overwrite can double rows, docs/stack-notes.md, "Delta maintenance"). ``constraints_from``: ``(source,
    not_null)`` pairs, the contracts (:data:`lakehouse.contracts.CONTRACTS`) whose column checks become the table's
    CHECK constraints for the columns it has, the first source declaring a column winning; ``not_null`` False for
    a source joined with a left join (its columns may be null here even where the contract forbids it).
    """

    layer: str
    name: str
    description: str
    natural_key: tuple[str, ...] = ()
    merge_key: tuple[str, ...] = ()
    partition_by: tuple[str, ...] = ()
    app_id: str | None = None
    overwritten: bool = False
    constraints_from: tuple[tuple[str, bool], ...] = ()

    def check_constraints(self, columns: Sequence[str]) -> dict[str, str]:
        """The CHECK constraints (``{name: sql}``) of this table when it has ``columns`` (see ``constraints_from``)."""
        out: dict[str, str] = {}
        claimed: set[str] = set()
        for source, not_null in self.constraints_from:
            for column, checks in check_constraints(CONTRACTS[source], not_null=not_null).items():
                if column in columns and column not in claimed:
                    claimed.add(column)
                    out.update(checks)
        return out

    @property
    def key_fixes_partition(self) -> bool:
        """True when a row's ``merge_key`` determines its partition: the table is partitioned by natural-key columns,
        and its merge key is that natural key or the surrogate key derived from it (UUID v5 over the natural key,
        :func:`lakehouse.silver.conform.add_surrogate_key`), so rows with equal merge keys share a partition."""
        of_natural_key = self.merge_key == self.natural_key or (
            len(self.merge_key) == 1 and self.merge_key[0] in {s.surrogate_key for s in SOURCES.values()}
        )
        return of_natural_key and bool(self.partition_by) and set(self.partition_by) <= set(self.natural_key)

    @property
    def key(self) -> tuple[str, str]:
        """Asset key path (``("silver", "flights")``); the Dagster ``AssetKey`` is built from it."""
        return (self.layer, self.name)

    @property
    def path(self) -> str:
        """``<layer>/<name>``: the location relative to the lake root, and the asset key as a user string."""
        return f"{self.layer}/{self.name}"


def join(root: str, *parts: str) -> str:
    """``root/part/...`` for a local path or a URI (always ``/``; a trailing ``/`` of the root is ignored)."""
    return "/".join([root.rstrip("/"), *parts])


@dataclass(frozen=True)
class TableState:
    """A Delta table's current ``version``, its ``rows`` and its polars ``schema`` (:meth:`Lake.state`)."""

    version: int
    rows: int
    schema: pl.Schema


class Lake:
    """The Delta tables under one root: a local folder or ``s3://bucket[/prefix]`` (:mod:`lakehouse.locations`)."""

    def __init__(self, root: str):
        self.root = root

    def location(self, table: Table) -> str:
        return join(self.root, table.layer, table.name)

    def exists(self, table: Table) -> bool:
        return storage.table_exists(self.location(table))

    def version(self, table: Table) -> int:
        """Current Delta version of ``table`` (raises ``TableNotFoundError`` when it does not exist)."""
        return storage.open_table(self.location(table)).version()

    def _last_data_commit(self, table: Table, dt: DeltaTable | None = None) -> dict:
        """The newest commit of ``table`` (read through ``dt`` when given: a log already replayed) that may have
        changed rows (not in :data:`NO_DATA_CHANGE`), ``{}`` when none is left in the log."""
        dt, limit = (dt if dt is not None else storage.open_table(self.location(table))), 8
        while True:
            history = dt.history(limit)
            for commit in history:
                if commit.get("operation") not in NO_DATA_CHANGE:
                    return dict(commit)
            if len(history) < limit:
                return {}
            limit *= 4

    def data_version(self, table: Table, dt: DeltaTable | None = None) -> int:
        """Delta version of ``table``'s newest commit that may have changed rows: maintenance commits
        (:data:`NO_DATA_CHANGE`) after it do not count; read through ``dt`` (``table`` opened at its latest
        version) when given (raises ``TableNotFoundError`` when it does not exist)."""
        dt = dt if dt is not None else storage.open_table(self.location(table))
        commit = self._last_data_commit(table, dt)
        return int(commit["version"]) if commit else dt.version()

    def row_count(self, table: Table, dt: DeltaTable | None = None) -> int:
        """Rows of ``table``'s current version (of ``dt``'s, ``table`` opened, when given), from the ``numRecords``
        statistics its Delta log keeps for every data file (no data file is opened: O(files in the log), not
        O(rows)); counted by a scan when a file has no statistics (written by a writer that kept none)."""
        dt = dt if dt is not None else storage.open_table(self.location(table))
        actions = pl.DataFrame(dt.get_add_actions(flatten=True))
        if actions.is_empty():
            return 0
        records = actions.get_column("num_records")
        if records.null_count():
            return int(pl.scan_delta(dt).select(pl.len()).collect().item())
        return int(records.sum())

    def state(self, table: Table) -> TableState:
        """``table``'s current version, row count (:meth:`row_count`) and schema, from one replay of its log.

        Raises:
            deltalake.exceptions.TableNotFoundError: ``table`` does not exist.
        """
        dt = storage.open_table(self.location(table))
        # polars reads a Delta schema through the Arrow C interface, as scan_delta does: the same dtypes
        return TableState(version=dt.version(), rows=self.row_count(table, dt), schema=pl.Schema(dt.schema()))

    def scan(self, table: Table, version: int | None = None) -> pl.LazyFrame:
        return storage.scan(self.location(table), version)

    def read(self, table: Table, columns: Sequence[str] | None = None, version: int | None = None) -> pl.DataFrame:
        """Whole table as a DataFrame (an empty frame with ``columns`` when the table does not exist yet), from one
        replay of its log: polars reads the table as opened, with the storage options it was opened with."""
        dt = storage.open_existing(self.location(table), version)
        if dt is None:
            return pl.DataFrame({c: [] for c in columns or []})
        return pl.read_delta(dt, columns=list(columns) if columns else None)

    def partitions(self, table: Table, version: int | None = None) -> list[dict[str, str]]:
        """The partition values present in ``table`` (at ``version``, default the latest; Delta ``partitions()``,
        read from the log: one dict per partition)."""
        dt = storage.open_existing(self.location(table), version)
        return [] if dt is None else list(dt.partitions())

    def consumed_version(self, table: Table) -> int:
        """Last input batch its writer committed under ``table.app_id`` (-1 when none)."""
        assert table.app_id is not None, f"{table.path} keeps no progress"
        return storage.consumed_version(self.location(table), table.app_id)

    def append(
        self, table: Table, frame: pl.DataFrame, *, progress: int | None = None, metadata: dict | None = None
    ) -> None:
        """Append ``frame``; with ``progress``, record it under ``table.app_id`` in the same commit. A table with
        constraints is created with them (or given what it lacks) first (:func:`lakehouse.storage.append`)."""
        storage.append(
            self.location(table),
            frame,
            partition_by=table.partition_by,
            app_id=table.app_id if progress is not None else None,
            version=progress,
            metadata=metadata,
            checks=self._checks(table, frame),
        )

    def merge(
        self, table: Table, frame: pl.DataFrame, *, progress: int | None = None, changed: dict | None = None
    ) -> dict:
        """MERGE ``frame`` on ``table.merge_key`` (see :func:`lakehouse.storage.upsert`; rows of partitions the table
        does not hold yet are appended when :attr:`Table.key_fixes_partition`); returns its metrics.

        ``changed`` (JSON-able) is recorded in the commit under :data:`CHANGED_KEY`: what the rows of this commit
        touch (a silver table records the span of its rows' event times, :meth:`changes_since` reads it back).
        """
        assert table.merge_key, f"{table.path} has no merge key"
        return storage.upsert(
            self.location(table),
            frame,
            table.merge_key,
            partition_by=table.partition_by,
            key_fixes_partition=table.key_fixes_partition,
            checks=self._checks(table, frame),
            app_id=table.app_id if progress is not None else None,
            version=progress,
            metadata=None if changed is None else {CHANGED_KEY: json.dumps(changed, sort_keys=True)},
        )

    def replace_partition(self, table: Table, frame: pl.DataFrame, value: date, inputs: dict[str, int]) -> int:
        """Replace the rows of ``table``'s partition ``value`` (its single Date partition column) with ``frame``;
        ``inputs`` (``<layer>/<name>`` -> Delta version read) are recorded in the commit with the partition, for
        :meth:`partitions_built`. Returns the Delta version of that commit.

        Raises:
            lakehouse.storage.LayoutMismatch: the table exists partitioned otherwise (an older version wrote it).
        """
        (column,) = table.partition_by
        return storage.replace_partition(
            self.location(table),
            frame,
            column=column,
            value=value,
            partition_by=table.partition_by,
            checks=self._checks(table, frame),
            metadata={INPUTS_KEY: json.dumps(inputs, sort_keys=True), PARTITION_KEY: value.isoformat()},
        )

    def partition_commits(self, table: Table) -> dict[date, tuple[int, dict[str, int]]]:
        """Per partition value present in ``table``: the Delta version of the newest commit that wrote it
        (:meth:`replace_partition`) and the ``inputs`` that commit recorded (``-1, {}`` for a partition whose
        writing commit is no longer in the log); ``{}`` without the table. Reads the commit infos of every JSON commit
        left in the log (a checkpoint does not shorten that; the maintenance job's log clean-up does): one commit
        per month written."""
        dt = storage.open_existing(self.location(table))
        if dt is None:
            return {}
        present = {date.fromisoformat(str(p[table.partition_by[0]])) for p in dt.partitions()}
        built: dict[date, tuple[int, dict[str, int]]] = {}
        for commit in dt.history():  # newest first
            value = commit.get(PARTITION_KEY)
            if value is not None and date.fromisoformat(value) in present and date.fromisoformat(value) not in built:
                built[date.fromisoformat(value)] = (int(commit["version"]), json.loads(commit.get(INPUTS_KEY, "{}")))
        return {month: built.get(month, (-1, {})) for month in present}

    def partitions_built(self, table: Table) -> dict[date, dict[str, int]]:
        """Per partition value present in ``table``: the ``inputs`` of the newest commit that wrote it
        (:meth:`partition_commits`); ``{}`` without the table."""
        return {month: inputs for month, (_, inputs) in self.partition_commits(table).items()}

    def changes_since(self, table: Table, version: int) -> list[tuple[int, dict | None]]:
        """``(version, record)`` of ``table``'s data-changing commits after ``version``, newest first: the
        :data:`CHANGED_KEY` record of each (None for a commit that recorded none: its rows may touch anything).
        Commits that change no rows (OPTIMIZE, VACUUM, constraints, properties) are skipped."""
        dt = storage.open_existing(self.location(table))
        if dt is None:
            return []
        out: list[tuple[int, dict | None]] = []
        for commit in dt.history():
            if commit["version"] <= version:
                break
            if commit.get("operation") in NO_DATA_CHANGE:
                continue
            recorded = commit.get(CHANGED_KEY)
            out.append((int(commit["version"]), json.loads(recorded) if recorded else None))
        return out

    def overwrite(self, table: Table, frame: pl.DataFrame, inputs: dict[str, int] | None = None) -> None:
        """Replace ``table``; ``inputs`` (``<layer>/<name>`` -> Delta version read) are recorded in the commit."""
        metadata = {INPUTS_KEY: json.dumps(inputs, sort_keys=True)} if inputs is not None else None
        storage.overwrite(
            self.location(table),
            frame,
            partition_by=table.partition_by,
            metadata=metadata,
            checks=self._checks(table, frame),
        )

    @staticmethod
    def _checks(table: Table, frame: pl.DataFrame) -> dict[str, str] | None:
        """The CHECK constraints ``table`` carries when ``frame`` is written (None: a table without a contract)."""
        return table.check_constraints(frame.columns) if table.constraints_from else None

    def constraints(self, table: Table) -> dict[str, str]:
        """The CHECK constraints ``table`` carries (``{name: sql}`` as delta-rs stores them; ``{}`` without one)."""
        return storage.constraints(self.location(table))

    def input_versions(self, tables: Sequence[Table]) -> dict[str, int]:
        """:meth:`data_version` of each table (``<layer>/<name>`` -> version; -1 when it does not exist), from one
        replay of each table's log."""
        opened = {t.path: (t, storage.open_existing(self.location(t))) for t in tables}
        return {path: -1 if dt is None else self.data_version(t, dt) for path, (t, dt) in opened.items()}

    def built_from(self, table: Table) -> dict[str, int] | None:
        """The ``inputs`` recorded by the newest :meth:`overwrite` of ``table`` (None when not recorded); maintenance
        commits after it (:data:`NO_DATA_CHANGE`) are looked through."""
        dt = storage.open_existing(self.location(table))
        if dt is None:
            return None
        recorded = self._last_data_commit(table, dt).get(INPUTS_KEY)  # delta-rs puts custom metadata at the top level
        return json.loads(recorded) if recorded else None

    def damaged_location(self, table: Table, stamp: str) -> str:
        """Where :mod:`lakehouse.repair` moves a damaged ``table`` aside: ``<root>/_damaged/<stamp>/<layer>/<name>``."""
        return join(self.root, "_damaged", stamp, table.layer, table.name)

    def damage(self, table: Table, version: int | None = None) -> list[str]:
        """What is wrong with the data files of ``table`` (at ``version``, default the latest), one line each:
        a file the Delta log lists that is missing, or whose size differs from the size the log recorded
        (truncated or overwritten), or a table partitioned otherwise than the catalogue says (written by an older
        version of the code; its writer would refuse it). Empty when intact or when the table does not exist.
        On an S3 lake the sizes come from one listing of the table's prefix (:func:`lakehouse.folders.object_sizes`).

        A truncated Parquet file makes polars panic while reading (``PanicException: assertion failed:
        range.end as u64 <= self.size``, naming neither table nor file); this check names both, from metadata and
        file sizes only, without reading data.
        """
        location = self.location(table)
        dt = storage.open_existing(location, version)
        if dt is None:
            return []
        layout = list(dt.metadata().partition_columns)
        if layout != list(table.partition_by):
            expected = list(table.partition_by)
            return [f"{location} is partitioned by {layout or 'nothing'}, this version writes {expected}"]
        actions = pl.DataFrame(dt.get_add_actions(flatten=True))
        problems = []
        on_s3 = object_sizes(location) if is_object_store(location) else None
        for path, size in actions.select("path", "size_bytes").iter_rows():
            file = join(location, unquote(path)) if on_s3 is not None else os.path.join(location, unquote(path))
            try:
                actual = on_s3[unquote(path)] if on_s3 is not None else os.path.getsize(file)
            except (OSError, KeyError):
                problems.append(f"{file} is missing")
                continue
            if actual != size:
                problems.append(
                    f"{file} has {actual:,} bytes, the Delta log recorded {size:,} (truncated or overwritten)"
                )
        return problems


class Landing:
    """The landing zone: ``<root>/<source>/`` where files land, ``<root>/_rejected/<source>/`` for rejected files.

    ``root`` is a local folder or an ``s3://bucket/prefix`` (:mod:`lakehouse.locations`); :meth:`source` and
    :meth:`rejected` give the same :class:`lakehouse.folders.Folder` operations on both.
    """

    REJECTED = "_rejected"

    def __init__(self, root: str):
        self.root = root

    def source_dir(self, source: str) -> str:
        return join(self.root, source)

    def rejected_dir(self, source: str) -> str:
        """Where rejected files of ``source`` are copied, each with ``<file>.reason.json`` beside it."""
        return join(self.root, self.REJECTED, source)

    def source(self, source: str) -> Folder:
        """The folder (or S3 prefix) where ``source``'s files land."""
        return open_folder(self.source_dir(source))

    def rejected(self, source: str) -> Folder:
        """The folder (or S3 prefix) that keeps ``source``'s rejected files and their reasons."""
        return open_folder(self.rejected_dir(source))


BRONZE: dict[str, Table] = {
    s.name: Table(
        "bronze",
        s.name,
        f"Raw `{s.name}` rows as landed, every value as text, with ingest metadata.",
        natural_key=ROW_ID,
        app_id=f"bronze.{s.name}",
    )
    for s in SOURCES.values()
}
INGEST_LOG: dict[str, Table] = {
    s.name: Table(
        "bronze",
        f"{s.name}_ingest_log",
        f"One row per landed `{s.name}` file version and what happened to it (ingested, duplicate, rejected).",
        natural_key=("file_name", "content_hash"),
        merge_key=("file_name", "content_hash"),  # a re-read file's fingerprint is recorded on its row
    )
    for s in SOURCES.values()
}
SILVER: dict[str, Table] = {
    s.name: Table(
        "silver",
        s.name,
        f"Typed, validated `{s.name}`, one row per natural key.",
        natural_key=s.natural_key,
        merge_key=(s.surrogate_key,),
        partition_by=s.partition_by,
        app_id=f"silver.{s.name}",
        constraints_from=((s.name, True),),
    )
    for s in SOURCES.values()
}
QUARANTINE: dict[str, Table] = {
    s.name: Table(
        "silver",
        f"{s.name}_quarantine",
        f"`{s.name}` rows that failed their contract, with the reason.",
        natural_key=ROW_ID,
        merge_key=ROW_ID,
    )
    for s in SOURCES.values()
}
FLIGHT_FEATURES = Table(
    "gold",
    "flight_features",
    "Point-in-time feature view, one row per flight.",
    natural_key=("flight_id",),
    partition_by=("flight_month",),
    overwritten=True,  # per month (replace-where): maintenance never compacts it
    # one row per silver flight (its columns keep NOT NULL); weather and planes are left-joined
    constraints_from=(("flights", True), ("weather", False), ("planes", False)),
)
ROUTE_DAILY_DELAYS = Table(
    "gold",
    "route_daily_delays",
    "Delay statistics per local date and route.",
    natural_key=("flight_date", "origin", "dest"),
    partition_by=("flight_month",),
    overwritten=True,  # per month (replace-where): maintenance never compacts it
    constraints_from=(("flights", True),),
)
PREDICTIONS = Table(
    "gold",
    "flight_delay_predictions",
    "The champion model's P(is_late) per flight, written per month by the champion of the time.",
    natural_key=("flight_id",),
    partition_by=("flight_month",),
    overwritten=True,  # per month (replace-where): maintenance never compacts it
)
FEATURE_DRIFT = Table(
    "ml",
    "feature_drift",
    "PSI and a two-sample test per column per drift evaluation.",
    natural_key=("evaluation_id", "column"),
)
MODEL_DECISIONS = Table(
    "ml",
    "model_decisions",
    "One row per champion/challenger decision.",
    natural_key=("challenger_version",),
    overwritten=True,  # appended by the model step, rewritten by the promotion
)

ALL_TABLES: tuple[Table, ...] = (
    *BRONZE.values(),
    *INGEST_LOG.values(),
    *SILVER.values(),
    *QUARANTINE.values(),
    FLIGHT_FEATURES,
    ROUTE_DAILY_DELAYS,
    PREDICTIONS,
    FEATURE_DRIFT,
    MODEL_DECISIONS,
)
BY_PATH: dict[str, Table] = {t.path: t for t in ALL_TABLES}
"""Catalogue entries by ``<layer>/<name>`` (the asset key as a user string)."""
