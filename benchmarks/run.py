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
  negligible, so the pipeline's extra wall time over the floor does not come from the data; :func:`fixed_cost`
  splits it (at the slice and at 1x) into the fixed cost proper (imports, setup, MLflow, Dagster's event log),
  reporting work (plots, Pandera, metadata) and the rest;
* the one-time creation of the pipeline's stores (Dagster instance and MLflow SQLite store with their schema
  migrations, ~1-2 s): done before each pipeline process in a process of its own, as only the first run on a
  machine does it, and timed separately (``--stores-only`` of :mod:`benchmarks.pipeline`);
* the pipeline's own split: imports, setup (definitions + Dagster instance), run time outside any step (run
  start, resource initialisation incl. MLflow, event log), and the time spent in MLflow, Pandera and metadata
  calls inside steps;
* with ``--multiprocess``, the slice once more with Dagster's multiprocess executor (a fresh process per step,
  which is what runs launched from the webserver, sensors and schedules use), and once with that executor forking
  its steps from a server that preloaded ``lakehouse.definitions`` (``start_method: forkserver``).

Other processes on the machine distort wall times (LightGBM's most: with ``num_threads`` = all cores, one busy
core can make training several times slower), so before each process the runner waits for an idle machine
(``--min-idle``), every figure comes with the CPU seconds other processes used meanwhile ("others CPU-s"), and
with ``--repeat`` the fastest run of each kind is reported.

Results go to ``benchmarks/results/bench-<UTC time>.json`` (git-ignored); the tables are printed. Child logs
(Dagster's event log on stderr) are kept next to the JSON under ``benchmarks/results/logs/``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.make_data import build_landing
from benchmarks.measure import CLK_TCK, STAGES, cpu_ticks, write_json

ROOT = Path(__file__).resolve().parents[1]  # children import `lakehouse` from here (cwd comes first on sys.path)
RESULTS = ROOT / "benchmarks" / "results"
GIB = 1024**3
TARGET_RATIO = 1.5  # at 10x: pipeline within 1.5x of the floor's wall time and peak memory
FEW_SECONDS = 5.0  # at 1x: "a few seconds" of fixed cost, the bound this report checks against
PACKAGES = ("dagster", "dagster-mlflow", "deltalake", "polars", "polars-runtime-32", "pyarrow", "lightgbm",
            "mlflow", "pandera", "numpy", "scikit-learn")
IMPORT_PROBES = {
    "python startup (no imports)": "pass",
    "bare stack: polars, deltalake, lightgbm": "import polars, deltalake, lightgbm",
    "floor: + lakehouse.transforms (pandera, sklearn)":
        "import polars, deltalake, lightgbm; import lakehouse.transforms.silver, lakehouse.transforms.training",
    "pipeline: lakehouse.definitions (dagster, mlflow, ...)": "import lakehouse.definitions",
}


# ---------------------------------------------------------------- machine and versions

def machine() -> dict:
    """CPU model, logical CPUs, memory (GiB), kernel, Python."""
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))
    return {
        "cpu_model": model,
        "nproc": len(os.sched_getaffinity(0)),
        "mem_total_gib": round(mem_kib / 1024**2, 1),
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
    busy0, total0 = cpu_ticks()
    time.sleep(window_s)
    busy1, total1 = cpu_ticks()
    return 1.0 - (busy1 - busy0) / max(total1 - total0, 1)


def wait_for_idle(min_idle: float, max_wait_s: float) -> dict:
    """Wait until the machine is at least ``min_idle`` idle (other work would distort the figures), at most
    ``max_wait_s`` seconds. Returns ``{"waited_s", "idle_share"}``; proceeds anyway after the timeout."""
    t0 = time.perf_counter()
    share = idle_share()
    while share < min_idle and time.perf_counter() - t0 < max_wait_s:
        share = idle_share()
    return {"waited_s": time.perf_counter() - t0, "idle_share": share}


def run_child(module: str, args: list[str], log: Path, out: Path) -> dict:
    """Run ``python -m module args`` in a fresh process; return its JSON plus ``process_wall_s`` (seconds,
    interpreter start to exit), ``cpu_s`` (user + system CPU seconds of the child), ``ru_maxrss_bytes`` (peak RSS
    of the child, from ``wait4``) and ``other_cpu_s`` (CPU seconds used by *other* processes on the machine
    meanwhile: a measure of how much the figures were disturbed).

    Raises:
        RuntimeError: the child failed (its output is in ``log``).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with open(log, "wb") as sink:
        busy0, _ = cpu_ticks()
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", module, *args, "--out", str(out)], cwd=ROOT, env=env,
                                stdout=sink, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        busy1, _ = cpu_ticks()
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{module} exited with {proc.returncode}; see {log}")
    result = json.loads(out.read_text())
    cpu = usage.ru_utime + usage.ru_stime
    result.update(process_wall_s=wall, cpu_s=cpu, ru_maxrss_bytes=usage.ru_maxrss * 1024,  # Linux reports KiB
                  other_cpu_s=max(0.0, (busy1 - busy0) / CLK_TCK - cpu))
    return result


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


def run_case(label: str, scale: int, max_day: int | None, repeat: int, tmp: Path, logs: Path, keep: bool,
             min_idle: float, max_wait_s: float, multiprocess: bool = False) -> dict:
    """Build the landing zone of one case, then run floor and pipeline ``repeat`` times each (and, with
    ``multiprocess``, the pipeline once more with Dagster's multiprocess executor)."""
    work = Path(tempfile.mkdtemp(prefix=f"lakehouse-bench-{label}-", dir=tmp))
    try:
        t0 = time.perf_counter()
        landing = build_landing(work / "landing", scale, max_day=max_day)
        landing["build_s"] = time.perf_counter() - t0
        print(f"[{label}] landed {landing['rows']['flights']:,} flights in {landing['files']} files "
              f"({landing['bytes'] / 1e6:.0f} MB) in {landing['build_s']:.1f} s", flush=True)
        runs: dict[str, list[dict]] = {"floor": [], "pipeline": []}
        plan = [(i, kind, module, extra) for i in range(repeat)
                for kind, module, extra in (("floor", "benchmarks.floor", ["--lake"]),
                                            ("pipeline", "benchmarks.pipeline", ["--work"]))]
        if multiprocess:
            for executor in ("multiprocess", "forkserver"):
                runs[f"pipeline_{executor}"] = []
                plan.append((0, f"pipeline_{executor}", "benchmarks.pipeline", ["--executor", executor, "--work"]))
        for i, kind, module, extra in plan:
            target = work / f"{kind}-{i}"
            idle = wait_for_idle(min_idle, max_wait_s) if min_idle > 0 else {}
            stores = None
            if module == "benchmarks.pipeline":  # the one-time store creation, in a process of its own
                stores = run_child(module, ["--stores-only", "--landing", str(work / "landing"), "--work",
                                            str(target)], logs / f"{label}-{kind}-{i}-stores.log",
                                   work / f"{kind}-{i}-stores.json")
                idle = wait_for_idle(min_idle, max_wait_s) if min_idle > 0 else {}
            try:
                result = run_child(module, ["--landing", str(work / "landing"), *extra, str(target)],
                                   logs / f"{label}-{kind}-{i}.log", work / f"{kind}-{i}.json")
            except RuntimeError as err:
                if kind in ("floor", "pipeline"):
                    raise
                print(f"[{label}] {kind} failed, left out: {err}", flush=True)  # an optional extra
                continue
            result.update(lake_bytes=tree_bytes(target), idle_before=idle, stores=stores)
            runs[kind].append(result)
            print(f"[{label}] {kind} #{i + 1}: {result['process_wall_s']:.1f} s, {result['cpu_s']:.1f} CPU-s, "
                  f"peak {result['ru_maxrss_bytes'] / GIB:.2f} GiB; other processes used "
                  f"{result['other_cpu_s']:.1f} CPU-s meanwhile", flush=True)
            if not keep:
                shutil.rmtree(target, ignore_errors=True)
        return {"label": label, "scale": scale, "max_day": max_day, "landing": landing, "runs": runs}
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------- reporting

def representative(runs: list[dict]) -> dict:
    """The run with the shortest end-to-end wall time: on a machine shared with other work, the least disturbed
    one (as ``timeit`` does); every run is in the JSON."""
    return min(runs, key=lambda r: r["process_wall_s"])


NAME_W = 42


def _cell(value: float | None, width: int, digits: int = 2) -> str:
    return f"{value:{width}.{digits}f}" if value is not None else f"{'-':>{width}}"


def _ratio(new: float | None, base: float | None) -> str:
    return f"{new / base:6.2f}x" if new is not None and base else f"{'-':>7}"


def different_checks(floor: dict, pipe: dict) -> list[str]:
    """Sanity figures both processes report (row counts, best iteration, ROC-AUC, max PSI) that differ."""
    def same(a, b) -> bool:
        return math.isclose(a, b, rel_tol=1e-9) if isinstance(a, float) and isinstance(b, float) else a == b
    return [k for k in floor if k in pipe and not same(floor[k], pipe[k])]


def case_table(case: dict) -> str:
    """Per-stage and per-process figures of one case, floor next to pipeline (see module docstring)."""
    floor, pipe = representative(case["runs"]["floor"]), representative(case["runs"]["pipeline"])
    fl = case["landing"]
    head = (f"{case['label']}: {fl['rows']['flights']:,} flights, {fl['rows']['planes']:,} planes, "
            f"{fl['rows']['weather']:,} weather rows; landing {fl['files']} CSV files, {fl['bytes'] / 1e6:.0f} MB")
    lines = [head, f"{'':{NAME_W}}{'wall s':^26}{'peak RSS GiB':^26}{'others CPU-s':^16}",
             f"{'stage':{NAME_W}}{'floor':>9}{'pipeline':>10}{'ratio':>7}{'floor':>9}{'pipeline':>10}{'ratio':>7}"
             f"{'floor':>7}{'pipeline':>9}"]

    def row(name: str, fw: float | None, pw: float | None, fm: float | None = None, pm: float | None = None,
            fo: float | None = None, po: float | None = None) -> None:
        others = f"{_cell(fo, 7, 1)}{_cell(po, 9, 1)}" if fo is not None or po is not None else ""
        lines.append(f"{name:{NAME_W}}{_cell(fw, 9)}{_cell(pw, 10)}{_ratio(pw, fw)}"
                     f"{_cell(fm, 9)}{_cell(pm, 10)}{_ratio(pm, fm)}{others}")

    extra = sorted((set(floor["stages"]) | set(pipe["stages"])) - set(STAGES))
    for stage in (*STAGES, *extra):
        f, p = floor["stages"].get(stage, {}), pipe["stages"].get(stage, {})
        row(stage, f.get("wall_s"), p.get("wall_s"),
            f["peak_rss_bytes"] / GIB if f else None, p["peak_rss_bytes"] / GIB if p else None,
            f.get("other_cpu_s"), p.get("other_cpu_s"))
    f_steps = sum(s["wall_s"] for s in floor["stages"].values())
    p_steps = sum(s["wall_s"] for s in pipe["stages"].values())
    row("sum of stages", f_steps, p_steps)
    row("run outside steps (Dagster, MLflow init)", None, pipe["run_s"] - p_steps)
    row("setup (Definitions, Dagster instance)", None, pipe["setup_s"])
    row("imports", floor["import_s"], pipe["import_s"])
    row("rest (interpreter start-up, exit)", *(
        r["process_wall_s"] - r["import_s"] - r.get("instrument_s", 0.0) - r["setup_s"] - r["run_s"]
        for r in (floor, pipe)))
    row("process end to end", floor["process_wall_s"], pipe["process_wall_s"], floor["ru_maxrss_bytes"] / GIB,
        pipe["ru_maxrss_bytes"] / GIB, floor["other_cpu_s"], pipe["other_cpu_s"])
    if pipe.get("stores"):
        row("once per machine: create Dagster + MLflow stores", None, pipe["stores"]["stores_s"])
    row("process CPU time (user + sys)", floor["cpu_s"], pipe["cpu_s"])
    attribution = pipe.get("attribution") or {}
    if attribution:
        lines.append("pipeline time inside steps spent in (s): " + "; ".join(
            f"{k} {v['seconds']:.2f}" for k, v in attribution.items() if v["seconds"] >= 0.01))
    for executor, what in (("multiprocess", "a fresh process per step, 2 at a time"),
                           ("forkserver", "steps forked from a server with lakehouse.definitions preloaded")):
        for mp in case["runs"].get(f"pipeline_{executor}", []):
            mp_steps = sum(s["wall_s"] for s in mp["stages"].values())
            lines.append(f"{executor} executor ({what}): end to end {mp['process_wall_s']:.1f} s (in-process "
                         f"{pipe['process_wall_s']:.1f} s), run {mp['run_s']:.1f} s, sum of step walls "
                         f"{mp_steps:.1f} s, CPU {mp['cpu_s']:.1f} s, largest process "
                         f"{mp['ru_maxrss_bytes'] / GIB:.2f} GiB, others {mp['other_cpu_s']:.1f} CPU-s")
    mismatched = different_checks(floor["checks"], pipe["checks"])
    lines.append("same work: " + ("row counts, quarantine counts, best iteration, ROC-AUC and max PSI identical "
                                  f"(test ROC-AUC {pipe['checks'].get('test_roc_auc', float('nan')):.4f})"
                                  if not mismatched else f"DIFFERENT in {mismatched}"))
    return "\n".join(lines)


def markdown_table(case: dict) -> str:
    """The per-stage part of :func:`case_table` as a Markdown table (for BENCHMARKS.md)."""
    floor, pipe = representative(case["runs"]["floor"]), representative(case["runs"]["pipeline"])

    def num(v: float | None, digits: int = 2) -> str:
        return "-" if v is None else f"{v:.{digits}f}"

    def ratio(a: float | None, b: float | None) -> str:
        return "-" if a is None or not b else f"{a / b:.2f}x"

    out = ["| stage | floor s | pipeline s | ratio | floor peak GiB | pipeline peak GiB | ratio |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for stage in (*STAGES, *sorted((set(floor["stages"]) | set(pipe["stages"])) - set(STAGES))):
        f, p = floor["stages"].get(stage), pipe["stages"].get(stage)
        fw, pw = (f or {}).get("wall_s"), (p or {}).get("wall_s")
        fm = f["peak_rss_bytes"] / GIB if f else None
        pm = p["peak_rss_bytes"] / GIB if p else None
        out.append(f"| {stage} | {num(fw)} | {num(pw)} | {ratio(pw, fw)} | {num(fm)} | {num(pm)} | {ratio(pm, fm)} |")
    fs = sum(s["wall_s"] for s in floor["stages"].values())
    ps = sum(s["wall_s"] for s in pipe["stages"].values())
    rest = [r["process_wall_s"] - r["import_s"] - r.get("instrument_s", 0.0) - r["setup_s"] - r["run_s"]
            for r in (floor, pipe)]
    out += [f"| **sum of stages** | {num(fs)} | {num(ps)} | {ratio(ps, fs)} | | | |",
            f"| run outside steps (Dagster run, resource init incl. MLflow) | - | {num(pipe['run_s'] - ps)} | | | | |",
            f"| setup (Definitions, Dagster instance) | - | {num(pipe['setup_s'])} | | | | |",
            f"| imports | {num(floor['import_s'])} | {num(pipe['import_s'])} | "
            f"{ratio(pipe['import_s'], floor['import_s'])} | | | |",
            f"| rest (interpreter start-up and exit, event-log read) | {num(rest[0])} | {num(rest[1])} | | | | |",
            f"| **process, end to end** | **{num(floor['process_wall_s'])}** | **{num(pipe['process_wall_s'])}** | "
            f"**{ratio(pipe['process_wall_s'], floor['process_wall_s'])}** | "
            f"**{num(floor['ru_maxrss_bytes'] / GIB)}** | **{num(pipe['ru_maxrss_bytes'] / GIB)}** | "
            f"**{ratio(pipe['ru_maxrss_bytes'], floor['ru_maxrss_bytes'])}** |",
            f"| process CPU time (user + sys) | {num(floor['cpu_s'])} | {num(pipe['cpu_s'])} | "
            f"{ratio(pipe['cpu_s'], floor['cpu_s'])} | | | |",
            f"| CPU-s used by other processes meanwhile | {num(floor['other_cpu_s'], 1)} | "
            f"{num(pipe['other_cpu_s'], 1)} | | | | |"]
    if pipe.get("stores"):
        out.append(f"| once per machine, before the first run: create the Dagster instance and the MLflow store "
                   f"(separate process; in-process time) | - | {num(pipe['stores']['stores_s'])} | | | | |")
    return "\n".join(out)


def fixed_cost(case: dict) -> dict[str, float]:
    """The pipeline's extra end-to-end wall time over the floor, split (seconds): ``imports`` beyond the floor's,
    ``setup`` (Definitions, Dagster instance), ``mlflow`` (resource init and every MLflow call), ``event_log``
    (Dagster's SQLite event-log writes), ``reporting`` (plots, Pandera, metadata scans: work the floor does not
    do) and ``rest`` (what is left: other Dagster step bookkeeping, the row-accounting check steps, MERGE and
    ingest-log writes instead of plain appends, interpreter exit). ``fixed`` = imports + setup + mlflow +
    event_log, the part due to Dagster, MLflow and imports. Needs the attribution of an in-process run."""
    floor, pipe = representative(case["runs"]["floor"]), representative(case["runs"]["pipeline"])
    seconds = {k: v["seconds"] for k, v in (pipe.get("attribution") or {}).items()}

    def family(prefix: str) -> float:
        return sum(v for k, v in seconds.items() if k.startswith(prefix))

    out = {"total": pipe["process_wall_s"] - floor["process_wall_s"],
           "imports": pipe["import_s"] - floor["import_s"], "setup": pipe["setup_s"], "mlflow": family("mlflow:"),
           "event_log": family("dagster: event log"),
           "reporting": family("reporting:") + family("pandera:") + family("metadata:")}
    out["fixed"] = out["imports"] + out["setup"] + out["mlflow"] + out["event_log"]
    out["rest"] = out["total"] - out["fixed"] - out["reporting"]
    return out


def verdicts(cases: list[dict], imports: dict[str, float]) -> list[str]:
    """Checks against the issue's targets, one line each."""
    out = []
    by_label = {c["label"]: c for c in cases}
    for case in cases:
        if case["scale"] < 10 or case["max_day"] is not None:
            continue
        floor, pipe = representative(case["runs"]["floor"]), representative(case["runs"]["pipeline"])
        wall = pipe["process_wall_s"] / floor["process_wall_s"]
        mem = pipe["ru_maxrss_bytes"] / floor["ru_maxrss_bytes"]
        out.append(f"{case['label']}: wall {wall:.2f}x the floor ({'met' if wall <= TARGET_RATIO else 'MISSED'}), "
                   f"peak RSS {mem:.2f}x ({'met' if mem <= TARGET_RATIO else 'MISSED'}); target <= {TARGET_RATIO}x")
    for label in ("slice", "1x"):
        if label in by_label:
            case = by_label[label]
            floor, pipe = representative(case["runs"]["floor"]), representative(case["runs"]["pipeline"])
            extra = pipe["process_wall_s"] - floor["process_wall_s"]
            first = f"; the first run on a machine also creates the stores: +{pipe['stores']['stores_s']:.1f} s" \
                if pipe.get("stores") else ""
            out.append(f"{label}: pipeline takes {extra:.1f} s more than the floor end to end{first}")
            if pipe.get("attribution"):
                fc = fixed_cost(case)
                out.append(f"{label}: fixed cost (Dagster, MLflow, imports) {fc['fixed']:.1f} s "
                           f"({'within' if fc['fixed'] <= FEW_SECONDS else 'MORE than'} {FEW_SECONDS:.0f} s): "
                           f"imports +{fc['imports']:.1f}, Definitions + instance {fc['setup']:.1f}, MLflow "
                           f"{fc['mlflow']:.1f}, Dagster event log {fc['event_log']:.1f}; plus plots, Pandera and "
                           f"metadata {fc['reporting']:.1f} s and the rest {fc['rest']:.1f} s (step bookkeeping, "
                           f"row-accounting checks, MERGE and ingest-log writes, exit)")
    bare = imports.get("bare stack: polars, deltalake, lightgbm")
    full = imports.get("pipeline: lakehouse.definitions (dagster, mlflow, ...)")
    if bare is not None and full is not None:
        out.append(f"imports: lakehouse.definitions {full:.1f} s vs bare stack {bare:.1f} s (+{full - bare:.1f} s)")
    return out


def print_report(report: dict) -> None:
    """The tables and verdicts of a results file."""
    for label, seconds in report["imports"].items():
        print(f"import {label}: {seconds:.2f} s")
    print()
    for case in report["cases"]:
        print(case_table(case), end="\n\n")
    print("\n".join(report["verdicts"]))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", default="1,10", help="comma-separated copies of the data (default 1,10)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each process per case (the fastest is reported)")
    parser.add_argument("--no-slice", action="store_true", help="skip the 12-day slice that isolates fixed costs")
    parser.add_argument("--tmp", default=tempfile.gettempdir(), help="where the temporary lakes go")
    parser.add_argument("--keep", action="store_true", help="keep landing zones and lakes (disk!)")
    parser.add_argument("--min-idle", type=float, default=0.9,
                        help="before each process wait until the machine is this idle (0..1; 0 = do not wait)")
    parser.add_argument("--max-wait", type=float, default=600, help="longest wait for an idle machine, seconds")
    parser.add_argument("--multiprocess", action="store_true",
                        help="also run the pipeline on the slice once with Dagster's multiprocess executor and once "
                             "with it forking steps from a preloaded server")
    parser.add_argument("--report", metavar="JSON", help="only print the tables of an earlier results file")
    parser.add_argument("--markdown", action="store_true", help="with --report: Markdown tables (BENCHMARKS.md)")
    args = parser.parse_args(argv)
    if args.report:
        report = json.loads(Path(args.report).read_text())
        if args.markdown:
            for case in report["cases"]:
                print(f"\n{case['label']}\n\n{markdown_table(case)}")
        else:
            print_report(report)
        return 0
    scales = [int(s) for s in args.scales.split(",") if s.strip()]

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    logs = RESULTS / "logs" / stamp
    report: dict = {"started_at": stamp, "command": " ".join(["python -m benchmarks.run", *(argv or sys.argv[1:])]),
                    "machine": machine(), "versions": versions(), "source": source_revision()}
    print(f"machine: {report['machine']}\nversions: {report['versions']}\nsource: {report['source']}", flush=True)
    if args.min_idle > 0:
        wait_for_idle(args.min_idle, args.max_wait)
    report["imports"] = import_times()
    for label, seconds in report["imports"].items():
        print(f"import {label}: {seconds:.2f} s", flush=True)

    cases = [("slice", 1, 1)] if not args.no_slice else []
    cases += [(f"{s}x", s, None) for s in scales]
    report["cases"] = [run_case(label, scale, max_day, args.repeat, Path(args.tmp), logs, args.keep,
                                args.min_idle, args.max_wait, args.multiprocess and max_day is not None)
                       for label, scale, max_day in cases]
    report["verdicts"] = verdicts(report["cases"], report["imports"])
    out = RESULTS / f"bench-{stamp}.json"
    write_json(out, report)

    print()
    print_report(report)
    print(f"\nresults: {out}\nlogs: {logs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
