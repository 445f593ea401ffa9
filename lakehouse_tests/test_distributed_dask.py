"""The distributed executor: with ``LAKEHOUSE_EXECUTOR=dask`` the lakehouse's jobs run their steps on Dask workers
(real ``dask scheduler`` and two ``dask worker`` processes on loopback), on the distributed profile's Postgres
instance, and produce the same silver tables as the in-process executor on the same slice."""

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from lakehouse.executors import ExecutorConfigError, executor_from_env
from lakehouse.landing import land
from lakehouse.settings import Settings
from lakehouse.sources import SOURCES
from lakehouse_tests.helpers import materialize_all, read_table
from lakehouse_tests.servers import PostgresServer, dask_cluster

REPO = Path(__file__).resolve().parents[1]
DISTRIBUTED_YAML = REPO / "docker" / "dagster.yaml"
LAUNCH_TIMEOUT_S = 600  # failure bound, not an expected duration


def land_slice(data: Path) -> Settings:
    """January 1st 2013 of every source, landed under ``data``."""
    settings = Settings.from_env(data)
    land(settings.landing_dir, months=[1], max_day=1)
    return settings


def silver_rows(settings: Settings) -> dict[str, int]:
    return {
        f"{table}/{name}": read_table(settings, f"silver/{table}").height
        for name in SOURCES
        for table in (name, f"{name}_quarantine")
    }


@dataclass(frozen=True)
class DaskRun:
    settings: Settings
    run: dg.DagsterRun
    step_pids: dict[str, int]  # step key -> pid of the process that started it
    worker_pids: set[int]
    launch_output: str


@pytest.fixture(scope="module")
def dask_run(postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> DaskRun:
    """The ``ingest`` job (bronze and silver) launched as an operator would, ``dg launch --job ingest``, in its own
    process with ``LAKEHOUSE_EXECUTOR=dask``, ``$DAGSTER_HOME/dagster.yaml`` = ``docker/dagster.yaml`` on a fresh
    Postgres database; the workers get the same environment."""
    root = tmp_path_factory.mktemp("dask-profile")
    home = root / "dagster_home"
    home.mkdir()
    shutil.copyfile(DISTRIBUTED_YAML, home / "dagster.yaml")
    settings = land_slice(root / "data")
    database = postgres_server.new_database()
    env = {
        "DAGSTER_HOME": str(home),
        "LAKEHOUSE_DATA_DIR": str(root / "data"),
        "LAKEHOUSE_EXECUTOR": "dask",
        **postgres_server.dagster_env(database),
    }
    with dask_cluster(env, root) as cluster:
        worker_pids = set(cluster.worker_pids().values())
        launch = subprocess.run(
            [str(Path(sys.executable).with_name("dg")), "launch", "--job", "ingest"],
            cwd=REPO,
            env={**os.environ, **env, "LAKEHOUSE_DASK_SCHEDULER": cluster.address},
            capture_output=True,
            text=True,
            timeout=LAUNCH_TIMEOUT_S,
        )
        output = launch.stdout + launch.stderr
        assert launch.returncode == 0, output[-5000:]
    with pytest.MonkeyPatch.context() as patch:
        for name, value in postgres_server.dagster_env(database).items():
            patch.setenv(name, value)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            (run,) = instance.get_runs()
            step_pids = {
                str(record.step_key): record.dagster_event.pid
                for record in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)
                if record.dagster_event is not None and record.dagster_event.pid is not None
            }
    return DaskRun(settings, run, step_pids, worker_pids, output)


@pytest.mark.slow
def test_the_steps_ran_on_both_workers(dask_run: DaskRun):
    assert dask_run.run.status == dg.DagsterRunStatus.SUCCESS
    assert dask_run.run.job_name == "ingest"
    assert set(dask_run.step_pids) == {f"{layer}__{name}" for layer in ("bronze", "silver") for name in SOURCES}
    assert set(dask_run.step_pids.values()) <= dask_run.worker_pids, dask_run.launch_output[-3000:]
    assert set(dask_run.step_pids.values()) == dask_run.worker_pids  # both workers took steps


@pytest.mark.slow
def test_same_silver_rows_as_in_process(dask_run: DaskRun, tmp_path: Path):
    embedded = land_slice(tmp_path / "data")
    result = materialize_all(
        embedded, dg.DagsterInstance.ephemeral(), selection=dg.AssetSelection.groups("bronze", "silver")
    )
    assert result.success
    expected = silver_rows(embedded)
    assert expected["flights/flights"] > 0
    assert silver_rows(dask_run.settings) == expected


def test_in_process_is_the_default():
    assert executor_from_env({}) is dg.in_process_executor
    assert executor_from_env({"LAKEHOUSE_EXECUTOR": "in_process"}) is dg.in_process_executor


def test_dask_is_selected_with_its_scheduler():
    executor = executor_from_env({"LAKEHOUSE_EXECUTOR": "dask", "LAKEHOUSE_DASK_SCHEDULER": "tcp://10.0.0.5:8786"})
    assert executor.name == "dask"  # that it reaches the scheduler is what test_the_steps_ran_on_both_workers shows
    assert executor is not dg.in_process_executor


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"LAKEHOUSE_EXECUTOR": "celery"}, "LAKEHOUSE_EXECUTOR='celery' is not supported"),
        ({"LAKEHOUSE_EXECUTOR": "dask"}, "LAKEHOUSE_DASK_SCHEDULER"),
        ({"LAKEHOUSE_EXECUTOR": "dask", "LAKEHOUSE_DASK_SCHEDULER": "10.0.0.5:8786"}, "tcp://"),
    ],
)
def test_unsupported_settings_are_refused_in_one_line(environ: dict[str, str], named: str):
    with pytest.raises(ExecutorConfigError, match=named) as error:
        executor_from_env(environ)
    assert "\n" not in str(error.value)
