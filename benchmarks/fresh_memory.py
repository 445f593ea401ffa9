"""What first touching fresh memory costs on this machine, depending on what ran just before.

Usage::

    python -m benchmarks.fresh_memory                      # 1500 MiB, 3 rounds, 20 s idle
    python -m benchmarks.fresh_memory --copy /path/to/a/lake   # also: right after copying that folder

Each round starts child processes one after the other; each allocates ``--mib`` MiB with numpy, writes every byte
and prints the wall seconds that took, with its CPU seconds in user mode and in the kernel (``os.times``):

* ``warm``: right after another child allocated, wrote and freed as much;
* ``idle``: after ``--idle`` seconds with nothing running;
* ``after copy`` (with ``--copy``): right after a warm child, then a copy of the folder (``shutil.copytree``), as
  :mod:`benchmarks.incremental` restores a lake before each of its runs.

On a virtual machine whose balloon device reports free pages to the host (virtio-balloon's free page reporting: the
guest kernel hands free memory back to the host, on this machine as soon as it is free, and the host must supply the
page again on its next first touch), the kernel time of the same allocation depends on which of these came before: a
step's wall and CPU time then grow with the memory it touches for the first time and with the machine's history, not
with its own work (BENCHMARKS.md, "Machine and versions").
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path


def touch(mib: int) -> dict[str, float]:
    """Allocate ``mib`` MiB, write every byte (numpy), free it; wall, user and kernel CPU seconds of that."""
    import numpy as np

    t0, c0 = time.perf_counter(), os.times()
    block = np.ones(mib * 2**20, dtype=np.uint8)
    wall, c1 = time.perf_counter() - t0, os.times()
    del block
    return {"wall_s": wall, "user_s": c1.user - c0.user, "sys_s": c1.system - c0.system}


def child(mib: int) -> dict[str, float]:
    """:func:`touch` in a process of its own (each child starts with none of the memory of the last)."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.fresh_memory", "--child", str(mib)], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"the child failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fresh_memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=1500, help="MiB each child allocates and writes")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle", type=float, default=20.0, help="seconds with nothing running before 'idle'")
    parser.add_argument("--copy", metavar="DIR", help="also measure right after copying this folder")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(touch(args.child)))
        return 0
    if args.mib < 1 or args.rounds < 1 or args.idle < 0:
        parser.error("--mib and --rounds take positive numbers, --idle a non-negative one")
    if args.copy is not None and not Path(args.copy).is_dir():
        parser.error(f"--copy takes a folder, got {args.copy!r}")
    print(f"{args.mib} MiB allocated and written by a fresh process: wall, user and kernel CPU seconds")
    for round_ in range(1, args.rounds + 1):
        child(args.mib)
        cases = {"warm": child(args.mib)}
        time.sleep(args.idle)
        cases["idle"] = child(args.mib)
        if args.copy is not None:
            child(args.mib)
            with tempfile.TemporaryDirectory(prefix="lakehouse-fresh-memory-") as scratch:
                shutil.copytree(args.copy, Path(scratch) / "copy", symlinks=True)
                cases["after copy"] = child(args.mib)
        for name, t in cases.items():
            print(f"round {round_} {name:>10}: wall {t['wall_s']:.2f}  user {t['user_s']:.2f}  sys {t['sys_s']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
