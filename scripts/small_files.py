"""The small-files lake and what maintenance makes of it, measured on real flights.

Writes the lake that ``--files`` small landed files ingested one run at a time leave behind (``--rows`` real flights
each): per file, the bronze append and the silver MERGE a bronze + silver run commits (the same ``Lake`` writes, the
same bronze shape and silver contract, without Dagster's per-run overhead); then
runs the Dagster job ``lake_maintenance`` with the default retention (7 days: nothing a recent reader may need is
deleted) and with retention 0, and prints per table the files of the current version and on disk before and after,
and the rows (unchanged).

    uv run python -m scripts.small_files --files 500
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from lakehouse.bronze.parsing import to_bronze
from lakehouse.definitions import build_definitions
from lakehouse.landing import read_raw_table
from lakehouse.maintenance.housekeeping import footprint
from lakehouse.progress import QUIET_RUN_CONFIG
from lakehouse.settings import Settings
from lakehouse.silver.conform import changed_span, conform
from lakehouse.sources import FLIGHTS
from lakehouse.tables import BRONZE, QUARANTINE, SILVER, Lake


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.small_files", description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=500, help="small landed files, one bronze + silver commit each")
    parser.add_argument("--rows", type=int, default=20, help="flights per file")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="small-files-"))
    settings = Settings.from_env(work)
    lake = Lake(settings.lake_dir)
    tables = [BRONZE["flights"], SILVER["flights"]]
    flights = read_raw_table("flights")
    t0 = time.perf_counter()
    for seq in range(1, args.files + 1):
        raw = flights.slice((seq - 1) * args.rows, args.rows)
        name = f"part_{seq:04d}.csv"
        digest = hashlib.sha256(raw.write_csv().encode()).hexdigest()
        bronze = to_bronze(
            raw,
            FLIGHTS,
            source_file=name,
            file_hash=digest,
            batch_id=f"batch-{seq}",
            batch_seq=seq,
            ingested_at=datetime.now(UTC),
        )
        lake.append(BRONZE["flights"], bronze, progress=seq)
        batch = conform(bronze, FLIGHTS)
        lake.merge(QUARANTINE["flights"], batch.quarantine)
        lake.merge(SILVER["flights"], batch.valid, progress=seq, changed=changed_span(batch.valid, FLIGHTS))
    print(
        f"{args.files} files of {args.rows} flights written as {args.files} bronze appends and silver MERGEs "
        f"in {time.perf_counter() - t0:.0f} s"
    )
    rows = {t.path: lake.read(t).height for t in tables}
    before = {t.path: footprint(lake.location(t)) for t in tables}
    job = build_definitions(settings).resolve_job_def("lake_maintenance")
    with dg.instance_for_test() as instance:
        for retention in (168, 0):
            t1 = time.perf_counter()
            config = {**QUIET_RUN_CONFIG, "ops": {"plan_maintenance": {"config": {"retention_hours": retention}}}}
            assert job.execute_in_process(instance=instance, run_config=config).success
            after = {t.path: footprint(lake.location(t)) for t in tables}
            print(f"\nlake_maintenance with retention_hours={retention} ({time.perf_counter() - t1:.1f} s):")
            for t in tables:
                b, a = before[t.path], after[t.path]
                same = lake.read(t).height == rows[t.path]
                print(
                    f"  {t.path:<16} current version: {b.files:>4} -> {a.files:>3} files; on disk: "
                    f"{b.disk_files:>4} -> {a.disk_files:>4} files ({(b.disk_bytes or 0) / 1e6:.1f} -> "
                    f"{(a.disk_bytes or 0) / 1e6:.1f} MB); rows {rows[t.path]:,} {'unchanged' if same else 'CHANGED'}"
                )
    print(f"\n(lake left in {work})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
