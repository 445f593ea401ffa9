"""The two deployment profiles side by side: what object storage, Postgres and an MLflow server cost.

Usage::

    python -m benchmarks.profiles                         # the test slice and the 1x data, once each
    python -m benchmarks.profiles --cases 1x --repeat 2   # the fastest of two runs per program

For each case (``slice``: months 1-3 of 2013, days 1-2, the slice of ``lakehouse_tests/test_distributed_topology.py``;
``1x``: the whole real year) it lands the data and runs, each in a fresh process on an empty lake, with nothing
else running (:func:`benchmarks.run.wait_for_idle` before each):

* ``floor``: :mod:`benchmarks.floor`, the bare stack doing the same work (local Delta tables, no Dagster, no MLflow);
* ``embedded``: ``lakehouse run`` with the defaults: lake and landing zone in a local folder, Dagster on SQLite,
  MLflow on SQLite and local artifacts, in-process executor;
* ``distributed``: the same ``lakehouse run`` with the lake and the landing zone on an S3-compatible server
  (``moto_server``), the Dagster instance on PostgreSQL 16 (``docker/dagster.yaml``) and the model registry on an
  ``mlflow server`` (Postgres backend, artifacts proxied to the S3 store): the servers of the test suite
  (:mod:`lakehouse_tests.servers`, :mod:`lakehouse_tests.object_store`), on loopback on this machine, started
  before the run and not timed. A fresh database, bucket and MLflow server per run, so each run starts empty.

Reported per run: wall time of the process (seconds, start to exit), its peak RSS (GiB, ``ru_maxrss`` from
``wait4``), for the distributed profile the peak memory of each server's process group while the run ran (PSS,
sampled every 0.25 s with psutil: shared pages counted once), and the CPU seconds of everything else on the machine
meanwhile ("others CPU-s": for the distributed profile that is mostly the servers' own work). Each run's silver
flights row count and its champion's test ROC-AUC are printed too: the profiles must do the same work.

The S3 server here is moto, which keeps every object in its own memory: its memory grows with the lake, where a
real object store would hold it on its disks; the servers share this machine's two cores with the run.
Results: ``benchmarks/results/profiles-<UTC time>.json`` (git-ignored); ``--markdown`` prints the table as Markdown.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import psutil

from benchmarks.measure import measured_child
from benchmarks.report import GIB
from benchmarks.run import RESULTS, ROOT, run_child, wait_for_idle
from lakehouse.resources import ModelRegistry

LAKEHOUSE = str(Path(sys.executable).with_name("lakehouse"))
CASES: dict[str, dict] = {"slice": {"months": [1, 2, 3], "max_day": 2}, "1x": {"months": list(range(1, 13))}}
PROGRAMS = ("floor", "embedded", "distributed")
SAMPLE_S = 0.25
MODEL_NAME = ModelRegistry.model_fields["model_name"].default


def group_pss(pgid: int) -> int:
    """Proportional set size (bytes) of every process in process group ``pgid`` together (0 when it has none):
    each shared page counted once across the group, where summing RSS would count a forked server's shared pages
    once per worker."""
    total = 0
    for process in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(process.pid) == pgid:
                total += process.memory_full_info().pss
    return total


class GroupPeaks:
    """Peak memory (PSS, bytes) of named process groups, sampled every :data:`SAMPLE_S` seconds in a thread."""

    def __init__(self, groups: dict[str, int]):
        self.groups = groups
        self.peaks = dict.fromkeys(groups, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pgid in self.groups.items():
                self.peaks[name] = max(self.peaks[name], group_pss(pgid))
            self._stop.wait(SAMPLE_S)

    def __enter__(self) -> GroupPeaks:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def timed_run(case: str, env: dict[str, str], log: Path) -> dict:
    """``lakehouse run --months <case's months>`` in a fresh process with ``env`` (the data already landed: the
    command lands only months that are missing): wall (s), CPU (s), peak RSS (bytes), others' CPU (s).

    Raises:
        RuntimeError: the run failed (its output is in ``log``).
    """
    months = CASES[case]["months"]
    argv = [LAKEHOUSE, "run", "--months", f"{min(months)}-{max(months)}"]
    with log.open("wb") as sink:
        child = measured_child(argv, cwd=ROOT, env=env, sink=sink)
    if child.returncode != 0:
        raise RuntimeError(f"lakehouse run failed; see {log}")
    return child.figures


def same_work(env: dict[str, str]) -> dict:
    """Silver flights rows (Delta log) and the champion's test ROC-AUC of the run that ``env`` describes."""
    code = (
        "import json\n"
        "from mlflow.tracking import MlflowClient\n"
        "from lakehouse.settings import Settings\n"
        "from lakehouse.tables import BY_PATH, Lake\n"
        "s = Settings.from_env()\n"
        "c = MlflowClient(tracking_uri=s.mlflow_tracking_uri, registry_uri=s.mlflow_tracking_uri)\n"
        f"v = c.get_model_version_by_alias({MODEL_NAME!r}, 'champion')\n"
        "print(json.dumps({'silver_flights': Lake(s.lake_dir).row_count(BY_PATH['silver/flights']),\n"
        "                  'test_roc_auc': c.get_run(v.run_id).data.metrics['test_roc_auc']}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without the lakehouse's, Dagster's and AWS settings, plus ``extra``."""
    prefixes = ("LAKEHOUSE_", "DAGSTER_", "AWS_", "MLFLOW_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


@contextlib.contextmanager
def servers(tmp: Path) -> Iterator[tuple]:
    """The S3 server and the PostgreSQL server for the whole benchmark (from the test suite's fixtures' code)."""
    from lakehouse_tests.object_store import running_s3_server
    from lakehouse_tests.servers import running_postgres

    (tmp / "servers").mkdir()
    with running_s3_server(tmp / "servers") as s3, running_postgres() as postgres:
        yield s3, postgres


def land_into(location: str, case: str, env: dict[str, str]) -> None:
    """``lakehouse land`` of ``case``'s months into ``location`` (a folder or ``s3://``; ``env`` reaches it)."""
    months, max_day = CASES[case]["months"], CASES[case].get("max_day")
    args = [LAKEHOUSE, "land", "--months", f"{min(months)}-{max(months)}"]
    args += ["--max-day", str(max_day)] if max_day else []
    subprocess.run(args, env={**env, "LAKEHOUSE_LANDING_DIR": location}, cwd=ROOT, capture_output=True, check=True)


def run_distributed(case: str, tmp: Path, s3, postgres, log: Path) -> dict:
    """One ``lakehouse run`` of ``case`` on the distributed profile, with fresh stores."""
    from lakehouse_tests.servers import running_mlflow_server

    bucket = s3.new_bucket()
    database = postgres.new_database()
    home = tmp / "dagster_home"
    home.mkdir()
    shutil.copyfile(ROOT / "docker" / "dagster.yaml", home / "dagster.yaml")
    with running_mlflow_server(postgres, s3, tmp) as mlflow:
        env = clean_env(
            LAKEHOUSE_DATA_DIR=str(tmp / "data"),
            LAKEHOUSE_LANDING_DIR=f"s3://{bucket}/landing",
            LAKEHOUSE_LAKE_DIR=f"s3://{bucket}/lake",
            LAKEHOUSE_MLFLOW_URI=mlflow.uri,
            DAGSTER_HOME=str(home),
            **s3.env(),
            **postgres.dagster_env(database),
        )
        land_into(env["LAKEHOUSE_LANDING_DIR"], case, env)
        wait_for_idle(0.9, 120)
        with GroupPeaks({"s3 (moto)": s3.pid, "postgres": postgres.pid, "mlflow server": mlflow.pid}) as peaks:
            result = timed_run(case, env, log)
        result["servers_peak_rss_bytes"] = dict(peaks.peaks)
        result.update(same_work(env))
    return result


def run_embedded(case: str, tmp: Path, log: Path) -> dict:
    env = clean_env(LAKEHOUSE_DATA_DIR=str(tmp / "data"))
    land_into(str(tmp / "data" / "landing"), case, env)
    wait_for_idle(0.9, 120)
    result = timed_run(case, env, log)
    result.update(same_work(env))
    return result


def run_floor(case: str, tmp: Path, log: Path) -> dict:
    landing = tmp / "landing"
    land_into(str(landing), case, clean_env())
    wait_for_idle(0.9, 120)
    floor_args = ["--landing", str(landing), "--lake", str(tmp / "lake")]
    result = run_child("benchmarks.floor", floor_args, log, tmp / "floor.json")
    return {k: result[k] for k in ("process_wall_s", "cpu_s", "ru_maxrss_bytes", "other_cpu_s")}


def render(results: dict[str, dict[str, dict]], markdown: bool) -> str:
    header = ["case", "program", "wall s", "peak RSS GiB", "servers' peak PSS GiB", "others CPU-s", "same work"]
    rows = []
    for case, programs in results.items():
        for program, r in programs.items():
            servers_rss = r.get("servers_peak_rss_bytes")
            work = f"{r['silver_flights']:,} flights, ROC-AUC {r['test_roc_auc']:.4f}" if "silver_flights" in r else "-"
            rows.append(
                [
                    case,
                    program,
                    f"{r['process_wall_s']:.1f}",
                    f"{r['ru_maxrss_bytes'] / GIB:.2f}",
                    ", ".join(f"{k} {v / GIB:.2f}" for k, v in servers_rss.items()) if servers_rss else "-",
                    f"{r['other_cpu_s']:.1f}",
                    work,
                ]
            )
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join([*lines, *("| " + " | ".join(row) + " |" for row in rows)])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    return "\n".join("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)) for row in [header, *rows])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profiles", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="slice,1x", help="comma-separated: slice, 1x (default both)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per program and case; the fastest is kept")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args(argv)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown or not cases or args.repeat < 1:
        parser.error(f"--cases takes {', '.join(CASES)} (got {args.cases!r}); --repeat must be >= 1")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    logs = RESULTS / "logs" / f"profiles-{stamp}"
    logs.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory(prefix="lakehouse-profiles-") as scratch, servers(Path(scratch)) as (s3, pg):
        for case in cases:
            results[case] = {}
            for program in PROGRAMS:
                runs = []
                for i in range(args.repeat):
                    tmp = Path(scratch) / f"{case}-{program}-{i}"
                    tmp.mkdir()
                    log = logs / f"{case}-{program}-{i}.log"
                    if program == "floor":
                        runs.append(run_floor(case, tmp, log))
                    elif program == "embedded":
                        runs.append(run_embedded(case, tmp, log))
                    else:
                        runs.append(run_distributed(case, tmp, s3, pg, log))
                    print(f"{case} {program} #{i + 1}: {runs[-1]['process_wall_s']:.1f} s", file=sys.stderr)
                    shutil.rmtree(tmp, ignore_errors=True)
                results[case][program] = min(runs, key=lambda r: r["process_wall_s"])
    out = RESULTS / f"profiles-{stamp}.json"
    out.write_text(json.dumps({"cases": CASES, "repeat": args.repeat, "results": results}, indent=2))
    print(render(results, args.markdown))
    print(f"\nresults: {out.relative_to(ROOT)}; logs: {logs.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
