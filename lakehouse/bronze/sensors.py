"""The landing sensor: new files in ``<landing>/<source>/`` become bronze runs, in batches.

* **Which files.** Visible data files only (no hidden, temporary or partial names; see
  :func:`lakehouse.bronze.parsing.is_candidate`) that are **stable** (:func:`is_stable`), so a file still being
  written is left for a later tick: a local file once untouched for ``settle_seconds``; an object of an S3
  landing zone (``s3://bucket/prefix``, :mod:`lakehouse.folders`) once its size and ETag are the same as at the
  sensor's previous look (an object is first seen, then taken at the next tick if unchanged).
* **Cursor that scales.** Per source, the cursor keeps the newest change time handled and the names handled at
  that exact time: ``{"flights": [1763718000123456789, ["a.csv"]], ...}``. Its size does not grow with the
  number of files. The change time is ``max(mtime, ctime)``: ``ctime`` cannot be set by a user, so a file
  copied with its old mtime preserved (``cp -p``, ``rsync -t``) or renamed is still seen as new. An object's
  change time is its last-modified time; the entry of an S3 source also keeps the objects seen but not stable
  yet, with their ``"<size>:<ETag>"``: ``[ns, [names], {"b.csv": "1234:\"9f...\""}]`` (only while there are
  some). Known limit (not handled): an object that becomes visible only after the cursor moved past its
  last-modified time (if a server stamps a long or multipart upload with the time it began; not measured here)
  is not offered by the sensor; a run of the bronze asset without a file list still ingests it.
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
from lakehouse.bronze.parsing import discover
from lakehouse.folders import Entry, Folder
from lakehouse.resources import LakehouseStorage
from lakehouse.sources import SOURCES

SETTLE_SECONDS = 10.0
MAX_FILES_PER_RUN = 100


def change_time_ns(path: Path) -> int:
    st = path.stat()
    return max(st.st_mtime_ns, st.st_ctime_ns)


def is_stable(entry: Entry, now: float, settle_seconds: float, looked: dict[str, str]) -> bool:
    """A local file (no ``version``) is stable once untouched for ``settle_seconds`` (its change time, ``now`` in
    seconds since the epoch); an object once its ``version`` (size and ETag) is the one the previous look saw
    (``looked``: name -> version)."""
    if entry.version is None:
        return now - entry.changed_ns / 1e9 >= settle_seconds
    return looked.get(entry.name) == entry.version


def pending_files(
    folder: Folder,
    position: tuple[int, list[str]],
    now: float,
    settle_seconds: float,
    looked: dict[str, str] | None = None,
) -> tuple[list[tuple[int, str]], dict[str, str]]:
    """Stable candidate files after the cursor ``position`` (:func:`is_stable`), oldest first, as
    ``(change_time_ns, name)``; and what this look saw of the objects not stable yet (name -> version, for the next
    look; always empty for a local folder). An object seen by the previous look stays a candidate even when the
    cursor has moved past its time."""
    last_ns, names_at_last = position
    looked = looked or {}
    out, seen = [], {}
    for entry in discover(folder):
        after = entry.changed_ns > last_ns or (entry.changed_ns == last_ns and entry.name not in names_at_last)
        if not (after or entry.name in looked):
            continue
        if not is_stable(entry, now, settle_seconds, looked):
            if entry.version is not None:
                seen[entry.name] = entry.version
            continue  # still being written, or just landed: next tick
        out.append((entry.changed_ns, entry.name))
    return sorted(out), seen


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
        previous = json.loads(context.cursor or "{}")
        cursor = {k: (v[0], v[1]) for k, v in previous.items()}
        looked = {k: v[2] for k, v in previous.items() if len(v) > 2}
        now = clock()
        chunks: dict[str, list[list[tuple[int, str]]]] = {}
        for name, spec in SOURCES.items():
            position = cursor.get(name, (0, []))
            folder = storage.landing.source(name)
            pending, looked[name] = pending_files(folder, position, now, settle_seconds, looked.get(name))
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
        stored: dict[str, list] = {}  # an S3 source's entry also keeps its unstable objects' versions
        for k in [*cursor, *(k for k, v in looked.items() if v and k not in cursor)]:
            ns, names = cursor.get(k, (0, []))
            stored[k] = [ns, names, looked[k]] if looked.get(k) else [ns, names]
        if not requests:
            return dg.SensorResult(skip_reason=dg.SkipReason("no new stable files"), cursor=json.dumps(stored))
        context.log.info(f"{len(requests)} run(s) for new files")
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(stored))

    return landing_sensor


landing_sensor = build_landing_sensor()
