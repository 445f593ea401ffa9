"""Crash safety through the real entry point: the ``lakehouse`` command in its own process group.

* SIGKILL of ``lakehouse run`` inside a pooled step (bronze, silver, the model) and a plain ``lakehouse run``
  afterwards on the same data folder and Dagster instance: the second run finishes by itself (it would wait forever
  on the dead run's concurrency slot otherwise) and the data tables equal those of an uninterrupted run; the dead
  run is FAILED in Dagster and its MLflow run, if it had one, KILLED.
* Two ``lakehouse run`` started together on a fresh data folder: one runs, the other refuses in one line (exit 75),
  and a third run afterwards succeeds, so neither the Dagster nor the MLflow store was damaged.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from mlflow.tracking import MlflowClient

from lakehouse.settings import Settings
from lakehouse.tables import BY_PATH, Lake
from lakehouse_tests.cli_slice import SLICE, CliSlice

pytestmark = pytest.mark.slow

LAKEHOUSE = str(Path(sys.executable).with_name("lakehouse"))
RUN_TIMEOUT_S = 300.0  # a failure bound, not an expected duration (a run of this slice takes ~20-30 s)


def environment(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "DAGSTER_"))}
    env.update(LAKEHOUSE_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
    return env


def start(data_dir: Path, *args: str) -> subprocess.Popen:
    """``lakehouse <args>`` in its own session (so SIGKILL reaches the whole process group)."""
    return subprocess.Popen(
        [LAKEHOUSE, *args],
        env=environment(data_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def finish(proc: subprocess.Popen, timeout: float = RUN_TIMEOUT_S) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"lakehouse did not finish within {timeout} s (a dead run's slot?):\n{out[-4000:]}")
    return proc.returncode, out


def land_slice(data_dir: Path) -> None:
    code, out = finish(start(data_dir, "land", *SLICE))
    assert code == 0, out


def data_state(data_dir: Path) -> dict[str, pl.DataFrame]:
    """The data tables, in a canonical order (what an uninterrupted run must equal)."""
    lake = Lake(Settings.from_env(data_dir).lake_dir)
    keys = {
        "silver/flights": ["flight_id"],
        "silver/weather": ["weather_id"],
        "silver/planes": ["plane_id"],
        "gold/flight_features": ["flight_id"],
        "gold/route_daily_delays": ["flight_date", "origin", "dest"],
    }
    state = {
        path: lake.read(BY_PATH[path]).drop("_ingested_at", "_updated_at", "_batch_id", strict=False).sort(key)
        for path, key in keys.items()
    }
    predictions = lake.read(BY_PATH["gold/flight_delay_predictions"])
    state["predictions"] = predictions.select("flight_id", "probability").sort("flight_id")
    state["bronze rows"] = pl.DataFrame(
        {"rows": [lake.scan(BY_PATH["bronze/flights"]).select(pl.len()).collect().item()]}
    )
    return state


def assert_same_state(actual: dict[str, pl.DataFrame], expected: dict[str, pl.DataFrame]) -> None:
    assert actual.keys() == expected.keys()
    different = [name for name in expected if not actual[name].equals(expected[name])]
    assert not different, f"tables differ from the uninterrupted run: {different}"


@pytest.fixture(scope="module")
def reference(cli_slice: CliSlice) -> dict[str, pl.DataFrame]:
    """The tables of an uninterrupted ``lakehouse run`` of the slice (built once for several modules)."""
    assert cli_slice.run.returncode == 0, cli_slice.run.stdout[-3000:] + cli_slice.run.stderr[-3000:]
    return data_state(cli_slice.data_dir)


def appeared(table_path: str, pattern: str) -> Callable[[Path], bool]:
    """True once files matching ``pattern`` exist in the catalogue table ``table_path`` of a data folder."""
    return lambda data_dir: any(
        Path(Lake(Settings.from_env(data_dir).lake_dir).location(BY_PATH[table_path])).glob(pattern)
    )


def model_step_started(data_dir: Path) -> bool:
    """The model step has logged its plots to its MLflow run (it is inside the pooled model step)."""
    return any(Path(Settings.from_env(data_dir).mlflow_artifact_location).glob("*/artifacts/plots/*.png"))


KILL_POINTS: dict[str, Callable[[Path], bool]] = {
    "bronze": appeared("bronze/flights", "*.parquet"),  # bronze flights is writing (pool bronze_flights)
    "silver": appeared("silver/flights", "**/*.parquet"),  # silver flights is writing (pool silver_flights)
    "model": model_step_started,  # inside the model step (pool ml_flight_delay_model)
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_sigkill_inside_a_pooled_step_then_a_plain_run_converges(tmp_path, reference, point):
    data_dir = tmp_path / "data"
    land_slice(data_dir)
    proc = start(data_dir, "run", "--months", "1-3")
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while proc.poll() is None and time.monotonic() < deadline and not KILL_POINTS[point](data_dir):
        time.sleep(0.02)
    assert proc.poll() is None, f"the run ended before reaching {point}:\n{proc.communicate()[0][-3000:]}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()

    code, out = finish(start(data_dir, "run", "--months", "1-3"))
    assert code == 0, out
    assert "recovered after an interrupted run: marked 1 dead run(s) failed" in out
    assert_same_state(data_state(data_dir), reference)

    settings = Settings.from_env(data_dir)
    os.environ["DAGSTER_HOME"], previous = str(data_dir / "dagster"), os.environ.get("DAGSTER_HOME")
    try:
        with dg.DagsterInstance.get() as instance:
            statuses = sorted(r.status.value for r in instance.get_runs())
            held = instance.event_log_storage.get_concurrency_run_ids()
    finally:
        if previous is None:
            os.environ.pop("DAGSTER_HOME")
        else:
            os.environ["DAGSTER_HOME"] = previous
    # the killed run is marked failed, never left STARTED; every run of the next command (ingest, gold, ml) succeeded
    assert statuses.count("FAILURE") == 1 and set(statuses) == {"FAILURE", "SUCCESS"}
    assert not held  # no slot left behind
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    mlflow_statuses = [
        r.info.status for r in client.search_runs([e.experiment_id for e in client.search_experiments()])
    ]
    assert "RUNNING" not in mlflow_statuses
    if point == "model":
        assert "KILLED" in mlflow_statuses


def test_two_runs_started_together_never_damage_the_stores(tmp_path):
    data_dir = tmp_path / "data"
    land_slice(data_dir)
    first, second = start(data_dir, "run", "--months", "1-3"), start(data_dir, "run", "--months", "1-3")
    results = sorted([finish(first), finish(second)])
    (ok_code, ok_out), (busy_code, busy_out) = results
    assert ok_code == 0, ok_out
    assert busy_code == 75, busy_out
    assert busy_out.count("\n") == 1 and "another lakehouse command is using" in busy_out and "pid" in busy_out
    code, out = finish(start(data_dir, "run", "--months", "1-3"))
    assert code == 0, out


def test_stores_left_half_built_by_a_killed_command_are_built_again(tmp_path, monkeypatch):
    """What a SIGKILL during the first command's store creation leaves (scripts/chaos.py hit it once): the next
    command builds the stores again instead of migrating a half-built SQLite database."""
    from lakehouse.cli import BUILDING, ensure_stores

    data = tmp_path / "data"
    monkeypatch.setenv("LAKEHOUSE_DATA_DIR", str(data))
    monkeypatch.setenv("DAGSTER_HOME", str(data / "dagster"))
    settings = Settings.from_env()
    (data / f"dagster{BUILDING}" / "history").mkdir(parents=True)
    (data / f"dagster{BUILDING}" / "history" / "runs.db").write_bytes(b"half a database")
    db = Path(settings.mlflow_tracking_uri.removeprefix("sqlite:///"))
    db.parent.mkdir(parents=True)
    db.with_name(db.name + BUILDING).write_bytes(b"half a database")
    ensure_stores(settings)
    assert not list(data.glob(f"*{BUILDING}")) and not list(db.parent.glob(f"*{BUILDING}"))
    with dg.DagsterInstance.get() as instance:
        assert instance.get_runs() == []
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    assert client.get_experiment_by_name("lakehouse_flights") is not None
