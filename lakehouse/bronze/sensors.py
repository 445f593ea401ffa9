"""The landing sensor: new files in ``<landing>/<source>/`` become bronze runs, in batches.

* **Which files.** Visible data files only (no hidden, temporary or partial names; see
  :func:`lakehouse.bronze.parsing.is_candidate`) that are **stable**: untouched for ``settle_seconds``, so a
  file still being copied is left for a later tick.
* **Cursor that scales.** Per source, the cursor keeps the newest change time handled and the names handled at
  that exact time: ``{"flights": [1763718000123456789, ["a.csv"]], ...}``. Its size does not grow with the
  number of files. The change time is ``max(mtime, ctime)``: ``ctime`` cannot be set by a user, so a file
  copied with its old mtime preserved (``cp -p``, ``rsync -t``) or renamed is still seen as new.
* **Batches.** One run per tick takes the new files of every source, at most ``max_files_per_run`` per source:
  a new month (flights + weather) is one run; 500 small files of one source become 5 runs, not 500.
* **Run keys.** ``landing:<sha1 of the batch's (source, name, change time) lists>``: a restarted daemon that
  re-evaluates the same tick asks for the same keys, which Dagster refuses to launch twice.
* **Already ingested.** Files whose exact bytes the ingest log already holds under the same name are skipped
  (:func:`lakehouse.bronze.ingest.already_handled`), so a fresh cursor (the first ``lakehouse ui`` after
  ``lakehouse run``) starts nothing for what the CLI ingested; the cursor still moves past them.
* **Clock.** The sensor reads the time through an injectable ``clock`` (default :func:`time.time`), so tests move
  time forward instead of sleeping.
* Bronze ingests by content hash (:mod:`lakehouse.bronze.ingest`), so even a file offered twice is ingested once;
  silver and gold then follow through declarative automation (:mod:`lakehouse.automation`).
"""

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import dagster as dg

from lakehouse.bronze.ingest import already_handled
from lakehouse.bronze.parsing import discover_files
from lakehouse.resources import LakehouseStorage
from lakehouse.sources import SOURCES

SETTLE_SECONDS = 10.0
MAX_FILES_PER_RUN = 100


def change_time_ns(path: Path) -> int:
    st = path.stat()
    return max(st.st_mtime_ns, st.st_ctime_ns)


def pending_files(
    folder: Path, position: tuple[int, list[str]], now: float, settle_seconds: float
) -> list[tuple[int, str]]:
    """``(change_time_ns, name)`` of stable candidate files after the cursor ``position``, oldest first."""
    last_ns, names_at_last = position
    out = []
    for path in discover_files(folder):
        changed = change_time_ns(path)
        if now - changed / 1e9 < settle_seconds:
            continue  # still being written, or just landed: next tick
        if changed > last_ns or (changed == last_ns and path.name not in names_at_last):
            out.append((changed, path.name))
    return sorted(out)


def advance(position: tuple[int, list[str]], taken: Iterable[tuple[int, str]]) -> tuple[int, list[str]]:
    """Cursor position after handling ``taken`` (sorted by change time)."""
    last_ns, names = position
    for changed, name in taken:
        if changed > last_ns:
            last_ns, names = changed, [name]
        elif changed == last_ns:
            names = sorted({*names, name})
    return last_ns, names


def batch_request(batch: dict[str, list[tuple[int, str]]]) -> dg.RunRequest:
    """One run ingesting ``batch`` (source -> ``(change_time_ns, name)`` of its files) into bronze."""
    digest = hashlib.sha1(json.dumps(sorted(batch.items())).encode()).hexdigest()[:16]
    files = {name: [n for _, n in items] for name, items in batch.items()}
    return dg.RunRequest(
        run_key=f"landing:{digest}",
        asset_selection=[dg.AssetKey(["bronze", name]) for name in files],
        run_config={"ops": {f"bronze__{name}": {"config": {"files": names}} for name, names in files.items()}},
        tags={"lakehouse/sources": ",".join(files), "lakehouse/files": str(sum(map(len, files.values())))},
    )


def build_landing_sensor(
    settle_seconds: float = SETTLE_SECONDS,
    max_files_per_run: int = MAX_FILES_PER_RUN,
    minimum_interval_seconds: int = 15,
    clock: Callable[[], float] = time.time,
) -> dg.SensorDefinition:
    """The landing sensor (module docstring); ``clock`` returns the current time in seconds since the epoch."""

    @dg.sensor(
        name="landing_sensor",
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=minimum_interval_seconds,
        target=dg.AssetSelection.groups("bronze"),
        description=(
            f"Starts bronze runs for new stable files in the landing zone, at most {max_files_per_run} files per run."
        ),
    )
    def landing_sensor(context: dg.SensorEvaluationContext, storage: LakehouseStorage) -> dg.SensorResult:
        cursor = {k: (v[0], v[1]) for k, v in json.loads(context.cursor or "{}").items()}
        now = clock()
        chunks: dict[str, list[list[tuple[int, str]]]] = {}
        for name, spec in SOURCES.items():
            position = cursor.get(name, (0, []))
            folder = Path(storage.landing.source_dir(name))
            pending = pending_files(folder, position, now, settle_seconds)
            if pending:
                cursor[name] = advance(position, pending)
                done = already_handled(storage.lake, spec, folder, [n for _, n in pending])
                pending = [(t, n) for t, n in pending if n not in done]
            if pending:
                chunks[name] = [pending[i : i + max_files_per_run] for i in range(0, len(pending), max_files_per_run)]
        requests = [
            batch_request({name: c[i] for name, c in chunks.items() if i < len(c)})
            for i in range(max((len(c) for c in chunks.values()), default=0))
        ]
        if not requests:
            return dg.SensorResult(skip_reason=dg.SkipReason("no new stable files"), cursor=json.dumps(cursor))
        context.log.info(f"{len(requests)} run(s) for new files")
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor))

    return landing_sensor


landing_sensor = build_landing_sensor()
