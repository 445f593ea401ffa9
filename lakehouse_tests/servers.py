"""The servers of the distributed profile on loopback, started by the tests themselves (a pytest plugin, like
:mod:`lakehouse_tests.object_store`): a real PostgreSQL server, an MLflow tracking server on it, and a Dask
scheduler with two workers. No test skips for a missing server; each fixture starts what it needs, and every
process dies with pytest (:data:`lakehouse_tests.processes.EXEC_WRAPPER`, or ``setpriv --pdeathsig`` below).

PostgreSQL comes from the dev dependency ``pgserver`` (PyPI; its wheel carries PostgreSQL 16's ``initdb`` and
``postgres`` binaries), so a fresh machine needs no Debian package. The fixture runs those binaries itself instead
of ``pgserver.get_server``: the server then listens on a TCP loopback port with password authentication, as in a
deployment, and is started in its own process group so it dies with the session.

PostgreSQL refuses to run as root. When the tests run as root (CI), ``initdb`` and ``postgres`` run as the user
``nobody`` through util-linux's ``setpriv`` (it also sets the parent-death signal after switching user: the
kernel clears that signal on a change of user id, so it must be set after, which ``setpriv`` does; checked here
with util-linux 2.38). The interpreter cannot be used as the wrapper there: ``nobody`` may not be able to read it
(pyenv under ``/root``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lakehouse_tests.processes import EXEC_WRAPPER, free_port, parent_env, stop

START_TIMEOUT_S = 60.0  # failure bound, not an expected duration
PG_USER = "lakehouse"
PG_PASSWORD = "lakehouse-pg-secret-7f3a9c"  # distinctive, so a test can grep logs for it
RUN_AS = "nobody"  # when root: PostgreSQL refuses to run as root


def pg_bin(name: str) -> str:
    """Path of a PostgreSQL program shipped in the ``pgserver`` wheel."""
    # found without importing it: importing pgserver creates a lock file under $XDG_RUNTIME_DIR (a warning when unset)
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("pgserver (a dev dependency) is not installed: uv sync --extra dev")
    return str(Path(spec.submodule_search_locations[0]) / "pginstall" / "bin" / name)


@dataclass(frozen=True)
class PostgresServer:
    """A running PostgreSQL server on loopback (TCP, password authentication)."""

    host: str
    port: int
    pid: int  # of the postmaster (its process group leads the server's processes)
    user: str = PG_USER
    password: str = PG_PASSWORD

    def url(self, database: str = "postgres") -> str:
        """A ``postgresql://user:password@host:port/database`` URL (SQLAlchemy, psycopg2, dagster-postgres)."""
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def dagster_env(self, database: str) -> dict[str, str]:
        """The variables ``docker/dagster.yaml`` reads its Postgres connection from, for ``database``."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_DB": database,
            "DAGSTER_PG_USERNAME": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
        }

    def new_database(self) -> str:
        """Create an empty database with a fresh name and return the name."""
        import psycopg2  # comes with dagster-postgres (psycopg2-binary)

        name = f"test_{uuid.uuid4().hex[:12]}"
        connection = psycopg2.connect(self.url())
        try:
            connection.autocommit = True  # CREATE DATABASE cannot run inside a transaction
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return name

    def query(self, database: str, sql: str, *params: object) -> list[tuple]:
        """Rows of one SQL statement in ``database``."""
        import psycopg2

        connection = psycopg2.connect(self.url(database))
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall()
        finally:
            connection.close()


def _as_server_user(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """The command line that runs ``argv`` with SIGINT/SIGTERM at their defaults and dies with pytest (SIGTERM),
    as ``nobody`` when this process is root; and the environment entries it needs."""
    if os.geteuid() == 0:
        entry = pwd.getpwnam(RUN_AS)
        switch = [
            "setpriv",
            f"--reuid={entry.pw_uid}",
            f"--regid={entry.pw_gid}",
            "--clear-groups",
            "--pdeathsig=TERM",
            "--",
        ]
        return [*switch, *argv], {}
    return [sys.executable, "-c", EXEC_WRAPPER, *argv], parent_env()


def _own(path: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam(RUN_AS)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _wait_for_postgres(server: PostgresServer, process: subprocess.Popen, log: Path) -> None:
    import psycopg2

    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"postgres exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            psycopg2.connect(server.url(), connect_timeout=2).close()
            return
        except psycopg2.OperationalError:
            time.sleep(0.2)
    raise RuntimeError(f"postgres did not accept connections within {START_TIMEOUT_S} s: {log.read_text()[-2000:]}")


def stop_postgres(process: subprocess.Popen) -> None:
    """SIGINT first: PostgreSQL's *fast* shutdown (SIGTERM is its *smart* shutdown, which waits for every client
    to disconnect, e.g. connection pools still open in this process), then :func:`stop`'s SIGTERM/SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
    stop(process)


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL 16 server on a free loopback port until the block ends: a fresh cluster (``initdb``) in a
    temporary folder, superuser :data:`PG_USER` with password :data:`PG_PASSWORD` (scram-sha-256 over TCP), no
    unix socket, durability off (``fsync=off``: a test database need not survive a power cut). Stopped and
    deleted at the end. Also used by ``benchmarks/profiles.py``."""
    # Not under pytest's tmp_path: its parents are private to the user running pytest, and the server may run
    # as another user (module docstring).
    root = Path(tempfile.mkdtemp(prefix="lakehouse-pg-"))
    data, pwfile, log = root / "data", root / "pwfile", root / "postgres.log"
    try:
        data.mkdir(mode=0o700)
        pwfile.write_text(PG_PASSWORD)
        for path in (root, data, pwfile):
            _own(path)
        initdb = [
            pg_bin("initdb"),
            "-D",
            str(data),
            "-U",
            PG_USER,
            f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256",
            "--auth-local=scram-sha-256",
            "--encoding=UTF8",
            "--no-instructions",
        ]
        argv, env = _as_server_user(initdb)
        done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **env}, cwd=root, timeout=120)
        if done.returncode != 0:
            hint = f" (as root the server runs as {RUN_AS}, who must be able to read {pg_bin('')})"
            raise RuntimeError(f"initdb failed{hint if os.geteuid() == 0 else ''}: {done.stderr[-2000:]}")
        port = free_port()
        postgres = [
            pg_bin("postgres"),
            "-D",
            str(data),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-c",
            "unix_socket_directories=",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
        ]
        argv, env = _as_server_user(postgres)
        with log.open("w") as out:
            process = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env},
                cwd=root,
                start_new_session=True,
            )
        server = PostgresServer("127.0.0.1", port, process.pid)
        try:
            _wait_for_postgres(server, process, log)
            yield server
        finally:
            stop_postgres(process)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """:func:`running_postgres` for the whole session."""
    with running_postgres() as server:
        yield server


@pytest.fixture
def postgres_db(postgres_server: PostgresServer) -> str:
    """A new empty database on the session's server (its name)."""
    return postgres_server.new_database()


# --- MLflow tracking server -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MlflowServer:
    """A running ``mlflow server``: backend store in a database of :func:`postgres_server`, artifacts proxied to
    ``s3://<bucket>/mlflow`` on :func:`lakehouse_tests.object_store.s3_server`."""

    uri: str  # the tracking URI clients use (http://127.0.0.1:<port>)
    database: str
    bucket: str
    pid: int  # of the server's process (its group leader: gunicorn/uvicorn workers are in its group)
    artifacts_prefix: str = "mlflow"


def wait_for_http(url: str, name: str, process: subprocess.Popen, log: Path) -> None:
    """Until ``url`` answers 2xx; raises ``RuntimeError`` with the log's tail if ``process`` exits or
    :data:`START_TIMEOUT_S` passes."""
    import requests

    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}: {log.read_text()[-3000:]}")
        try:
            if requests.get(url, timeout=5).ok:
                return
        except requests.RequestException:  # refused while starting, or no answer yet (migrations running)
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{name} did not answer {url} within {START_TIMEOUT_S} s: {log.read_text()[-3000:]}")


@contextlib.contextmanager
def running_mlflow_server(postgres_server: PostgresServer, s3_server, log_dir: Path) -> Iterator[MlflowServer]:
    """``mlflow server`` on a free loopback port until the block ends (output in ``log_dir/mlflow.log``), as the
    distributed profile runs it (docs/distributed.md): ``MLFLOW_BACKEND_STORE_URI=postgresql+psycopg2://...`` (a
    fresh database; SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3, which is not installed) and
    ``MLFLOW_ARTIFACTS_DESTINATION=s3://<fresh bucket>/mlflow`` with ``--serve-artifacts``: only the server holds
    the object store's credentials (``AWS_*`` plus ``MLFLOW_S3_ENDPOINT_URL``, read by boto3), clients reach
    artifacts through it. Also used by ``benchmarks/profiles.py``."""
    database = postgres_server.new_database()
    bucket = s3_server.new_bucket()
    backend = postgres_server.url(database).replace("postgresql://", "postgresql+psycopg2://", 1)
    port = free_port()
    log = log_dir / "mlflow.log"
    program = str(Path(sys.executable).with_name("mlflow"))
    argv = [
        program,
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--serve-artifacts",
    ]
    env = {
        **os.environ,
        **s3_server.env(),
        "MLFLOW_S3_ENDPOINT_URL": s3_server.endpoint,
        "AWS_DEFAULT_REGION": s3_server.env()["AWS_REGION"],
        "MLFLOW_DISABLE_TELEMETRY": "true",
        # read by `mlflow server` itself (click envvar), as docker/entrypoint.sh runs it: no password in `ps`
        "MLFLOW_BACKEND_STORE_URI": backend,
        "MLFLOW_ARTIFACTS_DESTINATION": f"s3://{bucket}/mlflow",
        **parent_env(),
    }
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", EXEC_WRAPPER, *argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{uri}/health", "mlflow server", process, log)
        yield MlflowServer(uri, database, bucket, process.pid)
    finally:
        stop(process)


@pytest.fixture(scope="session")
def mlflow_server(
    postgres_server: PostgresServer, s3_server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MlflowServer]:
    """:func:`running_mlflow_server` for the whole session."""
    with running_mlflow_server(postgres_server, s3_server, tmp_path_factory.mktemp("mlflow-server")) as server:
        yield server


# --- Dask scheduler and workers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DaskCluster:
    """A running ``dask scheduler`` and its ``dask worker`` processes (each its own process group)."""

    address: str  # tcp://127.0.0.1:<port>
    workers: int
    logs: list[Path]

    def worker_pids(self) -> dict[str, int]:
        """The pid of each worker process (the Python that runs tasks, under its nanny), by worker address."""
        from distributed import Client

        with Client(self.address, timeout=30) as client:
            return dict(client.run(os.getpid))


@contextlib.contextmanager
def dask_cluster(env: dict[str, str], log_dir: Path, workers: int = 2) -> Iterator[DaskCluster]:
    """Start ``dask scheduler`` and ``workers`` × ``dask worker`` (one process, one thread each: Dagster steps are
    not thread-safe, dagster_dask/executor.py) on loopback, with ``env`` added to this process's environment
    (what the workers need to run Dagster steps: ``LAKEHOUSE_*``, ``DAGSTER_PG_*``, ``AWS_*``) and
    ``LAKEHOUSE_DASK_SCHEDULER`` set to the scheduler's address; wait until every worker has joined; stop them all
    on exit."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = str(Path(sys.executable).with_name("dask"))
    # the workers learn the scheduler's address as every process of a deployment does (lakehouse.executors)
    full_env = {**os.environ, **env, "LAKEHOUSE_DASK_SCHEDULER": address, **parent_env()}
    commands = [[dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"]]
    commands += [
        [
            dask,
            "worker",
            address,
            "--host",
            "127.0.0.1",
            "--nworkers",
            "1",
            "--nthreads",
            "1",
            "--no-dashboard",
            "--name",
            f"worker-{i}",
            "--death-timeout",
            "60",
        ]
        for i in range(1, workers + 1)
    ]
    processes: list[subprocess.Popen] = []
    logs: list[Path] = []
    try:
        for i, argv in enumerate(commands):
            log = log_dir / ("scheduler.log" if i == 0 else f"worker-{i}.log")
            logs.append(log)
            with log.open("w") as out:
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-c", EXEC_WRAPPER, *argv],
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        env=full_env,
                        cwd=Path(__file__).resolve().parents[1],
                        start_new_session=True,
                    )
                )
        from distributed import Client

        with Client(address, timeout=START_TIMEOUT_S) as client:
            client.wait_for_workers(workers, timeout=START_TIMEOUT_S)
        yield DaskCluster(address, workers, logs)
    finally:
        for process in reversed(processes):
            stop(process)
