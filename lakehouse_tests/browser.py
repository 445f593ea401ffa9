"""Fixtures of the browser test (lakehouse_tests/test_ui_browser.py): ``lakehouse ui`` on a free loopback port with
its own data folder, and headless Debian Chromium driven through Playwright.

The server is the real command a person runs (``lakehouse ui --port N``, i.e. ``dg dev``: webserver, daemon, code
server), with ``LAKEHOUSE_DATA_DIR`` pointing at a temporary folder and ``DAGSTER_HOME`` left unset, so the command
itself creates ``<data>/dagster`` from ``lakehouse/dagster.yaml`` (with ``nux: enabled: false``: no "Join the
Dagster community" modal) exactly as it does for a user.

Process handling (docs/stack-notes.md, "Dagster process signals"): the command is started through an exec wrapper
that resets SIGINT/SIGTERM to their defaults (a process started from a non-interactive shell inherits SIGINT
ignored, which Dagster copies onto SIGTERM) and asks for SIGTERM when pytest dies (``PR_SET_PDEATHSIG``), in its
own session. Teardown sends SIGTERM to the whole process group (``dg dev`` then stops its webserver, daemon and
code servers), and SIGKILL to whatever is left (:mod:`lakehouse_tests.processes`); Dagster never calls ``setsid``, so
every child stays in that group.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from lakehouse_tests.processes import EXEC_WRAPPER, free_port, group_alive, parent_env, stop

REPO_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
INSTALL_CHROMIUM = "apt-get install -y chromium"
# Flags with which Debian's chromium runs as root in a container, without network side traffic (docs/stack-notes.md,
# "Driving the Dagster UI in a browser").
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Failure bounds, not expected durations (the UI answers after ~15-20 s on 2 cores).
STARTUP_TIMEOUT_S = 150.0

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
          ... on PythonError { message }
        }
      }
    }
  }
}
"""

SENSORS_QUERY = """
query Sensors($repo: RepositorySelector!) {
  sensorsOrError(repositorySelector: $repo) {
    __typename
    ... on Sensors { results { name sensorState { id status } } }
  }
}
"""

STOP_SENSOR = """
mutation StopSensor($id: String) {
  stopSensor(id: $id) {
    __typename
    ... on StopSensorMutationResult { instigationState { status } }
    ... on PythonError { message }
  }
}
"""

RUNS_QUERY = """
query Runs {
  runsOrError { __typename ... on Runs { results { runId status pipelineName tags { key value } } } }
}
"""

RUN_EVENTS_QUERY = """
query RunEvents($runId: ID!) {
  logsForRun(runId: $runId, limit: 1000) {
    __typename
    ... on EventConnection { events { __typename ... on MessageEvent { message level stepKey } } }
  }
}
"""


@dataclass
class UiServer:
    """A running ``lakehouse ui``: its URL, data folder and combined stdout/stderr log."""

    url: str
    process: subprocess.Popen
    data_dir: Path
    log_file: Path
    location: str = ""
    repository: str = ""
    stopped_sensors: list[str] = field(default_factory=list)

    def log_tail(self, chars: int = 6000) -> str:
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

    def runs(self) -> list[dict]:
        result = self.graphql(RUNS_QUERY)["runsOrError"]
        assert result["__typename"] == "Runs", result
        return result["results"]

    def run_messages(self, run_id: str) -> str:
        """The run's event messages (level, step, message), one a line, for failure reports."""
        events = self.graphql(RUN_EVENTS_QUERY, {"runId": run_id})["logsForRun"].get("events", [])
        return "\n".join(f"{e.get('level')} {e.get('stepKey') or '-'}: {e.get('message')}" for e in events)


def wait_until_loaded(server: UiServer) -> None:
    """Poll the webserver until the ``lakehouse`` code location is loaded (fails with the server log)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    last = "no answer"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"`lakehouse ui` exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            if requests.get(f"{server.url}/server_info", timeout=2).ok:
                workspace = server.graphql(WORKSPACE_QUERY)["workspaceOrError"]
                for entry in workspace.get("locationEntries", []):
                    location = entry["locationOrLoadError"] or {}
                    if location.get("__typename") == "PythonError":
                        pytest.fail(f"code location {entry['name']} failed to load: {location['message']}")
                    if entry["loadStatus"] == "LOADED" and location.get("__typename") == "RepositoryLocation":
                        server.location, server.repository = location["name"], location["repositories"][0]["name"]
                        return
                last = f"workspace not loaded yet: {workspace}"
        except requests.RequestException as err:
            last = repr(err)
        time.sleep(0.5)
    pytest.fail(f"`lakehouse ui` not ready after {STARTUP_TIMEOUT_S:.0f} s ({last}):\n{server.log_tail()}")


def stop_sensors(server: UiServer) -> list[str]:
    """Turn every sensor off (the same ``stopSensor`` mutation as the UI's toggle), so the daemon's landing sensor,
    automation and retraining sensor do not start runs of their own beside the one the test launches."""
    repo = {"repositoryLocationName": server.location, "repositoryName": server.repository}
    result = server.graphql(SENSORS_QUERY, {"repo": repo})["sensorsOrError"]
    assert result["__typename"] == "Sensors", result
    stopped = []
    for sensor in result["results"]:
        if sensor["sensorState"]["status"] != "RUNNING":
            continue
        answer = server.graphql(STOP_SENSOR, {"id": sensor["sensorState"]["id"]})["stopSensor"]
        assert answer["__typename"] == "StopSensorMutationResult", answer
        assert answer["instigationState"]["status"] == "STOPPED", answer
        stopped.append(sensor["name"])
    return stopped


@contextlib.contextmanager
def lakehouse_ui(tmp_path: Path) -> Iterator[UiServer]:
    """``lakehouse ui --port N`` on an empty temporary data folder, loaded, with its sensors stopped; the process
    group is killed on exit, whatever happened."""
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "DAGSTER_"))}
    env.update(LAKEHOUSE_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1", **parent_env())
    lakehouse = Path(sys.executable).parent / "lakehouse"  # the venv's entry point, symlinks not resolved
    assert lakehouse.exists(), f"{lakehouse} not found: is the project installed in this venv?"
    port = free_port()
    log_file = tmp_path / "lakehouse-ui.log"
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", EXEC_WRAPPER, str(lakehouse), "ui", "--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = UiServer(url=f"http://127.0.0.1:{port}", process=process, data_dir=data_dir, log_file=log_file)
    try:
        wait_until_loaded(server)
        server.stopped_sensors = stop_sensors(server)
        yield server
    finally:
        stop(process)
        assert not group_alive(process.pid), "processes of the UI's group survived SIGKILL"


def chromium_or_fail() -> Path:
    """Debian's Chromium, or a test failure in one line saying how to install it (never a skip)."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} not found: install Debian's Chromium with `{INSTALL_CHROMIUM}` (as root)", pytrace=False
        )
    return CHROMIUM
