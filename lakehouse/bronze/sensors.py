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
  some).
* **Late objects.** A server may stamp an object with the time its upload *began* (AWS's S3 documentation says
  so of a multipart upload's object, whose creation date is the upload's initiation; not verifiable here: moto,
  the tests' server, stamps the completion, so the tests place the cursor past an object instead), so an object
  can become visible after the cursor moved past its last-modified time. For an object landing zone the
  sensor therefore also looks ``late_window_seconds`` (default 1 h) behind its position, and the cursor keeps the
  names it handled inside that window with their times (``[ns, [names], {unstable}, {"a.csv": ns}]``, pruned as
  the position moves, so its size is bounded by the objects of one window, not by the landing zone). An object
  uploaded for longer than the window and hidden meanwhile is still missed; a run of the bronze asset without a
  file list ingests it. Local files are not affected: their change time includes ``ctime``, set when the file
  appears.
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
from lakehouse.folders import Entry, Folder, ObjectFolder
from lakehouse.resources import LakehouseStorage
from lakehouse.sources import SOURCES

SETTLE_SECONDS = 10.0
MAX_FILES_PER_RUN = 100
LATE_WINDOW_SECONDS = 3600.0


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
    recent: dict[str, int] | None = None,
    late_window_ns: int = 0,
) -> tuple[list[tuple[int, str]], dict[str, str]]:
    """Stable candidate files after the cursor ``position`` (:func:`is_stable`), oldest first, as
    ``(change_time_ns, name)``; and what this look saw of the objects not stable yet (name -> version, for the next
    look; always empty for a local folder). An object seen by the previous look stays a candidate even when the
    cursor has moved past its time, and so does an object up to ``late_window_ns`` behind the position that is not
    in ``recent`` (name -> change time of the objects handled in that window; module docstring, "Late objects")."""
    last_ns, names_at_last = position
    looked, recent = looked or {}, recent or {}
    out, seen = [], {}
    for entry in discover(folder):
        after = entry.changed_ns > last_ns or (entry.changed_ns == last_ns and entry.name not in names_at_last)
        late = (
            entry.version is not None
            and entry.changed_ns > last_ns - late_window_ns
            and entry.name not in recent
            and entry.name not in names_at_last
        )
        if not (after or late or entry.name in looked):
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


def remember(
    recent: dict[str, int], taken: Iterable[tuple[int, str]], last_ns: int, late_window_ns: int
) -> dict[str, int]:
    """``recent`` plus the objects just ``taken``, without those now further than ``late_window_ns`` behind the
    position ``last_ns`` (name -> change time, ns)."""
    merged = {**recent, **{name: changed for changed, name in taken}}
    return {name: changed for name, changed in sorted(merged.items()) if changed > last_ns - late_window_ns}


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
    late_window_seconds: float = LATE_WINDOW_SECONDS,
) -> dg.SensorDefinition:
    """The landing sensor (module docstring); ``clock`` returns the current time in seconds since the epoch;
    ``late_window_seconds`` is how far behind its position the sensor looks for objects that became visible late
    (object landing zones only)."""

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
        recent = {k: v[3] for k, v in previous.items() if len(v) > 3}
        now = clock()
        chunks: dict[str, list[list[tuple[int, str]]]] = {}
        for name, spec in SOURCES.items():
            position = cursor.get(name, (0, []))
            folder = storage.landing.source(name)
            window = int(late_window_seconds * 1e9) if isinstance(folder, ObjectFolder) else 0
            pending, looked[name] = pending_files(
                folder, position, now, settle_seconds, looked.get(name), recent.get(name), window
            )
            if pending:
                cursor[name] = advance(position, pending)
            if window:
                recent[name] = remember(recent.get(name, {}), pending, cursor.get(name, position)[0], window)
            if pending:
                done = already_handled(storage.lake, spec, folder, [n for _, n in pending])
                pending = [(t, n) for t, n in pending if n not in done]
            if pending:
                chunks[name] = [pending[i : i + max_files_per_run] for i in range(0, len(pending), max_files_per_run)]
        requests = [
            batch_request({name: c[i] for name, c in chunks.items() if i < len(c)})
            for i in range(max((len(c) for c in chunks.values()), default=0))
        ]
        # an S3 source's entry also keeps its unstable objects' versions and the objects of the late window
        stored: dict[str, list] = {}
        for k in [*cursor, *(k for k in SOURCES if (looked.get(k) or recent.get(k)) and k not in cursor)]:
            ns, names = cursor.get(k, (0, []))
            if recent.get(k):
                stored[k] = [ns, names, looked.get(k) or {}, recent[k]]
            elif looked.get(k):
                stored[k] = [ns, names, looked[k]]
            else:
                stored[k] = [ns, names]
        if not requests:
            return dg.SensorResult(skip_reason=dg.SkipReason("no new stable files"), cursor=json.dumps(stored))
        context.log.info(f"{len(requests)} run(s) for new files")
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(stored))

    return landing_sensor


landing_sensor = build_landing_sensor()
