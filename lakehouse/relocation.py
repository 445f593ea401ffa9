"""A data folder that was moved or copied keeps working: MLflow's recorded locations follow it.

**The problem.** MLflow 3.17 records *absolute* locations in its backend store when things are created: the
experiment's ``artifact_location`` (``file:///<data>/mlflow/artifacts``), each run's ``artifact_uri``, each MLflow 3
logged model's ``artifact_location``, each model version's ``storage_location`` (and ``source`` for a version
registered from a path), and each dataset's source (``{"path": "<data>/lake/gold/flight_features"}``). After the
data folder (``LAKEHOUSE_DATA_DIR``) is moved or copied, every run loading the champion failed with
``MlflowException: No such artifact``; a *copy* whose original still exists silently read and wrote the original's
artifacts instead.

**What MLflow offers (read in the 3.17 source).** No relative artifact root: ``create_experiment`` resolves a
relative ``artifact_location`` against the current directory (``resolve_uri_if_local``) and stores it absolute, and
runs append their id to it at creation. ``mlflow-artifacts:`` locations need a tracking *server* (its repository
refuses any tracking URI that is not http/https). No API or CLI updates a stored location (``mlflow experiments``
can create, rename, delete, restore, search and update trace archival only). So the embedded profile rewrites the
stored prefixes itself, which is what this module does.

**The fix.** The store itself says where the data folder was: the lakehouse experiment's artifact location is
``<old data folder>/<artifacts relative to the data folder>``. When it differs from the configured one
(:func:`find_move`), :func:`relocate` replaces the prefix ``<old data folder>`` by the current data folder in every
recorded location listed in :data:`LOCATIONS`, as a file URI and as a plain path, **in one SQLite transaction**
(all or nothing; the experiment row, which is how a move is detected, changes in the same commit, so a crash
leaves either the old state, detected again next time, or the new one). The CLI calls it holding the data
folder's lock (:func:`lakehouse.runs.exclusive`), before anything opens the stores: ``lakehouse run``,
``lakehouse ui`` and ``lakehouse recover`` (``summary`` only reads and names the move).

**Scope.** Only the embedded profile: a SQLite tracking store inside the data folder. A tracking server or an
external database owns its own locations and does not move with the data folder; nothing is rewritten then.
Locations outside the old data folder are left alone. The rest of the data folder holds no absolute path that is
read back: the Dagster instance (``<data>/dagster``, its ``dagster.yaml`` names no path; its storages are found
from ``DAGSTER_HOME``), Delta tables (their logs record relative file paths), the ingest logs (file names), the
landing sensor's cursor (change times and names). Dagster's event log keeps the paths that were true when an
event happened (``dagster/uri`` metadata of past materializations) and MLflow's ``MLmodel`` files keep the
``artifact_path`` they were logged at: history, not read to find anything.

Pure module (``sqlite3`` only, no MLflow import), so it works on a store MLflow could not open yet.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

# (table, primary key columns, column, kind): every column of MLflow 3.17's SQL schema that records a location
# ("uri": a file URI or a plain path; "json": a dataset source, a JSON object whose "path"/"uri" is one)
LOCATIONS: list[tuple[str, tuple[str, ...], str, str]] = [
    ("experiments", ("experiment_id",), "artifact_location", "uri"),
    ("runs", ("run_uuid",), "artifact_uri", "uri"),
    ("logged_models", ("model_id",), "artifact_location", "uri"),
    ("model_versions", ("name", "version"), "storage_location", "uri"),
    ("model_versions", ("name", "version"), "source", "uri"),
    ("datasets", ("dataset_uuid",), "dataset_source", "json"),
]
EXPERIMENT = "lakehouse_flights"


class RelocationProblem(RuntimeError):
    """The store records a location the data folder's move cannot explain; the message says what to do."""


@dataclass(frozen=True)
class Move:
    """The data folder was at ``old`` when the store recorded its locations, and is at ``new`` now."""

    old: Path
    new: Path


@dataclass(frozen=True)
class Relocated:
    """What :func:`relocate` rewrote: the move and the number of values per ``table.column``."""

    move: Move
    counts: dict[str, int]

    def describe(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.counts.items() if v)
        return (
            f"the data folder moved from {self.move.old} to {self.move.new}: updated {sum(self.counts.values())} "
            f"MLflow location(s) ({counts or 'none'})"
        )


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI, else None (a server or another database)."""
    return Path(tracking_uri.removeprefix("sqlite:///")) if tracking_uri.startswith("sqlite:///") else None


def local_path(location: str) -> Path | None:
    """The absolute local path of a ``file:`` URI or a plain absolute path, else None (another scheme)."""
    if location.startswith("file:"):
        return Path(unquote(urlparse(location).path))
    return Path(location) if location.startswith("/") else None


def embedded_store(data_dir: Path, tracking_uri: str) -> Path | None:
    """The SQLite database of the embedded profile (a ``sqlite:///`` store inside ``data_dir``), if it exists."""
    db = sqlite_path(tracking_uri)
    if db is None or not db.is_file():
        return None
    try:
        db.resolve().relative_to(data_dir.resolve())
    except ValueError:
        return None
    return db


def recorded_artifact_location(db: Path, experiment: str = EXPERIMENT) -> str | None:
    """The artifact location the store records for ``experiment`` (None: no such experiment yet)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        row = con.execute("SELECT artifact_location FROM experiments WHERE name = ?", (experiment,)).fetchone()
    return None if row is None else str(row[0])


def find_move(data_dir: str | os.PathLike[str], tracking_uri: str, artifact_location: str) -> Move | None:
    """Whether the data folder moved since the embedded store recorded its locations.

    ``artifact_location`` is the configured artifact folder (``Settings.mlflow_artifact_location``). Returns None
    outside the embedded profile, before the experiment exists, and when the recorded location is the configured
    one (also through a symlink).

    Raises:
        RelocationProblem: the recorded location differs and is not ``<some folder>/<the configured artifact
            folder relative to the data folder>`` (the artifact folder was configured elsewhere, or moved alone).
    """
    data = Path(data_dir).resolve()
    db = embedded_store(data, tracking_uri)
    if db is None:
        return None
    recorded = recorded_artifact_location(db)
    if recorded is None:
        return None
    configured = Path(artifact_location).resolve()
    old_artifacts = local_path(recorded)
    if old_artifacts == configured or (
        old_artifacts is not None
        and old_artifacts.exists()
        and configured.exists()
        and old_artifacts.samefile(configured)
    ):
        return None
    try:
        inside = configured.relative_to(data)
    except ValueError:
        inside = None
    if (
        old_artifacts is None
        or inside is None
        or old_artifacts.parts[len(old_artifacts.parts) - len(inside.parts) :] != inside.parts
    ):
        raise RelocationProblem(
            f"the MLflow store {db} keeps its artifacts in {recorded}, but the lakehouse is configured for "
            f"{configured}; set LAKEHOUSE_MLFLOW_ARTIFACTS={old_artifacts or recorded} (or move that folder there)"
        )
    old = Path(*old_artifacts.parts[: len(old_artifacts.parts) - len(inside.parts)])
    return Move(old=old, new=data)


def moved(value: str, move: Move) -> str | None:
    """``value`` with the prefix ``move.old`` replaced by ``move.new`` (as a file URI or a plain path), or None
    when it does not start with the old data folder (only whole path components match)."""
    for old, new in ((move.old.as_uri(), move.new.as_uri()), (str(move.old), str(move.new))):
        if value == old or value.startswith(old + "/"):
            return new + value[len(old) :]
    return None


def moved_json(value: str, move: Move) -> str | None:
    """A dataset source (JSON object) whose ``path`` or ``uri`` was moved, or None when neither moves."""
    try:
        source = json.loads(value)
    except ValueError:
        return None
    if not isinstance(source, dict):
        return None
    changed = False
    for key in ("path", "uri"):
        if isinstance(source.get(key), str) and (new := moved(source[key], move)) is not None:
            source[key] = new
            changed = True
    return json.dumps(source) if changed else None


def relocate(db: Path, move: Move) -> Relocated:
    """Rewrite every location under ``move.old`` to ``move.new`` in the SQLite store ``db``, in one transaction.

    Call it holding the data folder's lock, before MLflow opens the store in this process.

    Raises:
        RelocationProblem: a column of :data:`LOCATIONS` is missing (another MLflow schema): nothing is changed.
    """
    counts: dict[str, int] = {}
    con = sqlite3.connect(db, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        try:
            for table, keys, column, kind in LOCATIONS:
                present = {row[1] for row in con.execute(f"PRAGMA table_info({table})")}
                if not {*keys, column} <= present:
                    raise RelocationProblem(
                        f"the MLflow store {db} has no {table}.{column} (another MLflow version?): nothing was "
                        f"changed; move the data folder back to {move.old}"
                    )
                select = f"SELECT {', '.join(keys)}, {column} FROM {table} WHERE {column} IS NOT NULL"
                updates = []
                for *key, value in con.execute(select).fetchall():
                    new = moved_json(value, move) if kind == "json" else moved(value, move)
                    if new is not None:
                        updates.append((new, *key))
                where = " AND ".join(f"{k} = ?" for k in keys)
                con.executemany(f"UPDATE {table} SET {column} = ? WHERE {where}", updates)
                counts[f"{table}.{column}"] = len(updates)
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
    finally:
        con.close()
    return Relocated(move, counts)


def relocate_if_moved(data_dir: str | os.PathLike[str], tracking_uri: str, artifact_location: str) -> Relocated | None:
    """:func:`find_move`, then :func:`relocate` when the data folder moved (None when it did not).

    Raises:
        RelocationProblem: see :func:`find_move` and :func:`relocate`.
    """
    db = embedded_store(Path(data_dir), tracking_uri)
    move = None if db is None else find_move(data_dir, tracking_uri, artifact_location)
    return None if db is None or move is None else relocate(db, move)
