"""Damage, named and repaired from what is kept.

What can break on disk, and what it looked like before this module (issue #13): a truncated or missing Delta data
file made every later run fail with a Rust panic that names no table or file (and ``lakehouse summary`` crashed on
it too); a deleted MLflow database was silently recreated, so the next model was registered as v1 again and
``ml/model_decisions`` then held two different models recorded as "v1, first champion".

:func:`find_damage` names every damaged table and file (:meth:`lakehouse.tables.Lake.damage`: the files the Delta
log lists, checked for existence and size, without reading data) and a tracking store that is missing while the
decisions table says models were registered. ``lakehouse run`` and ``lakehouse summary`` refuse to go on with a
damaged lake and say what to do; ``lakehouse repair`` applies :func:`repair`, which **moves** damaged tables aside
(into ``<lake>/_damaged/<UTC time>/``, nothing is deleted) and lets the next run rebuild them from what is kept:

* ``bronze/<s>`` or ``bronze/<s>_ingest_log`` damaged: both move aside, with ``silver/<s>`` and its quarantine;
  the next run re-ingests the landing zone (never deleted) once by content and rebuilds silver from it;
* ``silver/<s>`` or ``silver/<s>_quarantine``: both move aside; the next run rebuilds them from bronze (silver's
  progress is kept in its own table, so it starts again from the first batch);
* a gold table: it moves aside; the next run rebuilds it from silver;
* ``ml/feature_drift`` or ``ml/model_decisions`` (histories): restored by Delta time travel to the newest version
  whose files are intact; the rows appended after it are lost (the repair says how many rows remain).

A missing tracking store with recorded decisions is not repaired silently: restore the database from a backup, or
``lakehouse repair --forget-models`` moves the model history (decisions, drift, predictions) aside so that history
and registry start again together.

**On an S3 lake** damage is found the same way (one listing of each table's prefix gives the sizes), and a history
table is restored by time travel as on a local lake; moving a table aside is not done there (it would be a copy and
a delete of every object): :func:`repair` refuses up front, before changing anything, with
:class:`RepairUnsupported` (``lakehouse repair`` prints its one line and exits 1).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from lakehouse import storage
from lakehouse.locations import is_object_store
from lakehouse.tables import (
    ALL_TABLES,
    BRONZE,
    FEATURE_DRIFT,
    INGEST_LOG,
    MODEL_DECISIONS,
    PREDICTIONS,
    QUARANTINE,
    SILVER,
    Lake,
    Table,
)

HISTORY_TABLES = (FEATURE_DRIFT, MODEL_DECISIONS)


@dataclass(frozen=True)
class Damage:
    """One damaged table (or the tracking store: ``table`` None) and what is wrong with it."""

    table: Table | None
    problems: list[str]

    def describe(self) -> str:
        name = self.table.path if self.table else "the MLflow tracking store"
        return f"{name} is damaged: {self.problems[0]}" + (
            f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        )


def find_damage(lake: Lake, mlflow_tracking_uri: str | None = None) -> list[Damage]:
    """Every damaged catalogue table, and a missing SQLite tracking store while decisions were recorded."""
    found = [Damage(t, problems) for t in ALL_TABLES if (problems := lake.damage(t))]
    if mlflow_tracking_uri and mlflow_tracking_uri.startswith("sqlite:///"):
        db = Path(mlflow_tracking_uri.removeprefix("sqlite:///"))
        decisions_table = next((d for d in found if d.table == MODEL_DECISIONS), None)
        lost = not db.exists() or db.stat().st_size == 0  # sqlite creates an empty file on a stray connect
        if lost and decisions_table is None and lake.exists(MODEL_DECISIONS):
            n = lake.read(MODEL_DECISIONS, columns=["challenger_version"]).height
            if n:
                found.append(
                    Damage(
                        None,
                        [
                            f"{db} is missing but ml/model_decisions records {n} decision(s); restore it from a "
                            "backup, or `uv run lakehouse repair --forget-models` to start the model history again"
                        ],
                    )
                )
    return found


def tables_to_move(damaged: Table) -> list[Table]:
    """What moves aside with a damaged table, so that the next run rebuilds it consistently (module docstring)."""
    for source in BRONZE:
        if damaged in (BRONZE[source], INGEST_LOG[source]):
            return [BRONZE[source], INGEST_LOG[source], SILVER[source], QUARANTINE[source]]
        if damaged in (SILVER[source], QUARANTINE[source]):
            return [SILVER[source], QUARANTINE[source]]
    return [damaged]


class RepairUnsupported(RuntimeError):
    """Repairing needs a table moved aside, which is done on a local lake only (one-line message)."""


def move_aside(lake: Lake, table: Table, stamp: str) -> str | None:
    """Move a table's folder to ``<lake>/_damaged/<stamp>/<layer>/<name>``; return the new place (None if absent).

    Raises:
        RepairUnsupported: the lake is on object storage, where a move is a copy and a delete of every object of
            the table, which this version does not do.
    """
    if is_object_store(lake.root):
        raise RepairUnsupported(
            f"{table.path} would be moved aside, which `lakehouse repair` does on a local lake only; the lake is "
            f"{lake.root}: restore {lake.location(table)} from the bucket's object versions, or delete its prefix "
            "so the next run rebuilds it"
        )
    source = Path(lake.location(table))
    if not source.exists():
        return None
    target = Path(lake.damaged_location(table, stamp))
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(source), str(target))
    return str(target)


def restore_intact(lake: Lake, table: Table) -> str:
    """Restore a history table to its newest version whose files are all intact (Delta time travel)."""
    location = lake.location(table)
    latest = lake.version(table)
    for version in range(latest - 1, -1, -1):
        if not lake.damage(table, version):
            rows_then = storage.open_table(location, version).count()
            storage.open_table(location).restore(version)
            return f"{table.path}: restored to version {version} ({rows_then} rows; later rows lost)"
    return f"{table.path}: no intact version; moved aside"


def repair(lake: Lake, damage: list[Damage], forget_models: bool = False, now: datetime | None = None) -> list[str]:
    """Apply the table of the module docstring; return one line per action.

    Raises:
        RepairUnsupported: on an S3 lake, when a table would have to move aside (nothing is changed then).
    """
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    if is_object_store(lake.root):
        moving = [d.table for d in damage if d.table is not None and d.table not in HISTORY_TABLES]
        if forget_models:
            moving += [t for t in (MODEL_DECISIONS, FEATURE_DRIFT, PREDICTIONS) if lake.exists(t)]
        if moving:
            move_aside(lake, moving[0], stamp)  # raises RepairUnsupported, naming the table
    actions: list[str] = []
    moved: set[Table] = set()
    for d in damage:
        if d.table is None:
            continue
        if d.table in HISTORY_TABLES:
            line = restore_intact(lake, d.table)
            if line.endswith("moved aside"):
                move_aside(lake, d.table, stamp)
            actions.append(line)
            continue
        for table in tables_to_move(d.table):
            if table not in moved and (place := move_aside(lake, table, stamp)):
                moved.add(table)
                actions.append(f"{table.path}: moved to {place}; the next run rebuilds it")
    if forget_models:
        for table in (MODEL_DECISIONS, FEATURE_DRIFT, PREDICTIONS):
            if table not in moved and (place := move_aside(lake, table, stamp)):
                actions.append(f"{table.path}: moved to {place} (model history starts again)")
    return actions
