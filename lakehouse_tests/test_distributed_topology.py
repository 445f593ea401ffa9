"""The distributed topology as plain processes on loopback, each started by ``docker/entrypoint.sh`` exactly as a
container of ``docker/compose.yaml`` runs it: the code-location server (``code-server``), the daemon (``daemon``)
and the webserver (``webserver``) in their own processes, the instance in Postgres (``docker/dagster.yaml``), the
steps on two Dask workers. Files landed in the landing zone are picked up by the landing sensor (a bronze run),
silver follows by declarative automation (a second run), both launched by the daemon through the run queue; the
silver tables equal those of the in-process executor on the same slice."""

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psutil
import pytest

from lakehouse.settings import Settings
from lakehouse.sources import SOURCES
from lakehouse_tests.helpers import materialize_all
from lakehouse_tests.processes import EXEC_WRAPPER, free_port, parent_env, stop
from lakehouse_tests.servers import PG_PASSWORD, PostgresServer, dask_cluster, wait_for_http
from lakehouse_tests.test_distributed_dask import land_slice, silver_rows

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
ENTRYPOINT = REPO / "docker" / "entrypoint.sh"
RUNS_TIMEOUT_S = 600.0  # failure bound, not an expected duration
SILVER_KEYS = [dg.AssetKey(["silver", name]) for name in SOURCES]
BRONZE_SILVER = {dg.AssetKey([layer, name]) for layer in ("bronze", "silver") for name in SOURCES}


@dataclass(frozen=True)
class Topology:
    settings: Settings
    runs: list[dg.DagsterRun]  # the runs that materialized bronze or silver
    step_pids: set[int]
    worker_pids: set[int]
    webserver_addresses: set[str]  # the addresses the webserver listens on
    events: list[str]


def start_role(role: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-c", EXEC_WRAPPER, str(ENTRYPOINT), role],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env, **parent_env()},
            cwd=REPO,
            start_new_session=True,
        )


def listening_addresses(process: subprocess.Popen, port: int) -> set[str]:
    """The local addresses on which a process of ``process``'s group listens on ``port``."""
    group = {p.pid for p in psutil.process_iter() if _pgid(p.pid) == process.pid}
    return {
        c.laddr.ip
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port and c.pid in group
    }


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def wait_for_silver(instance: dg.DagsterInstance, deadline: float, logs: list[Path]) -> None:
    """Until every silver table is materialized and no run is queued or running."""
    while time.monotonic() < deadline:
        done = all(instance.get_latest_materialization_event(key) is not None for key in SILVER_KEYS)
        busy = instance.get_runs(
            filters=dg.RunsFilter(
                statuses=[dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
            )
        )
        if done and not busy:
            return
        time.sleep(2)
    tails = "\n".join(f"--- {log.name}\n{log.read_text()[-2000:]}" for log in logs)
    raise AssertionError(f"silver was not materialized within {RUNS_TIMEOUT_S} s\n{tails}")


@pytest.fixture(scope="module")
def topology(postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Topology:
    root = tmp_path_factory.mktemp("topology")
    settings = land_slice(root / "data")  # before the daemon starts: the landing sensor waits 10 s for stability
    database = postgres_server.new_database()
    web_port = free_port()
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DAGSTER_HOME": str(root / "dagster_home"),  # the entrypoint writes docker/dagster.yaml into it
        "LAKEHOUSE_DATA_DIR": str(root / "data"),
        "LAKEHOUSE_EXECUTOR": "dask",
        "DAGSTER_CODE_SERVER_HOST": "127.0.0.1",
        "DAGSTER_CODE_SERVER_BIND": "127.0.0.1",
        "DAGSTER_CODE_SERVER_PORT": str(free_port()),
        "LAKEHOUSE_WEBSERVER_PORT": str(web_port),  # LAKEHOUSE_WEBSERVER_HOST unset: the default binding
        **postgres_server.dagster_env(database),
    }
    with dask_cluster(env, root) as cluster:
        env["LAKEHOUSE_DASK_SCHEDULER"] = cluster.address
        worker_pids = set(cluster.worker_pids().values())
        logs = [root / f"{role}.log" for role in ("code-server", "daemon", "webserver")]
        processes = []
        try:
            for log in logs:
                processes.append(start_role(log.stem, env, log))
                if log.stem == "code-server":
                    time.sleep(5)  # the daemon and webserver retry, but start them after it has begun loading
            webserver = processes[-1]
            wait_for_http(f"http://127.0.0.1:{web_port}/server_info", "webserver", webserver, logs[-1])
            addresses = listening_addresses(webserver, web_port)
            with pytest.MonkeyPatch.context() as patch:
                for name, value in postgres_server.dagster_env(database).items():
                    patch.setenv(name, value)
                with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
                    wait_for_silver(instance, time.monotonic() + RUNS_TIMEOUT_S, [*logs, *cluster.logs])
                    runs = [
                        run
                        for run in instance.get_runs()
                        if run.asset_selection and set(run.asset_selection) & BRONZE_SILVER
                    ]
                    records = [record for run in runs for record in instance.all_logs(run.run_id)]
        finally:
            for process in reversed(processes):
                stop(process)
    step_pids = {
        r.dagster_event.pid
        for r in records
        if r.dagster_event is not None
        and r.dagster_event.event_type == dg.DagsterEventType.STEP_START
        and r.dagster_event.pid is not None
    }
    return Topology(settings, runs, step_pids, worker_pids, addresses, [str(r) for r in records])


def test_the_sensor_and_automation_runs_succeeded_on_the_workers(topology: Topology):
    assert topology.runs
    assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in topology.runs), [
        (run.run_id, run.status) for run in topology.runs
    ]
    assert {run.remote_job_origin.location_name for run in topology.runs if run.remote_job_origin} == {"lakehouse"}
    sensors = {run.tags.get("dagster/sensor_name") for run in topology.runs}
    assert "landing_sensor" in sensors  # bronze: launched by the landing sensor through the daemon's queue
    assert topology.step_pids
    assert topology.step_pids <= topology.worker_pids


def test_same_silver_rows_as_in_process(topology: Topology, tmp_path: Path):
    embedded = land_slice(tmp_path / "data")
    result = materialize_all(
        embedded, dg.DagsterInstance.ephemeral(), selection=dg.AssetSelection.groups("bronze", "silver")
    )
    assert result.success
    assert silver_rows(topology.settings) == silver_rows(embedded)


def test_the_webserver_listens_on_loopback_only(topology: Topology):
    assert topology.webserver_addresses == {"127.0.0.1"}


def test_no_database_password_in_the_event_log(topology: Topology):
    assert topology.events
    assert not [event for event in topology.events if PG_PASSWORD in event]
