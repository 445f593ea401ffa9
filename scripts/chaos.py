"""SIGKILL ``lakehouse run`` at random moments and check that a plain rerun converges, N times.

    uv run python -m scripts.chaos --trials 20            # ~20 x 45 s on 2 cores

Each trial: a fresh data folder with a small real slice landed (``lakehouse land --months 1-3 --max-day 2``),
``lakehouse run`` started in its own process group and killed with SIGKILL after a random delay drawn uniformly
from [0, reference duration), then ``lakehouse run`` again, which must exit 0 within the timeout and leave data
tables equal to an uninterrupted run's (the comparison of ``lakehouse_tests/test_crash_safety.py``). Prints one
line per trial (delay, what the killed run had reached, rerun duration, verdict) and ``k of N converged``.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from lakehouse_tests.test_crash_safety import (
    KILL_POINTS,
    appeared,
    data_state,
    finish,
    land_slice,
    model_step_started,
    start,
)


def reached(data_dir: Path) -> str:
    """The furthest stage a killed run left a trace of."""
    marks = [
        ("model", model_step_started),
        ("gold", appeared("gold/flight_features", "*")),
        ("silver", KILL_POINTS["silver"]),
        ("bronze", KILL_POINTS["bronze"]),
        ("stores", lambda d: any((d / "dagster").glob("*"))),
    ]
    return next((name for name, seen in marks if seen(data_dir)), "nothing")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=20261126)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        root = Path(tmp)
        land_slice(root / "reference")
        started = time.monotonic()
        code, out = finish(start(root / "reference", "run", "--months", "1-3"))
        duration = time.monotonic() - started
        assert code == 0, out
        expected = data_state(root / "reference")
        print(f"reference run: {duration:.1f} s")
        converged = 0
        for trial in range(args.trials):
            data_dir = root / f"trial{trial}"
            land_slice(data_dir)
            delay = rng.uniform(0, duration)
            proc = start(data_dir, "run", "--months", "1-3")
            time.sleep(delay)
            finished_first = proc.poll() is not None
            if not finished_first:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            stage = reached(data_dir)
            t0 = time.monotonic()
            try:
                code, out = finish(start(data_dir, "run", "--months", "1-3"))
            except BaseException as exc:  # finish() fails the run on a timeout (a hang)
                code, out = -1, str(exc)
            rerun = time.monotonic() - t0
            state = data_state(data_dir) if code == 0 else None
            same = state is not None and all(state[k].equals(expected[k]) for k in expected)
            converged += same
            verdict = "converged" if same else f"DIVERGED (exit {code}): {out[-300:]!r}"
            finished = ", had finished" if finished_first else ""
            print(
                f"trial {trial:2d}: killed after {delay:5.1f} s (reached {stage}{finished}); rerun {rerun:5.1f} s: "
                f"{verdict}",
                flush=True,
            )
            subprocess.run(["rm", "-rf", str(data_dir)], check=False)
        print(f"{converged} of {args.trials} converged")


if __name__ == "__main__":
    main()
