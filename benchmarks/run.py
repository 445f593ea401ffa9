"""Benchmark entry point: the full lakehouse against the bare floor script, on the real data at several scales.

Usage::

    python -m benchmarks.run                   # scales 1 and 10, plus the 12-day slice for fixed costs
    python -m benchmarks.run --scales 1 --repeat 3 --no-slice

For every case (a landing zone built by :mod:`benchmarks.make_data`) it runs, each in a **fresh subprocess** on an
**empty** lake, first the floor (:mod:`benchmarks.floor`) then the Dagster job (:mod:`benchmarks.pipeline`), and
reports per stage the wall time (seconds) and the peak resident memory (GiB, process RSS while the stage ran),
plus per process the end-to-end wall time (interpreter start to exit) and the peak RSS (``ru_maxrss`` of the
child from ``wait4``).

Fixed costs are reported separately:

* import time of the bare stack (polars, deltalake, lightgbm) and of ``lakehouse.definitions`` (dagster, mlflow,
  pandera, every asset), each in fresh interpreters, fastest of 3;
* the *slice* case: the real data restricted to days 1 of each month (about 11k flights), where the work is
  negligible, so the pipeline's extra wall time over the floor does not come from the data;
  :func:`benchmarks.report.fixed_cost` splits it (at the slice and at 1x) into the fixed cost proper (imports,
  setup, MLflow, Dagster's event log), reporting work (plots, Pandera, metadata) and the rest;
* the one-time creation of the pipeline's stores (Dagster instance and MLflow SQLite store with their schema
  migrations, ~1-2 s): done before each pipeline process in a process of its own, as only the first run on a
  machine does it, and timed separately (``--stores-only`` of :mod:`benchmarks.pipeline`);
* the pipeline's own split: imports, setup (definitions + Dagster instance), run time outside any step (run
  start, resource initialisation incl. MLflow, event log), and the time spent in MLflow, Pandera and metadata
  calls inside steps;
* with ``--multiprocess``, the slice once more with Dagster's multiprocess executor (a fresh process per step,
  which is what runs launched from the webserver, sensors and schedules use), and once with that executor forking
  its steps from a server that preloaded ``lakehouse.definitions`` (``start_method: forkserver``).

Memory: with ``--max-rss-gib`` (default 16, on this 23.5 GiB machine) the runner reads each child's RSS every
0.1 s and kills it (SIGKILL) the first time it is above the cap, before it can push the machine into the OOM killer.
A floor killed is reported as not completing the case (the bare floor holds whole tables, so at 100x it cannot);
a pipeline killed fails the benchmark. ``--train-window-months N`` makes both train on the newest N training months
plus the validation and test months (the model's ``train_window_months``): at 100x a training of every month does
not fit in memory, see BENCHMARKS.md.

Other processes on the machine distort wall times (LightGBM's most: with ``num_threads`` = all cores, one busy
core can make training several times slower), so before each process the runner waits for an idle machine
(``--min-idle``), every figure comes with the CPU seconds other processes used meanwhile ("others CPU-s"), and
with ``--repeat`` the fastest run of each kind is reported.

This module is the orchestration only: the CLI, building the cases, running the floor and pipeline subprocesses
and writing the results. Results go to ``benchmarks/results/bench-<UTC time>.json`` (git-ignored); the report
(:mod:`benchmarks.report`, built once from those results) is printed as text, and ``--report <json> [--markdown]``
prints it again from a results file, as text or Markdown. Child logs (Dagster's event log on stderr) are kept next
to the JSON under ``benchmarks/results/logs/``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import psutil

from benchmarks.make_data import build_landing
from benchmarks.measure import machine_cpu_seconds, measured_child, write_json
from benchmarks.report import GIB, build_report, render_markdown, render_text, verdicts

ROOT = Path(__file__).resolve().parents[1]  # children import `lakehouse` from here (cwd comes first on sys.path)
RESULTS = ROOT / "benchmarks" / "results"
PACKAGES = (
    "dagster",
    "dagster-mlflow",
    "deltalake",
    "polars",
    "polars-runtime-32",
    "pyarrow",
    "lightgbm",
    "mlflow",
    "pandera",
    "numpy",
    "scikit-learn",
)
IMPORT_PROBES = {
    "python startup (no imports)": "pass",
    "bare stack: polars, deltalake, lightgbm": "import polars, deltalake, lightgbm",
    "floor: benchmarks.floor's imports (+ lakehouse layers, pandera, sklearn)": "import benchmarks.floor",
    "pipeline: lakehouse.definitions (dagster, mlflow, ...)": "import lakehouse.definitions",
}


# ---------------------------------------------------------------- machine and versions


def machine() -> dict:
    """CPU model (``/proc/cpuinfo``: neither ``platform`` nor ``psutil`` gives it), logical CPUs, memory (GiB),
    kernel, Python."""
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu_model": model,
        "nproc": len(os.sched_getaffinity(0)),
        "mem_total_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def versions() -> dict:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def source_revision() -> dict:
    """Git commit of the code under test and whether ``lakehouse/`` differs from it (None outside a repo)."""

    def git(*args: str) -> str | None:
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--", "lakehouse")
    return {"root": str(ROOT), "commit": commit, "lakehouse_modified": bool(dirty) if commit else None}


# ---------------------------------------------------------------- subprocesses


def idle_share(window_s: float = 2.0) -> float:
    """Share of the machine's CPU time that was idle over the next ``window_s`` seconds (0..1)."""
    busy0, total0 = machine_cpu_seconds()
    time.sleep(window_s)
    busy1, total1 = machine_cpu_seconds()
    return 1.0 - (busy1 - busy0) / max(total1 - total0, 0.01)


def wait_for_idle(min_idle: float, max_wait_s: float) -> dict:
    """Wait until the machine is at least ``min_idle`` idle (other work would distort the figures), at most
    ``max_wait_s`` seconds. Returns ``{"waited_s", "idle_share"}``; proceeds anyway after the timeout."""
    t0 = time.perf_counter()
    share = idle_share()
    while share < min_idle and time.perf_counter() - t0 < max_wait_s:
        share = idle_share()
    return {"waited_s": time.perf_counter() - t0, "idle_share": share}


class MemoryCapExceeded(RuntimeError):
    """A child went above the memory cap and was killed (``wall_s``: seconds from its start to the kill)."""

    def __init__(self, message: str, wall_s: float) -> None:
        super().__init__(message)
        self.wall_s = wall_s


def run_child(module: str, args: list[str], log: Path, out: Path, max_rss_bytes: float | None = None) -> dict:
    """Run ``python -m module args`` in a fresh process; return its JSON plus ``process_wall_s`` (seconds,
    interpreter start to exit), ``cpu_s`` (user + system CPU seconds of the child), ``ru_maxrss_bytes`` (peak RSS
    of the child, from ``wait4``) and ``other_cpu_s`` (CPU seconds used by *other* processes on the machine
    meanwhile: a measure of how much the figures were disturbed). With ``max_rss_bytes`` the child is killed the
    first time its RSS is above it (:func:`benchmarks.measure.wait_capped`).

    Raises:
        MemoryCapExceeded: the child went above ``max_rss_bytes``.
        RuntimeError: the child failed (its output is in ``log``).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    argv = [sys.executable, "-m", module, *args, "--out", str(out)]
    with open(log, "wb") as sink:
        child = measured_child(argv, cwd=ROOT, env=env, sink=sink, max_rss_bytes=max_rss_bytes)
    wall = child.figures["process_wall_s"]
    if child.killed:
        raise MemoryCapExceeded(
            f"{module} killed after {wall:.0f} s: its RSS went above {max_rss_bytes / GIB:.1f} GiB; see {log}", wall
        )
    if child.returncode != 0:
        raise RuntimeError(f"{module} exited with {child.returncode}; see {log}")
    return {**json.loads(out.read_text()), **child.figures}


def import_times(repeat: int = 3) -> dict[str, float]:
    """Shortest wall time (seconds) of a fresh interpreter running each :data:`IMPORT_PROBES` statement, from
    process start to exit (so interpreter start-up is included; see the ``python startup`` probe)."""
    out = {}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for label, stmt in IMPORT_PROBES.items():
        samples = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", stmt], cwd=ROOT, env=env, capture_output=True, check=True)
            samples.append(time.perf_counter() - t0)
        out[label] = min(samples)
    return out


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run_case(
    label: str,
    scale: int,
    max_day: int | None,
    repeat: int,
    tmp: Path,
    logs: Path,
    keep: bool,
    min_idle: float,
    max_wait_s: float,
    multiprocess: bool = False,
    max_rss_gib: float | None = None,
    train_window_months: int = 0,
) -> dict:
    """Build the landing zone of one case, then run floor and pipeline ``repeat`` times each (and, with
    ``multiprocess``, the pipeline once more with Dagster's multiprocess executor). With ``max_rss_gib`` a process
    is killed when its RSS goes above it: a floor killed is recorded (``floor_killed``: seconds, cap) and the case
    goes on; a pipeline killed fails the benchmark."""
    work = Path(tempfile.mkdtemp(prefix=f"lakehouse-bench-{label}-", dir=tmp))
    try:
        t0 = time.perf_counter()
        landing = build_landing(work / "landing", scale, max_day=max_day)
        landing["build_s"] = time.perf_counter() - t0
        print(
            f"[{label}] landed {landing['rows']['flights']:,} flights in {landing['files']} files "
            f"({landing['bytes'] / 1e6:.0f} MB) in {landing['build_s']:.1f} s",
            flush=True,
        )
        runs: dict[str, list[dict]] = {"floor": [], "pipeline": []}
        floor_killed = None
        window = ["--train-window-months", str(train_window_months)] if train_window_months else []
        plan = [
            (i, kind, module, extra)
            for i in range(repeat)
            for kind, module, extra in (
                ("floor", "benchmarks.floor", [*window, "--lake"]),
                ("pipeline", "benchmarks.pipeline", [*window, "--work"]),
            )
        ]
        if multiprocess:
            for executor in ("multiprocess", "forkserver"):
                runs[f"pipeline_{executor}"] = []
                plan.append((0, f"pipeline_{executor}", "benchmarks.pipeline", ["--executor", executor, "--work"]))
        for i, kind, module, extra in plan:
            target = work / f"{kind}-{i}"
            idle = wait_for_idle(min_idle, max_wait_s) if min_idle > 0 else {}
            stores = None
            if module == "benchmarks.pipeline":  # the one-time store creation, in a process of its own
                stores = run_child(
                    module,
                    ["--stores-only", "--landing", str(work / "landing"), "--work", str(target)],
                    logs / f"{label}-{kind}-{i}-stores.log",
                    work / f"{kind}-{i}-stores.json",
                )
                idle = wait_for_idle(min_idle, max_wait_s) if min_idle > 0 else {}
            try:
                result = run_child(
                    module,
                    ["--landing", str(work / "landing"), *extra, str(target)],
                    logs / f"{label}-{kind}-{i}.log",
                    work / f"{kind}-{i}.json",
                    max_rss_gib * GIB if max_rss_gib else None,
                )
            except MemoryCapExceeded as err:
                if kind != "floor":
                    raise
                print(f"[{label}] {err}", flush=True)  # reported: the floor cannot do this scale in the cap
                floor_killed = {"wall_s": err.wall_s, "cap_gib": max_rss_gib}
                continue
            except RuntimeError as err:
                if kind in ("floor", "pipeline"):
                    raise
                print(f"[{label}] {kind} failed, left out: {err}", flush=True)  # an optional extra
                continue
            result.update(lake_bytes=tree_bytes(target), idle_before=idle, stores=stores)
            runs[kind].append(result)
            print(
                f"[{label}] {kind} #{i + 1}: {result['process_wall_s']:.1f} s, {result['cpu_s']:.1f} CPU-s, "
                f"peak {result['ru_maxrss_bytes'] / GIB:.2f} GiB; other processes used "
                f"{result['other_cpu_s']:.1f} CPU-s meanwhile",
                flush=True,
            )
            if not keep:
                shutil.rmtree(target, ignore_errors=True)
        case = {"label": label, "scale": scale, "max_day": max_day, "landing": landing, "runs": runs}
        return case | ({"floor_killed": floor_killed} if floor_killed else {})
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", default="1,10", help="comma-separated copies of the data (default 1,10)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each process per case (the fastest is reported)")
    parser.add_argument("--no-slice", action="store_true", help="skip the 12-day slice that isolates fixed costs")
    parser.add_argument("--tmp", default=tempfile.gettempdir(), help="where the temporary lakes go")
    parser.add_argument("--keep", action="store_true", help="keep landing zones and lakes (disk!)")
    parser.add_argument(
        "--min-idle",
        type=float,
        default=0.9,
        help="before each process wait until the machine is this idle (0..1; 0 = do not wait)",
    )
    parser.add_argument("--max-wait", type=float, default=600, help="longest wait for an idle machine, seconds")
    parser.add_argument(
        "--multiprocess",
        action="store_true",
        help="also run the pipeline on the slice once with Dagster's multiprocess executor and once "
        "with it forking steps from a preloaded server",
    )
    parser.add_argument(
        "--max-rss-gib",
        type=float,
        default=16.0,
        help="kill a floor or pipeline process whose RSS goes above this (GiB; 0 = no cap): a floor killed is "
        "reported as not completing, a pipeline killed fails the run (default 16, on a 23.5 GiB machine)",
    )
    parser.add_argument(
        "--train-window-months",
        type=int,
        default=0,
        help="floor and pipeline train on the newest N training months plus validation and test (the model's "
        "train_window_months); 0 = every month (default)",
    )
    parser.add_argument("--report", metavar="JSON", help="only print the report of an earlier results file")
    parser.add_argument("--markdown", action="store_true", help="with --report: as Markdown (BENCHMARKS.md)")
    args = parser.parse_args(argv)
    if args.markdown and not args.report:
        parser.error("--markdown needs --report JSON")
    if args.report:
        model = build_report(json.loads(Path(args.report).read_text()))
        print(render_markdown(model) if args.markdown else render_text(model), end="")
        return 0
    scales = [int(s) for s in args.scales.split(",") if s.strip()]

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    logs = RESULTS / "logs" / stamp
    results: dict = {
        "started_at": stamp,
        "command": " ".join(["python -m benchmarks.run", *(argv or sys.argv[1:])]),
        "machine": machine(),
        "versions": versions(),
        "source": source_revision(),
    }
    print(f"machine: {results['machine']}\nversions: {results['versions']}\nsource: {results['source']}", flush=True)
    if args.min_idle > 0:
        wait_for_idle(args.min_idle, args.max_wait)
    results["imports"] = import_times()
    for label, seconds in results["imports"].items():
        print(f"import {label}: {seconds:.2f} s", flush=True)

    cases = [("slice", 1, 1)] if not args.no_slice else []
    cases += [(f"{s}x", s, None) for s in scales]
    results["cases"] = [
        run_case(
            label,
            scale,
            max_day,
            args.repeat,
            Path(args.tmp),
            logs,
            args.keep,
            args.min_idle,
            args.max_wait,
            args.multiprocess and max_day is not None,
            args.max_rss_gib or None,
            args.train_window_months,
        )
        for label, scale, max_day in cases
    ]
    results["verdicts"] = verdicts(results["cases"], results["imports"])  # also in the report; kept for readers
    out = RESULTS / f"bench-{stamp}.json"
    write_json(out, results)

    print()
    print(render_text(build_report(results)), end="")
    print(f"\nresults: {out}\nlogs: {logs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
