"""Wall-clock and resident-memory measurement shared by the floor and the pipeline processes.

Units: times are seconds (``time.time()`` epoch seconds for instants, durations in seconds), memory is bytes.

Memory is the process's resident set size (RSS), the figure the kernel accounts and the OOM killer uses:

* :class:`RssSampler` samples ``/proc/self/statm`` from a background thread every ``interval_s``; the peak of a
  stage is the largest sample taken while the stage ran (a spike shorter than the interval can be missed, but
  filling a GiB of pages takes far longer than the 10 ms default);
* :func:`vm_hwm_bytes` is the kernel's exact high-water mark of the whole process (``VmHWM``).

Linux only (reads ``/proc``).
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from array import array
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
STAGES = ("bronze", "silver", "gold", "train", "predict")


def rss_bytes() -> int:
    """Current resident set size of this process, bytes."""
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * PAGE_BYTES


def vm_hwm_bytes() -> int:
    """Peak resident set size of this process since it started (``VmHWM`` of ``/proc/self/status``), bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # the kernel writes kB
    raise RuntimeError("VmHWM missing from /proc/self/status")


class RssSampler:
    """Samples this process's RSS every ``interval_s`` seconds in a daemon thread.

    Usage: ``sampler = RssSampler().start()`` ... ``sampler.stop()`` then :meth:`peak_between`.
    """

    def __init__(self, interval_s: float = 0.01):
        self.interval_s = interval_s
        self.times = array("d")  # epoch seconds
        self.rss = array("q")  # bytes
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        fd = os.open("/proc/self/statm", os.O_RDONLY)
        try:
            while not self._stop.is_set():
                pages = int(os.pread(fd, 128, 0).split()[1])
                self.times.append(time.time())
                self.rss.append(pages * PAGE_BYTES)
                self._stop.wait(self.interval_s)
        finally:
            os.close(fd)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def peak_between(self, start: float, end: float) -> int:
        """Largest RSS sample (bytes) in ``[start - interval, end + interval]`` (epoch seconds); 0 if none."""
        lo, hi = start - self.interval_s, end + self.interval_s
        return max((r for t, r in zip(self.times, self.rss) if lo <= t <= hi), default=0)


@dataclass
class Step:
    """One timed unit of work: a Dagster step, or a source within a floor stage."""

    name: str
    stage: str  # one of STAGES, or "other"
    start: float  # epoch seconds
    end: float  # epoch seconds
    peak_rss_bytes: int = 0

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

        A stage's ``wall_s`` is the sum of its steps' wall times (seconds) and its ``peak_rss_bytes`` the
        largest RSS sample taken during any of its steps.
        """
        for s in self.steps:
            s.peak_rss_bytes = sampler.peak_between(s.start, s.end)
        stages: dict[str, dict] = {}
        for s in self.steps:
            agg = stages.setdefault(s.stage, {"wall_s": 0.0, "peak_rss_bytes": 0, "steps": 0})
            agg["wall_s"] += s.wall_s
            agg["peak_rss_bytes"] = max(agg["peak_rss_bytes"], s.peak_rss_bytes)
            agg["steps"] += 1
        steps = [{**asdict(s), "wall_s": s.wall_s} for s in self.steps]
        return {"steps": steps, "stages": stages}


class CallTimers:
    """Accumulates the time spent in chosen functions, by monkeypatching them for this process only.

    ``timers.wrap(module_or_class, "attr", "label")`` replaces the attribute with a timing wrapper; totals are in
    :attr:`totals` as ``{label: {"seconds": float, "calls": int}}``. Used by the pipeline process to attribute
    step time to Pandera, MLflow and metadata computations without editing the lakehouse package.
    """

    def __init__(self) -> None:
        self.totals: dict[str, dict[str, float]] = {}

    def wrap(self, owner: object, attr: str, label: str) -> None:
        original = getattr(owner, attr)
        static = isinstance(owner, type) and isinstance(owner.__dict__.get(attr), staticmethod)
        entry = self.totals.setdefault(label, {"seconds": 0.0, "calls": 0})

        @functools.wraps(original)
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                entry["seconds"] += time.perf_counter() - t0
                entry["calls"] += 1

        setattr(owner, attr, staticmethod(timed) if static else timed)


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


def call_with_sampler(fn: Callable[[RssSampler], dict]) -> dict:
    """Run ``fn(sampler)`` with a started :class:`RssSampler`; add the process's peak RSS to its result."""
    sampler = RssSampler().start()
    try:
        result = fn(sampler)
    finally:
        sampler.stop()
    result["vm_hwm_bytes"] = vm_hwm_bytes()
    return result
