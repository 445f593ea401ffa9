"""The distributed profile end to end: the whole graph on the production topology, as plain processes on loopback.

Every server is real and started by the fixtures (no test skips for a missing one): the S3-compatible store
(``moto_server``) holds the landing zone **and** the lake, the Dagster instance is in PostgreSQL
(``docker/dagster.yaml``), the model registry is an ``mlflow server`` (Postgres backend store, artifacts proxied to
the object store), and the code-location server, the daemon and the webserver run in their own processes, each
started by ``docker/entrypoint.sh`` exactly as a container of ``docker/compose.yaml`` runs it; every step runs on
one of two Dask workers (``LAKEHOUSE_EXECUTOR=dask``).

Nothing is launched by the test: the slice (months 1-3 of 2013, days 1-2, plus one broken flights file) is landed
with ``lakehouse land`` into the S3 landing prefix, and the daemon does the rest, as in production: the landing
sensor requests bronze, declarative automation silver, ``gold_months_sensor`` the gold months, the retraining
sensor the first model and champion (``no_champion``), the scoring sensor predictions and drift of the three
months. The result must equal the embedded profile on the same slice (``cli_slice``: ``lakehouse run`` on a local
folder, SQLite and in-process): the same silver and quarantine row counts, gold rows and model metrics.
"""

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import psutil
import pytest
from mlflow.tracking import MlflowClient

from lakehouse.definitions import defs
from lakehouse.ml.registry import CHAMPION, CONFIG_ARTIFACT, load_champion, read_features
from lakehouse.ml.sensors import run_in_progress
from lakehouse.resources import ModelRegistry
from lakehouse.settings import Settings
from lakehouse.sources import SOURCES
from lakehouse.tables import ALL_TABLES, Lake, Landing
from lakehouse_tests.cli_slice import LAKEHOUSE, SLICE, CliSlice
from lakehouse_tests.object_store import SECRET_ACCESS_KEY, S3Server, list_keys
from lakehouse_tests.processes import EXEC_WRAPPER, free_port, parent_env, stop
from lakehouse_tests.servers import PG_PASSWORD, MlflowServer, PostgresServer, dask_cluster, wait_for_http

pytestmark = pytest.mark.slow  # the whole graph through the daemon's sensors: several minutes
REPO = Path(__file__).resolve().parents[1]
ENTRYPOINT = REPO / "docker" / "entrypoint.sh"
GRAPH_TIMEOUT_S = 900.0  # failure bound, not an expected duration
MONTHS = ["2013-01-01", "2013-02-01", "2013-03-01"]
MODEL_NAME = ModelRegistry.model_fields["model_name"].default
SECRETS = (SECRET_ACCESS_KEY, PG_PASSWORD)
BROKEN = "flights_broken.csv"


@dataclass(frozen=True)
class Topology:
    settings: Settings  # the S3 locations (landing zone and lake) and the MLflow server's URI
    root: Path  # the local folder of the topology's processes (DAGSTER_HOME, LAKEHOUSE_DATA_DIR, logs)
    bucket: str
    runs: list[dg.DagsterRun]
    step_pids: set[int]
    worker_pids: set[int]
    webserver_addresses: set[str]
    events: str  # every run and event of the instance, serialized
    instance_db: str  # the Postgres database of the Dagster instance
    logs: list[Path]  # the processes' output
    broken: bytes


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


def graph_materialized(instance: dg.DagsterInstance) -> bool:
    """Every asset of the graph materialized, every monthly one for each month of the slice, no run in progress."""
    graph = defs.resolve_asset_graph()
    for key in graph.materializable_asset_keys:
        if graph.get(key).partitions_def is None:
            if instance.get_latest_materialization_event(key) is None:
                return False
        elif not set(MONTHS) <= instance.get_materialized_partitions(key):
            return False
    return run_in_progress(instance) is None


def wait_for_the_graph(instance: dg.DagsterInstance, logs: list[Path]) -> None:
    deadline = time.monotonic() + GRAPH_TIMEOUT_S
    while time.monotonic() < deadline:
        failed = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
        if failed or graph_materialized(instance):
            return
        time.sleep(3)
    tails = "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in logs)
    raise AssertionError(f"the graph was not materialized within {GRAPH_TIMEOUT_S} s\n{tails}")


def table_text(server: PostgresServer, database: str) -> str:
    """Every row of every table of ``database``, as text (what a leaked secret would be found in)."""
    tables = server.query(database, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
    return "\n".join(
        str(row) for (table,) in tables for row in server.query(database, f'SELECT t::text FROM "{table}" t')
    )


@pytest.fixture
def s3_environment(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """This process reaches the object store (to read the lake) as the topology's processes do."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="module")
def topology(
    postgres_server: PostgresServer,
    s3_server: S3Server,
    mlflow_server: MlflowServer,
    raw_flights: pl.DataFrame,
    tmp_path_factory: pytest.TempPathFactory,
) -> Topology:
    root = tmp_path_factory.mktemp("topology")
    bucket = s3_server.new_bucket()
    database = postgres_server.new_database()
    web_port = free_port()
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DAGSTER_HOME": str(root / "dagster_home"),  # the entrypoint writes docker/dagster.yaml into it
        "LAKEHOUSE_DATA_DIR": str(root / "data"),  # nothing of the lake may land here
        "LAKEHOUSE_LANDING_DIR": f"s3://{bucket}/landing",
        "LAKEHOUSE_LAKE_DIR": f"s3://{bucket}/lake",
        "LAKEHOUSE_MLFLOW_URI": mlflow_server.uri,
        "LAKEHOUSE_EXECUTOR": "dask",
        "DAGSTER_CODE_SERVER_HOST": "127.0.0.1",
        "DAGSTER_CODE_SERVER_BIND": "127.0.0.1",
        "DAGSTER_CODE_SERVER_PORT": str(free_port()),
        "LAKEHOUSE_WEBSERVER_PORT": str(web_port),  # LAKEHOUSE_WEBSERVER_HOST unset: the default binding
        **s3_server.env(),
        **postgres_server.dagster_env(database),
    }
    # Landed before the daemon starts, as a person does it: `lakehouse land` writes the objects.
    landed = subprocess.run(
        [LAKEHOUSE, "land", *SLICE], env={**os.environ, **env}, capture_output=True, text=True, timeout=300
    )
    assert landed.returncode == 0, landed.stdout + landed.stderr
    broken = raw_flights.slice(0, 10).drop("carrier").write_csv().encode()  # a required column missing
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        settings = Settings.from_env()
        Landing(settings.landing_dir).source("flights").write(BROKEN, broken)

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
                with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
                    wait_for_the_graph(instance, [*logs, *cluster.logs])
                    runs = instance.get_runs()
                    records = [record for run in runs for record in instance.all_logs(run.run_id)]
                    events = "\n".join(
                        [dg.serialize_value(run) for run in runs] + [dg.serialize_value(r) for r in records]
                    )
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
    return Topology(
        settings,
        root,
        bucket,
        runs,
        step_pids,
        worker_pids,
        addresses,
        events,
        database,
        [*logs, *cluster.logs],
        broken,
    )


def test_the_daemon_ran_the_whole_graph_from_the_sensors_on_both_workers(topology: Topology):
    assert topology.runs
    assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in topology.runs), [
        (run.run_id, run.job_name, run.status) for run in topology.runs
    ]
    assert {run.remote_job_origin.location_name for run in topology.runs if run.remote_job_origin} == {"lakehouse"}
    sensors = {run.tags.get("dagster/sensor_name") for run in topology.runs}
    # bronze, the gold months, the first model (no champion yet) and the scoring of the months, each requested by
    # its sensor and launched by the daemon through the run queue; silver by declarative automation
    assert {"landing_sensor", "gold_months_sensor", "retraining_sensor", "scoring_sensor"} <= sensors, sensors
    assert any(run.tags.get("dagster/from_automation_condition") for run in topology.runs), [
        run.tags for run in topology.runs
    ]
    assert topology.step_pids
    assert topology.step_pids <= topology.worker_pids  # no step ran in the daemon's or a run's own process
    assert topology.step_pids == topology.worker_pids  # both workers took steps


def test_same_silver_rows_and_model_metrics_as_the_embedded_profile(
    topology: Topology, cli_slice: CliSlice, s3_environment: None
):
    assert cli_slice.run.returncode == 0, cli_slice.run.stdout + cli_slice.run.stderr
    distributed, embedded = Lake(topology.settings.lake_dir), Lake(str(cli_slice.data_dir / "lake"))

    def rows(lake: Lake) -> dict[str, int]:
        return {
            t.path: lake.scan(t).select(pl.len()).collect().item()
            for t in ALL_TABLES
            if t.layer in ("silver", "gold") and lake.exists(t)
        }

    counts = rows(distributed)
    assert counts == rows(embedded)
    assert {f"silver/{name}" for name in SOURCES} <= set(counts)
    assert counts["silver/flights"] > 5000
    assert counts["gold/flight_features"] == counts["silver/flights"]

    def champion_metrics(uri: str) -> dict[str, float]:
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        version = client.get_model_version_by_alias(MODEL_NAME, CHAMPION)
        return client.get_run(str(version.run_id)).data.metrics

    metrics = champion_metrics(topology.settings.mlflow_tracking_uri)
    reference = champion_metrics(f"sqlite:///{cli_slice.data_dir / 'mlflow' / 'mlflow.db'}")
    assert "test_roc_auc" in metrics
    assert metrics.keys() == reference.keys()
    # the same rows in the same order and deterministic LightGBM on a fixed thread count (lakehouse.ml.training)
    for name, value in reference.items():
        assert metrics[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name


def test_the_model_is_registered_on_the_server_and_scores_what_the_lake_holds(
    topology: Topology, mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch, s3_server: S3Server
):
    # A client without any object-store credential: artifacts come through the server (mlflow-artifacts:/).
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    client = MlflowClient(tracking_uri=mlflow_server.uri, registry_uri=mlflow_server.uri)
    version = client.get_model_version_by_alias(MODEL_NAME, CHAMPION)
    run = client.get_run(str(version.run_id))
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
    assert run.data.params["training"] == "local"  # in one worker (lightgbm.dask: test_distributed_training.py)
    champion = load_champion(ModelRegistry(tracking_uri=mlflow_server.uri, artifact_location="unused"))
    assert champion is not None
    assert champion.version == int(version.version)

    for name, value in s3_server.env().items():  # now read the lake
        monkeypatch.setenv(name, value)
    lake = Lake(topology.settings.lake_dir)
    features, _ = read_features(lake)
    predictions = lake.read(next(t for t in ALL_TABLES if t.path == "gold/flight_delay_predictions"))
    assert sorted(predictions.get_column("flight_month").unique().cast(pl.String).to_list()) == MONTHS
    predictions = predictions.sort("flight_id")
    scoring = features.filter(pl.col("flight_id").is_in(predictions.get_column("flight_id").implode()))
    scoring = scoring.sort("flight_id")
    assert scoring.height == predictions.height == features.height  # every flight of every month is scored
    np.testing.assert_allclose(
        champion.predict(scoring), predictions.get_column("probability").to_numpy(), rtol=0, atol=1e-12
    )
    assert set(predictions.get_column("model_version").unique().to_list()) == {champion.version}


def test_the_model_artifacts_are_in_the_object_store(
    topology: Topology, mlflow_server: MlflowServer, s3_server: S3Server
):
    client = MlflowClient(tracking_uri=mlflow_server.uri)
    version = client.get_model_version_by_alias(MODEL_NAME, CHAMPION)
    keys = list_keys(s3_server, mlflow_server.bucket, f"{mlflow_server.artifacts_prefix}/")
    run_keys = [k for k in keys if f"/{version.run_id}/artifacts/" in k]
    assert any(k.endswith(f"/artifacts/{CONFIG_ARTIFACT}") for k in run_keys), keys
    assert any(k.endswith("/MLmodel") for k in keys), keys  # the logged model (MLflow 3: models/m-<id>/...)


def test_the_lake_and_the_landing_zone_are_in_the_object_store_only(
    topology: Topology, s3_server: S3Server, s3_environment: None
):
    keys = list_keys(s3_server, topology.bucket)
    for table in ("silver/flights", "gold/flight_features", "gold/flight_delay_predictions"):
        assert f"lake/{table}/_delta_log/00000000000000000000.json" in keys, table
    assert f"s3://{topology.bucket}/lake/silver/flights" in topology.events  # the metadata names S3 locations
    data = topology.root / "data"
    assert not (data / "lake").exists() and not (data / "landing").exists()
    assert not (REPO / "s3:").exists() and not (topology.root / "s3:").exists()


def test_a_rejected_object_is_copied_with_its_reason_and_nothing_is_deleted(
    topology: Topology, s3_server: S3Server, s3_environment: None
):
    landing = Landing(topology.settings.landing_dir)
    rejected = landing.rejected("flights")
    assert rejected.read(BROKEN) == topology.broken
    reason = json.loads(rejected.read(f"{BROKEN}.reason.json"))
    assert "carrier" in json.dumps(reason)
    landed = list_keys(s3_server, topology.bucket, "landing/flights/")
    assert landed == [  # never deleted from the landing zone
        "landing/flights/flights_2013_01.csv",
        "landing/flights/flights_2013_02.csv",
        "landing/flights/flights_2013_03.csv",
        f"landing/flights/{BROKEN}",
    ]


def test_runs_are_recorded_in_postgres(topology: Topology, postgres_server: PostgresServer):
    recorded = dict(postgres_server.query(topology.instance_db, "SELECT run_id, status FROM runs"))
    assert recorded == {run.run_id: "SUCCESS" for run in topology.runs}
    materialized = postgres_server.query(
        topology.instance_db,
        "SELECT count(DISTINCT asset_key) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'",
    )
    assert materialized == [(len(defs.resolve_asset_graph().materializable_asset_keys),)]


def test_no_secret_in_the_instance_the_registry_or_the_logs(
    topology: Topology, postgres_server: PostgresServer, mlflow_server: MlflowServer
):
    instance = table_text(postgres_server, topology.instance_db)  # runs, events, sensor cursors and ticks
    registry = table_text(postgres_server, mlflow_server.database)  # MLflow params, tags, metrics
    assert "landing_sensor" in instance and "test_roc_auc" in registry  # what was searched is the real thing
    logs = "\n".join(log.read_text() for log in topology.logs)
    for secret in SECRETS:
        assert secret not in instance
        assert secret not in registry
        assert secret not in topology.events
        assert secret not in logs


def test_the_webserver_listens_on_loopback_only(topology: Topology):
    assert topology.webserver_addresses == {"127.0.0.1"}
