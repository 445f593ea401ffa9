"""Servers started by tests (``dagster-webserver`` in test_webserver.py, ``lakehouse ui`` in browser.py): how they
are started so that they die with pytest, and how they are stopped, whole process group included.

Facts relied on (docs/stack-notes.md, "Dagster process signals"): a process started from a non-interactive shell
inherits SIGINT ignored, which Dagster copies onto SIGTERM, so the wrapper resets both to their defaults; Dagster
never calls ``setsid``, so a server started in its own session keeps every child (code servers, daemon) in its
process group, and killing the group kills them all.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time

STOP_TIMEOUT_S = 15.0  # failure bound, not an expected duration
PARENT_PID_VARIABLE = "TEST_PARENT_PID"

EXEC_WRAPPER = f"""\
import ctypes, os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
signal.signal(signal.SIGTERM, signal.SIG_DFL)
if sys.platform == "linux":
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG = 1
    if os.getppid() != int(os.environ.pop("{PARENT_PID_VARIABLE}", os.getppid())):
        sys.exit("pytest exited before the server started")
os.execv(sys.argv[1], sys.argv[1:])
"""
"""Executed as ``python -c EXEC_WRAPPER <program> <args...>`` with ``TEST_PARENT_PID`` (:func:`parent_env`) in its
environment: resets SIGINT/SIGTERM to their defaults, on Linux asks for SIGTERM when pytest dies
(``PR_SET_PDEATHSIG`` survives exec, so a killed pytest leaves no server behind), then replaces itself with the
program."""


def parent_env() -> dict[str, str]:
    """The environment entry :data:`EXEC_WRAPPER` checks: this process is the parent it expects."""
    return {PARENT_PID_VARIABLE: str(os.getpid())}


def free_port() -> int:
    """A free TCP port on loopback (free when asked; the server binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # the group exists but is not ours (cannot happen for our own session)
        return True
    return True


def stop(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group (a clean shutdown: the webserver and ``dg dev`` stop their children),
    then SIGKILL whatever is left of it; returns once the whole group is gone. ``process`` must lead its own
    session (``start_new_session=True``), so its pid is the group id."""
    pgid = process.pid
    if group_alive(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while group_alive(pgid) and time.monotonic() < deadline:
        if process.poll() is not None and not group_alive(pgid):
            break
        time.sleep(0.2)
    if group_alive(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_TIMEOUT_S)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
