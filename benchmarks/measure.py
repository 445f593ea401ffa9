"""Wall-clock and resident-memory measurement shared by the floor and the pipeline processes, and by the runners that
start them (:func:`measured_child`).

Units: times are seconds (``time.time()`` epoch seconds for instants, durations in seconds), memory is bytes.

Memory is the process's resident set size (RSS), the figure the kernel accounts and the OOM killer uses:

* :class:`RssSampler` samples it (``psutil``) from a background thread every ``interval_s``; the peak of a stage is
  the largest sample taken while the stage ran (a spike shorter than the interval can be missed, but filling a GiB
  of pages takes far longer than the 10 ms default);
* :func:`vm_hwm_bytes` is the kernel's exact high-water mark of the whole process (``ru_maxrss`` of
  ``getrusage``, which Linux reports in KiB: the ``VmHWM`` of ``/proc/self/status``).

CPU time is ``psutil``'s: the machine's (:func:`machine_cpu_seconds`) and the process's own.
"""

from __future__ import annotations

import bisect
import functools
import inspect
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from array import array
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

import psutil

STAGES = ("bronze", "silver", "gold", "train", "predict", "monitor")


def machine_cpu_seconds() -> tuple[float, float]:
    """The machine's CPU time since boot over all CPUs as ``(busy, total)`` seconds (``psutil.cpu_times()``); busy is
    all but idle and iowait (steal included: time the hypervisor gave another guest is not this machine's idle)."""
    t = psutil.cpu_times()
    total = sum(t[:8])  # user nice system idle iowait irq softirq steal; guest time is already in user and nice
    return total - t.idle - t.iowait, total


def vm_hwm_bytes() -> int:
    """Peak resident set size of this process since it started, bytes (``getrusage``'s ``ru_maxrss``, KiB on
    Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def rss_bytes(pid: int) -> int:
    """Resident set size of process ``pid`` now (``psutil``), bytes; 0 once it is gone (or a zombie)."""
    try:
        return psutil.Process(pid).memory_info().rss
    except psutil.Error:
        return 0


def wait_capped(pid: int, max_rss_bytes: float | None, poll_s: float = 0.1) -> tuple[int, os.struct_rusage, bool]:
    """``os.wait4`` for child ``pid``; with ``max_rss_bytes``, its RSS is read every ``poll_s`` seconds and the child
    is killed (SIGKILL) the first time it is above: a run that would not fit is stopped before it pushes the machine
    into swap or the OOM killer. Returns the wait status, the rusage and whether it was killed."""
    if max_rss_bytes is None:
        _, status, usage = os.wait4(pid, 0)
        return status, usage, False
    killed = False
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return status, usage, killed
        if not killed and rss_bytes(pid) > max_rss_bytes:
            os.kill(pid, signal.SIGKILL)
            killed = True
        time.sleep(poll_s)


@dataclass(frozen=True)
class ChildRun:
    """How a child process ran (:func:`measured_child`): its exit code (negative: killed by that signal), whether
    the memory cap killed it, and :attr:`figures`."""

    returncode: int
    killed: bool
    figures: dict[str, float]
    """``process_wall_s`` (seconds, start to exit), ``cpu_s`` (the child's user + system CPU seconds),
    ``ru_maxrss_bytes`` (its peak RSS, from ``wait4``) and ``other_cpu_s`` (CPU seconds *other* processes on the
    machine used meanwhile: how much the figures were disturbed)."""


def measured_child(
    argv: Sequence[str],
    *,
    cwd: str | os.PathLike,
    env: Mapping[str, str],
    sink: IO[bytes],
    max_rss_bytes: float | None = None,
) -> ChildRun:
    """Run ``argv`` in a new process (stdout and stderr to ``sink``) and measure it; with ``max_rss_bytes`` it is
    killed the first time its RSS is above (:func:`wait_capped`)."""
    busy0, _ = machine_cpu_seconds()
    t0 = time.perf_counter()
    proc = subprocess.Popen(list(argv), cwd=cwd, env=dict(env), stdout=sink, stderr=subprocess.STDOUT)
    status, usage, killed = wait_capped(proc.pid, max_rss_bytes)
    wall = time.perf_counter() - t0
    busy1, _ = machine_cpu_seconds()
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    figures = {
        "process_wall_s": wall,
        "cpu_s": cpu,
        "ru_maxrss_bytes": usage.ru_maxrss * 1024,  # Linux reports KiB
        "other_cpu_s": max(0.0, busy1 - busy0 - cpu),
    }
    return ChildRun(proc.returncode, killed, figures)


class RssSampler:
    """Samples this process's RSS every ``interval_s`` seconds in a daemon thread, together with the machine's
    busy CPU time and this process's own CPU time, so that each stage can also report how much CPU *other*
    processes took while it ran (a shared machine distorts wall times, LightGBM's most of all).

    Usage: ``sampler = RssSampler().start()`` ... ``sampler.stop()`` then :meth:`peak_between` and
    :meth:`other_cpu_between`.
    """

    def __init__(self, interval_s: float = 0.01):
        self.interval_s = interval_s
        self.times = array("d")  # epoch seconds
        self.rss = array("q")  # bytes
        self.busy = array("d")  # machine busy CPU seconds (all CPUs) since boot
        self.own = array("d")  # this process's user + system CPU seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        process = psutil.Process()
        while not self._stop.is_set():
            self.sample(process)
            self._stop.wait(self.interval_s)
        self.sample(process)

    def sample(self, process: psutil.Process) -> None:
        own = process.cpu_times()
        self.times.append(time.time())
        self.rss.append(process.memory_info().rss)
        self.busy.append(machine_cpu_seconds()[0])
        self.own.append(own.user + own.system)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def peak_between(self, start: float, end: float) -> int:
        """Largest RSS sample (bytes) in ``[start - interval, end + interval]`` (epoch seconds); 0 if none."""
        lo, hi = start - self.interval_s, end + self.interval_s
        return max((r for t, r in zip(self.times, self.rss, strict=False) if lo <= t <= hi), default=0)

    def other_cpu_between(self, start: float, end: float) -> float:
        """CPU seconds used by other processes between two instants (epoch seconds), >= 0; 0 if unknown."""
        if not self.times:
            return 0.0
        i = max(bisect.bisect_right(self.times, start) - 1, 0)
        j = min(bisect.bisect_left(self.times, end), len(self.times) - 1)
        return max(0.0, (self.busy[j] - self.busy[i]) - (self.own[j] - self.own[i]))


@dataclass
class Step:
    """One timed unit of work: a Dagster step, or a source within a floor stage."""

    name: str
    stage: str  # one of STAGES, or "other"
    start: float  # epoch seconds
    end: float  # epoch seconds
    peak_rss_bytes: int = 0
    other_cpu_s: float = 0.0  # CPU seconds other processes used meanwhile

    @property
    def wall_s(self) -> float:
        return self.end - self.start


@dataclass
class StepClock:
    """Records :class:`Step` s with ``with clock.step(name, stage): ...`` (floor) or :meth:`add` (pipeline)."""

    steps: list[Step] = field(default_factory=list)

    @contextmanager
    def step(self, name: str, stage: str) -> Iterator[None]:
        start = time.time()
        try:
            yield
        finally:
            self.steps.append(Step(name, stage, start, time.time()))

    def add(self, name: str, stage: str, start: float, end: float) -> None:
        self.steps.append(Step(name, stage, start, end))

    def finish(self, sampler: RssSampler) -> dict:
        """Fill each step's peak RSS from ``sampler``; return ``{"steps": [...], "stages": {...}}``.

        A stage's ``wall_s`` is the sum of its steps' wall times (seconds), its ``peak_rss_bytes`` the
        largest RSS sample taken during any of its steps, its ``other_cpu_s`` the CPU seconds other processes
        used during its steps.
        """
        for s in self.steps:
            s.peak_rss_bytes = sampler.peak_between(s.start, s.end)
            s.other_cpu_s = sampler.other_cpu_between(s.start, s.end)
        stages: dict[str, dict] = {}
        for s in self.steps:
            agg = stages.setdefault(s.stage, {"wall_s": 0.0, "peak_rss_bytes": 0, "other_cpu_s": 0.0, "steps": 0})
            agg["wall_s"] += s.wall_s
            agg["peak_rss_bytes"] = max(agg["peak_rss_bytes"], s.peak_rss_bytes)
            agg["other_cpu_s"] += s.other_cpu_s
            agg["steps"] += 1
        steps = [{**asdict(s), "wall_s": s.wall_s} for s in self.steps]
        return {"steps": steps, "stages": stages}


class CallTimers:
    """Accumulates the time spent in chosen functions, by monkeypatching them for this process only.

    ``timers.wrap(module_or_class, "attr", "family: what")`` replaces the attribute with a timing wrapper; totals
    are in :attr:`totals` as ``{label: {"seconds": float, "calls": int}}``. A call made while another wrapped call
    of the same *family* (the label's text before ``:``) is running is not counted again, so e.g. MLflow client
    calls made inside ``log_model`` count once, under ``log_model``. Used by the pipeline process to attribute
    step time to MLflow, Pandera, plots and metadata without editing the lakehouse package.
    """

    def __init__(self) -> None:
        self.totals: dict[str, dict[str, float]] = {}
        self.missing: list[str] = []  # "<owner>.<attr>" that did not exist (the code under test changed)
        self._active: dict[str, int] = {}  # family -> nesting depth

    def wrap(self, owner: object, attr: str, label: str) -> None:
        original = getattr(owner, attr, None)
        if original is None:
            self.missing.append(f"{getattr(owner, '__name__', owner)}.{attr}")
            return
        static = isinstance(owner, type) and isinstance(owner.__dict__.get(attr), staticmethod)
        entry = self.totals.setdefault(label, {"seconds": 0.0, "calls": 0})
        family = label.split(":", 1)[0]
        active = self._active

        def timed(*args, **kwargs):
            if active.get(family):
                return original(*args, **kwargs)
            active[family] = 1
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                entry["seconds"] += time.perf_counter() - t0
                entry["calls"] += 1
                active[family] = 0

        if not isinstance(original, type):  # a class (called as a factory) keeps its own metadata
            timed = functools.wraps(original)(timed)
        setattr(owner, attr, staticmethod(timed) if static else timed)

    def wrap_bindings(self, owner: object, attr: str, label: str, package: str) -> None:
        """:meth:`wrap` ``owner.attr`` and every other binding of the same object in the loaded modules of
        ``package`` (a name imported with ``from module import attr`` is a binding of its own, which patching the
        defining module does not reach). Call it after the package's modules are imported."""
        original = getattr(owner, attr, None)
        if original is None:
            self.missing.append(f"{getattr(owner, '__name__', owner)}.{attr}")
            return
        for name, module in list(sys.modules.items()):
            if module is owner or module is None or not (name == package or name.startswith(package + ".")):
                continue
            for bound, value in list(vars(module).items()):
                if value is original:
                    self.wrap(module, bound, label)
        self.wrap(owner, attr, label)

    def wrap_all(self, owner: object, label: str, predicate=None) -> None:
        """Wrap every public plain function of a module (defined in it) or every public method of a class."""
        is_class = isinstance(owner, type)
        names = list(owner.__dict__) if is_class else list(vars(owner))
        for name in names:
            obj = owner.__dict__[name] if is_class else getattr(owner, name)
            func = obj.__func__ if isinstance(obj, staticmethod) else obj
            if name.startswith("_") or not inspect.isfunction(func):
                continue
            if not is_class and func.__module__ != owner.__name__ and predicate is None:
                continue
            if predicate is None or predicate(name, func):
                self.wrap(owner, name, label)


@contextmanager
def timed(into: dict, key: str) -> Iterator[None]:
    """Store the wall time of the ``with`` block in ``into[key]`` (seconds)."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        into[key] = time.perf_counter() - t0


def write_json(path: str | os.PathLike, payload: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(payload, indent=2, default=str))
