"""Delta Lake primitives on a table *location* (an absolute local path or ``s3://bucket/prefix``,
:mod:`lakehouse.locations`): the few write patterns the lakehouse uses. Which table lives where, and with which
keys, is :mod:`lakehouse.tables`' business; this module never builds a location.

Writes go through ``deltalake`` (delta-rs) directly rather than dagster-deltalake-polars, whose IO manager
has no MERGE, silently overwrites whole tables for string/naive-datetime partition columns and reads only the
first partition of a window (docs/stack-notes.md, "dagster-deltalake-polars").

Exactly-once bookkeeping uses Delta *application transactions* (``txn`` actions): a writer commits its data and
the id of the last input batch it consumed in **one** atomic commit, so a crash can never record progress without
the data or the data without the progress.

CHECK constraints (Delta ``delta.constraints.<name>``, derived from the Pandera contracts by
:func:`lakehouse.contracts.check_constraints`) are the last line of defence behind Pandera: delta-rs evaluates them
on every append, overwrite and MERGE (inserted and updated rows) and refuses the whole commit when a row fails.
delta-rs's error does not name the constraint ("Invalid data found: N rows failed validation check", then a
preview of the rows); the writes here re-raise it as :class:`ConstraintViolation`, which does
(docs/stack-notes.md, "Delta CHECK constraints").

**Object storage.** Every call into delta-rs and polars here passes :func:`lakehouse.locations.storage_options` of
its location (None for a local path), so the lake works on S3 with the endpoint and credentials of the ``AWS_*``
variables. :func:`open_table` and :func:`scan` are the doors the rest of the code base uses (never a bare
``DeltaTable(location)``). Concurrent writers need no lock: delta-rs >= 1.0 writes commit ``N`` of the log as
``_delta_log/<N>.json`` with a conditional put (``If-None-Match: *``, object_store's ``PutMode::Create``); the
loser of a race gets 412, reloads the log, checks the winner's commit for conflicts and retries as ``N+1``
(``commit_with_retries``). The DynamoDB lock (``AWS_S3_LOCKING_PROVIDER``) of delta-rs < 1.0 is gone
(delta-io/delta-rs discussion 4482; docs/stack-notes.md, "Object storage").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from types import TracebackType
from typing import Any

import polars as pl
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import DeltaError, TableNotFoundError

from lakehouse.locations import storage_options

CONSTRAINT_PREFIX = "delta.constraints."
REFUSED = "Invalid data found"  # delta-rs 1.6's message when rows fail a CHECK constraint
TABLE_PROPERTIES = {"delta.checkpointInterval": "10", "delta.enableExpiredLogCleanup": "false"}
"""Delta table properties every table is created with (``configuration=`` of its first write; delta-rs ignores
``configuration`` on a write to an existing table). Opening a table replays the JSON commits since its last
checkpoint, so without checkpoints every open costs O(commits): measured 1.5 ms on 1 commit, 6.4 ms on 11, 13 ms on
30 (``DeltaTable(p)`` of a small partitioned table). With ``delta.checkpointInterval`` = 10 the commit that makes a
version ``v`` with ``(v + 1) % 10 == 0`` writes ``<v>.checkpoint.parquet`` (delta-rs's post-commit hook), and an open
replays at most 9 JSON commits after it: 6.1 ms on 30. Checkpointing also runs the hook's log clean-up, which would
delete JSON commits older than ``delta.logRetentionDuration`` (30 days) and with them time travel to the versions
models and partitions record (:meth:`lakehouse.tables.Lake.built_from`): ``delta.enableExpiredLogCleanup`` = false
leaves that decision to the maintenance job (``cleanup_metadata``, :mod:`lakehouse.maintenance.housekeeping`). All
three measured with deltalake 1.6 (docs/stack-notes.md, "Delta checkpoints")."""


class ConstraintViolation(ValueError):
    """A write (or a new constraint) refused by the table's Delta CHECK constraints.

    ``violated`` maps each failing constraint's name to the number of offending rows of the frame written (of the
    table's rows when a constraint was being added); empty when they could not be evaluated here (the message
    then quotes delta-rs's own). The original ``DeltaError`` is the ``__cause__``.
    """

    def __init__(self, location: str, violated: dict[str, int], detail: str):
        self.location = location
        self.violated = violated
        named = ", ".join(f"{name} ({n} rows)" for name, n in violated.items()) or "unnamed"
        super().__init__(f"{location}: refused by CHECK constraint(s) {named}: {detail}")


def table_exists(path: str) -> bool:
    """True when a Delta table (a ``_delta_log``) exists at the location ``path``."""
    return DeltaTable.is_deltatable(path, storage_options=storage_options(path))


def open_existing(path: str, version: int | None = None) -> DeltaTable | None:
    """The Delta table at ``path`` (at ``version``, default the latest), None when there is none (one log replay,
    where :func:`table_exists` then :func:`open_table` make two).

    Raises:
        deltalake.exceptions.TableNotFoundError: the table exists but ``version`` can no longer be read (deltalake
            1.6 raises the same error for a version whose commits the log clean-up deleted: docs/stack-notes.md,
            "Delta checkpoints"), so a version that is gone is never read as a table that is not there yet.
    """
    try:
        return open_table(path, version)
    except TableNotFoundError:
        if version is not None and table_exists(path):
            raise
        return None


def open_table(path: str, version: int | None = None) -> DeltaTable:
    """The Delta table at the location ``path`` (at ``version``, default the latest), with its storage options.

    Raises:
        deltalake.exceptions.TableNotFoundError: no table there.
    """
    return DeltaTable(path, version=version, storage_options=storage_options(path))


def scan(path: str, version: int | None = None) -> pl.LazyFrame:
    """``pl.scan_delta`` of the table at ``path`` (at ``version``), with its storage options."""
    return pl.scan_delta(path, version=version, storage_options=storage_options(path))


def _ensure_parent(location: str) -> None:
    """Create the parent folder of a local location (object stores have no folders to create)."""
    if "://" not in location:
        Path(location).parent.mkdir(parents=True, exist_ok=True)


def consumed_version(path: str, app_id: str) -> int:
    """Last input batch sequence number committed by ``app_id`` into the table at ``path`` (-1 if none)."""
    if not table_exists(path):
        return -1
    version = open_table(path).transaction_version(app_id)
    return -1 if version is None else int(version)


def constraints(path: str) -> dict[str, str]:
    """The table's CHECK constraints, ``{name: sql}`` as delta-rs stores them (``{}`` without a table)."""
    dt = open_existing(path)
    return {} if dt is None else _constraints(dt)


def _constraints(dt: DeltaTable) -> dict[str, str]:
    config = dt.metadata().configuration
    return {k.removeprefix(CONSTRAINT_PREFIX): v for k, v in config.items() if k.startswith(CONSTRAINT_PREFIX)}


def violations(frame: pl.DataFrame | pl.LazyFrame, checks: Mapping[str, str]) -> dict[str, int]:
    """Rows of ``frame`` failing each constraint (only those with failures), evaluated by polars SQL (the same
    operators delta-rs/DataFusion evaluates: comparisons, ``IS NULL``, ``IN``/``OR`` chains, the regex ``~``).
    A constraint polars cannot evaluate on ``frame`` (e.g. a column it lacks) is skipped."""
    ctx = pl.SQLContext(t=frame.lazy())
    out = {}
    for name, sql in checks.items():
        try:
            bad = int(ctx.execute(f"SELECT count(*) AS n FROM t WHERE NOT ({sql})", eager=True).item())
        except Exception:  # an expression polars cannot evaluate here: no name for it, not an error
            continue
        if bad:
            out[name] = bad
    return out


@contextmanager
def _refusal(path: str, frame: pl.DataFrame | pl.LazyFrame, checks: Mapping[str, str] | None = None) -> Iterator[None]:
    """Re-raise delta-rs's refusal of rows as :class:`ConstraintViolation` naming the constraints ``frame`` fails
    (default: the table's own constraints)."""
    try:
        yield
    except DeltaError as e:
        if REFUSED not in str(e):
            raise
        named = violations(frame, checks if checks is not None else constraints(path))
        raise ConstraintViolation(path, named, str(e).split("\n", 1)[0]) from e


def ensure_constraints(path: str, declared: Mapping[str, str]) -> dict[str, list[str]]:
    """Make the table's CHECK constraints exactly ``declared`` (``{name: sql}``): add the missing ones in one
    commit (delta-rs validates the table's existing rows first) and drop those not declared. Idempotent: a table
    that has them commits nothing. A changed expression comes with a new name (names carry their parameters,
    :func:`lakehouse.contracts.check_constraints`), so it replaces the old constraint.

    Returns:
        ``{"added": [...], "dropped": [...]}`` (names).

    Raises:
        ConstraintViolation: existing rows fail a constraint being added (nothing is changed then).
        deltalake.exceptions.TableNotFoundError: no table at ``path``.
    """
    return _ensure_constraints(open_table(path), path, declared)


def _ensure_constraints(dt: DeltaTable, path: str, declared: Mapping[str, str]) -> dict[str, list[str]]:
    """:func:`ensure_constraints` on an open table (``dt`` follows its own commits: a write through it after this
    starts from the new version)."""
    current = _constraints(dt)
    missing = {k: v for k, v in declared.items() if k not in current}
    extra = [k for k in current if k not in declared]
    if missing:
        with _refusal(path, scan(path), missing):
            dt.alter.add_constraint(missing)
    for name in extra:
        dt.alter.drop_constraint(name)
    return {"added": sorted(missing), "dropped": sorted(extra)}


def create(
    path: str, frame: pl.DataFrame, *, partition_by: Sequence[str] | None = None, checks: Mapping[str, str]
) -> bool:
    """Create the table with ``frame``'s schema, no rows, and the CHECK constraints ``checks``, so even its first
    rows are checked. Returns False (and does nothing) when the table exists."""
    if table_exists(path):
        return False
    _ensure_parent(path)
    write_deltalake(
        path,
        frame.clear(),
        mode="append",
        partition_by=list(partition_by) if partition_by else None,
        storage_options=storage_options(path),
        configuration=TABLE_PROPERTIES,
    )
    if checks:
        open_table(path).alter.add_constraint(dict(checks))
    return True


def _commit(app_id: str | None, version: int | None, metadata: dict | None) -> CommitProperties:
    txns = [Transaction(app_id=app_id, version=version)] if app_id is not None and version is not None else None
    return CommitProperties(app_transactions=txns, custom_metadata=metadata)


def append(
    path: str,
    frame: pl.DataFrame,
    *,
    partition_by: Sequence[str] | None = None,
    app_id: str | None = None,
    version: int | None = None,
    metadata: dict | None = None,
    checks: Mapping[str, str] | None = None,
) -> None:
    """Append ``frame`` (creating the table if needed), optionally recording ``(app_id, version)`` atomically.

    With ``checks`` (``{name: sql}``), the table carries exactly those CHECK constraints before ``frame`` is written
    (as in :func:`replace_partition`); the log is replayed once for them and the write, and the write goes through
    the table as opened, so it is checked against any commit made since (one carrying the same application id is
    refused: docs/stack-notes.md, "Delta application transactions").

    Raises:
        ConstraintViolation: a row of ``frame`` (or, for a constraint being added, of the table) fails a constraint.
    """
    _ensure_parent(path)
    dt = _open_for_write(path, frame, partition_by or (), checks)
    _append_through(path, dt, frame, partition_by=partition_by, app_id=app_id, version=version, metadata=metadata)


def _append_through(
    path: str,
    dt: DeltaTable | None,
    frame: pl.DataFrame,
    *,
    partition_by: Sequence[str] | None,
    app_id: str | None,
    version: int | None,
    metadata: dict | None,
) -> None:
    """The append of :func:`append`, written through ``dt`` (the table as the caller opened it to decide to append:
    the commit is checked against every commit made since), or through ``path`` when there is no table yet."""
    with _refusal(path, frame):
        write_deltalake(
            path if dt is None else dt,
            frame,
            storage_options=storage_options(path),
            mode="append",
            # a column added by a later version of the code (e.g. bronze's _parse_error) is added to an existing table;
            # its older rows read it as null
            schema_mode="merge",
            partition_by=list(partition_by) if partition_by and dt is None else None,  # a new table's layout
            configuration=TABLE_PROPERTIES,
            commit_properties=_commit(app_id, version, metadata),
        )


def overwrite(
    path: str,
    frame: pl.DataFrame,
    *,
    partition_by: Sequence[str] | None = None,
    metadata: dict | None = None,
    checks: Mapping[str, str] | None = None,
) -> None:
    """Replace the whole table (used by gold tables that are recomputed from silver); ``metadata`` (string values)
    is stored in the commit (``DeltaTable.history()`` returns it). ``checks``: as in :func:`append`.

    Raises:
        ConstraintViolation: a row of ``frame`` (or, for a constraint being added, of the table) fails a constraint.
    """
    _ensure_parent(path)
    dt = _open_for_write(path, frame, partition_by or (), checks)
    with _refusal(path, frame):
        write_deltalake(
            path if dt is None else dt,
            frame,
            storage_options=storage_options(path),
            mode="overwrite",
            schema_mode="overwrite",
            partition_by=list(partition_by) if partition_by else None,
            configuration=TABLE_PROPERTIES,
            commit_properties=_commit(None, None, metadata),
        )


class LayoutMismatch(RuntimeError):
    """An existing table is partitioned differently from what its writer expects (written by an older version)."""


def _check_layout(dt: DeltaTable, path: str, partition_by: Sequence[str]) -> None:
    """Raise :class:`LayoutMismatch` when the table ``dt`` (at ``path``) is partitioned otherwise than
    ``partition_by``."""
    existing = dt.metadata().partition_columns
    if list(existing) != list(partition_by):
        raise LayoutMismatch(
            f"{path} is partitioned by {existing or 'nothing'}, this version writes it by {list(partition_by)}: "
            "`uv run lakehouse repair` moves it aside and the next run rebuilds it"
        )


def _open_for_write(
    path: str,
    frame: pl.DataFrame,
    partition_by: Sequence[str],
    checks: Mapping[str, str] | None,
    *,
    check_layout: bool = False,
) -> DeltaTable | None:
    """The table at ``path`` opened once for a write of ``frame`` (None when it does not exist and nothing creates
    it): with ``check_layout``, an existing table's partition columns are checked first (:class:`LayoutMismatch`);
    with ``checks`` (``{name: sql}``) the table then carries exactly those CHECK constraints, created empty with
    them (:func:`create`) or given what it lacks (:func:`_ensure_constraints`), so even its first rows are checked.
    A write through the returned table follows these commits and is checked against any made since."""
    dt = open_existing(path)
    if dt is None:
        if not checks:
            return None
        create(path, frame, partition_by=partition_by, checks=checks)
        return open_table(path)
    if check_layout:
        _check_layout(dt, path, partition_by)
    if checks is not None:
        _ensure_constraints(dt, path, checks)
    return dt


def replace_partition(
    path: str,
    frame: pl.DataFrame,
    *,
    column: str,
    value: date,
    partition_by: Sequence[str],
    checks: Mapping[str, str] | None = None,
    metadata: dict | None = None,
) -> int:
    """Replace the rows of one partition (``column = value``, a Date) with ``frame``, leaving the others untouched
    (Delta's replace-where: ``write_deltalake(mode="overwrite", predicate=...)``; delta-rs refuses the commit when
    a row of ``frame`` does not match the predicate, and an empty ``frame`` removes the partition's rows). Returns
    the Delta version of the commit: a write through a ``DeltaTable`` advances it to that commit (docs/stack-notes.md
    "Delta application transactions"); when the write created the table, the version read just after it.

    With ``checks`` (``{name: sql}``), the table carries exactly those CHECK constraints before ``frame`` is written:
    created empty with them (:func:`create`) or given what it lacks (:func:`ensure_constraints`). The table's log
    is replayed once for the layout check, the constraints and the write (a write's cost must not grow with the
    table's commits: :data:`TABLE_PROPERTIES`).

    Raises:
        LayoutMismatch: the table exists with other partition columns (move it aside: ``lakehouse repair``).
        ConstraintViolation: a row of ``frame`` (or, for a constraint being added, of the table) fails a constraint.
    """
    _ensure_parent(path)
    dt = _open_for_write(path, frame, partition_by, checks, check_layout=True)
    with _refusal(path, frame):
        write_deltalake(
            path if dt is None else dt,
            frame,
            storage_options=storage_options(path),
            mode="overwrite",
            predicate=f"{column} = '{value.isoformat()}'",
            partition_by=list(partition_by),
            configuration=TABLE_PROPERTIES,
            commit_properties=_commit(None, None, metadata),
        )
    return open_table(path).version() if dt is None else dt.version()


def last_commit_metadata(path: str) -> dict:
    """The newest commit's information (operation, metrics and custom metadata), ``{}`` without a table."""
    if not table_exists(path):
        return {}
    history = open_table(path).history(1)
    return dict(history[0]) if history else {}


def upsert(
    path: str,
    frame: pl.DataFrame,
    key: Sequence[str],
    *,
    partition_by: Sequence[str] = (),
    key_fixes_partition: bool = False,
    checks: Mapping[str, str] | None = None,
    app_id: str | None = None,
    version: int | None = None,
    metadata: dict | None = None,
) -> dict:
    """MERGE ``frame`` into the table on ``key``: update matched rows, insert the others; ``metadata`` (string
    values) is stored in the commit.

    Creates the table on first use. When the table is partitioned, the predicate also carries literal
    ``IN (...)`` filters on the partition columns of ``frame``: delta-rs then prunes files and the MERGE
    costs what the touched partitions cost, not what the table costs (measured: ~4x faster on an
    11-month table; docs/stack-notes.md, "Delta MERGE").

    ``key_fixes_partition``: the caller guarantees that a row's ``key`` determines its partition (the partition
    columns are functions of the key). Then no row of a partition the table does not hold yet can match, and a
    ``frame`` that touches only such partitions (a new month) is appended in one commit, with the same metadata
    and application transaction, instead of MERGEd (same rows; measured at 10x, three groups of four months:
    5.5-5.8 s against 7.3-8.0 s; docs/stack-notes.md, "Delta MERGE"). A concurrent writer that added one of those
    partitions after this function opened the table would not be seen by a blind append, so the append is written
    through the table as opened: delta-rs checks it against the commits made since, and refuses it when one of
    them carries the same application id (a silver writer commits its progress, ``app_id``, with every write;
    docs/stack-notes.md, "Delta application transactions"), so such a race cannot add a row twice.

    With ``checks`` (``{name: sql}``), the table carries exactly those CHECK constraints before ``frame`` is
    written (as in :func:`replace_partition`); the log is replayed once for the constraints, the choice between
    append and MERGE, and the write.

    Returns:
        delta-rs MERGE metrics (``num_target_rows_inserted``, ``num_target_rows_updated``, ...), or
        ``{"num_target_rows_inserted": len(frame), "num_target_rows_updated": 0}`` when the rows were appended.

    Raises:
        ConstraintViolation: a row of ``frame`` (or, for a constraint being added, of the table) fails a constraint.
    """
    _ensure_parent(path)
    dt = _open_for_write(path, frame, partition_by, checks)
    if frame.is_empty() and dt is not None:
        return {"num_target_rows_inserted": 0, "num_target_rows_updated": 0}
    if (
        dt is None
        or not dt.file_uris()  # new, or created empty by create()
        or (key_fixes_partition and partition_by and not _holds_any(dt, frame, partition_by))
    ):
        _append_through(path, dt, frame, partition_by=partition_by, app_id=app_id, version=version, metadata=metadata)
        return {"num_target_rows_inserted": frame.height, "num_target_rows_updated": 0}
    clauses = []
    for col in partition_by:
        values = frame.get_column(col).unique().drop_nulls().sort().to_list()
        literals = ", ".join(repr(v) if isinstance(v, str) else str(v) for v in values)
        clauses.append(f"t.{col} IN ({literals})")
    clauses += [f"t.{k} = s.{k}" for k in key]
    with _refusal(path, frame):
        return (
            dt.merge(
                frame,
                predicate=" AND ".join(clauses),
                source_alias="s",
                target_alias="t",
                commit_properties=_commit(app_id, version, metadata),
            )
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute()
        )


def _holds_any(dt: DeltaTable, frame: pl.DataFrame, partition_by: Sequence[str]) -> bool:
    """True when the table ``dt`` has rows in a partition of ``frame``'s rows, or when that cannot be told here: a
    partition column that is not an integer, string or date (Delta stores partition values as strings; these
    three print the same in polars and in the log)."""
    if not all(frame.schema[c].is_integer() or frame.schema[c] in (pl.String, pl.Date) for c in partition_by):
        return True
    held = {tuple(p.get(c) for c in partition_by) for p in dt.partitions()}
    wanted = {tuple(None if v is None else str(v) for v in row) for row in frame.select(partition_by).unique().rows()}
    return not held.isdisjoint(wanted)


def read(path: str, columns: Sequence[str] | None = None) -> pl.DataFrame:
    """Whole table as a DataFrame (empty frame if the table does not exist and ``columns`` is given)."""
    if not table_exists(path):
        return pl.DataFrame({c: [] for c in columns or []})
    return pl.read_delta(path, columns=list(columns) if columns else None, storage_options=storage_options(path))


class WriteBehind:
    """Writes run one at a time, in the order submitted, on one background thread, while the caller computes the
    next partition: a loop over months overlaps month M's Delta write with month M+1's reads and computation.

    delta-rs encodes and writes Parquet without holding the GIL, so the overlap is real on two cores (measured on
    the gold stage at 10x: BENCHMARKS.md, stop 20; docs/stack-notes.md, "delta-rs writes release the GIL"). At most
    **one** write is pending: :meth:`submit` first waits for the previous one and re-raises its error, so besides
    the frame being computed memory holds one frame being written, and a failed write stops the loop at the next
    submit. Leaving the ``with`` block waits for the last write and re-raises its error; when the block itself
    raises, the pending write still finishes (each write is one atomic Delta commit, so a write that does not
    finish leaves nothing behind) and the block's error propagates.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="write-behind")
        self._pending: Future[Any] | None = None

    def submit(self, write: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any]:
        """Wait for the previous write (re-raising its error), then start ``write(*args, **kwargs)``; its future
        holds what ``write`` returns."""
        self.wait()
        self._pending = self._pool.submit(write, *args, **kwargs)
        return self._pending

    def wait(self) -> None:
        """Wait for the pending write, if any, and re-raise its error."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        try:
            if kind is None:
                self.wait()
        finally:
            self._pool.shutdown(wait=True)
