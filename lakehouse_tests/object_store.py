"""An S3-compatible object store on loopback for tests: ``moto_server`` (PyPI ``moto[server]``, a dev dependency),
started by the fixture itself, so no test needs a server installed or skips without one.

Why moto: it answers the conditional put delta-rs >= 1.0 commits with (a second ``PUT If-None-Match: *`` gets 412),
so concurrent Delta commits on it behave as on AWS S3 (docs/stack-notes.md, "Object storage"). It keeps objects in
memory; a test's bucket is created empty by :func:`new_bucket`.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import obstore
import pytest
from obstore.store import S3Store

from lakehouse_tests.processes import EXEC_WRAPPER, free_port, parent_env, stop

START_TIMEOUT_S = 60.0  # failure bound, not an expected duration
ACCESS_KEY_ID = "lakehouse-test-key"
SECRET_ACCESS_KEY = "lakehouse-test-secret-d41d8cd98f00"  # distinctive, so a test can grep logs for it
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Server:
    """A running S3-compatible server: its endpoint and the ``AWS_*`` environment that reaches it."""

    endpoint: str
    pid: int  # of the server's process (its group leader)

    def env(self) -> dict[str, str]:
        """The standard ``AWS_*`` variables (what the lakehouse reads its credentials and endpoint from)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_REGION": REGION,
            "AWS_ALLOW_HTTP": "true",
        }

    def store(self, bucket: str) -> S3Store:
        return S3Store(
            bucket,
            endpoint=self.endpoint,
            access_key_id=ACCESS_KEY_ID,
            secret_access_key=SECRET_ACCESS_KEY,
            region=REGION,
            client_options={"allow_http": True},
        )

    def new_bucket(self) -> str:
        """Create an empty bucket with a fresh name and return the name."""
        name = f"test-{uuid.uuid4().hex[:12]}"
        # obstore has no bucket API; S3 creates a bucket with a PUT on the bucket itself.
        import requests  # dev dependency

        response = requests.put(f"{self.endpoint}/{name}", timeout=30)
        response.raise_for_status()
        return name


def _wait_until_up(endpoint: str, process: subprocess.Popen, log: Path) -> None:
    import requests

    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            requests.get(endpoint, timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise RuntimeError(f"moto_server did not answer on {endpoint} within {START_TIMEOUT_S} s")


@contextlib.contextmanager
def running_s3_server(log_dir: Path) -> Iterator[S3Server]:
    """``moto_server`` on a free loopback port until the block ends (then stopped, process group and all); its
    output goes to ``log_dir/moto.log``. Also used by ``benchmarks/profiles.py``."""
    port = free_port()
    log = log_dir / "moto.log"
    program = str(Path(sys.executable).with_name("moto_server"))
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", EXEC_WRAPPER, program, "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **parent_env()},
            start_new_session=True,
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(endpoint, process, log)
        yield S3Server(endpoint, process.pid)
    finally:
        stop(process)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """:func:`running_s3_server` for the whole session."""
    with running_s3_server(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A new empty bucket on the session's server (its name)."""
    return s3_server.new_bucket()


def list_keys(server: S3Server, bucket: str, prefix: str = "") -> list[str]:
    """Every object key under ``prefix`` (sorted)."""
    return sorted(meta["path"] for batch in obstore.list(server.store(bucket), prefix=prefix or None) for meta in batch)
