"""The real ``lakehouse`` console script in a process of its own, and one data folder built with it that several
test modules share (pytest plugin, registered in conftest.py).

``cli_slice``: the slice of the CLI tests (months 1-3, days 1-2) landed and run once with ``lakehouse run``, the
way a person does it. test_cli reads its console output, test_relocate copies the folder, test_crash_safety takes
its tables as the uninterrupted reference; building it once saves two full runs of the slice. Tests that use it
must leave its tables as they found them (reading, or a run that changes nothing, is fine; a test that moves part
of it aside puts it back in a ``finally``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

LAKEHOUSE = str(Path(sys.executable).with_name("lakehouse"))
SLICE = ("--months", "1-3", "--max-day", "2")
CLI_TIMEOUT_S = 600  # a failure bound, not an expected duration


def cli_environment(data_dir: Path) -> dict[str, str]:
    """This process's environment without the lakehouse's and Dagster's settings, with ``LAKEHOUSE_DATA_DIR``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "DAGSTER_", "MLFLOW_LOGGING"))}
    env.update(LAKEHOUSE_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
    return env


def lakehouse(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """``lakehouse <args>`` on ``data_dir``, run to completion (its exit status is the caller's to check)."""
    return subprocess.run(
        [LAKEHOUSE, *args], env=cli_environment(data_dir), capture_output=True, text=True, timeout=CLI_TIMEOUT_S
    )


@dataclass(frozen=True)
class CliSlice:
    data_dir: Path
    run: subprocess.CompletedProcess  # the first ``lakehouse run --months 1-3``


@pytest.fixture(scope="session")
def cli_slice(tmp_path_factory: pytest.TempPathFactory) -> CliSlice:
    data_dir = tmp_path_factory.mktemp("cli-slice") / "data"
    landed = lakehouse(data_dir, "land", *SLICE)
    assert landed.returncode == 0, landed.stdout + landed.stderr
    return CliSlice(data_dir, lakehouse(data_dir, "run", "--months", "1-3"))
