"""Operating the embedded profile safely: one command at a time per data folder, and dead runs cleaned up.

Two things go wrong when a process running the lakehouse dies or two start together (issue #13, measured through
the CLI): a run killed with SIGKILL stays STARTED in Dagster and keeps its **concurrency slots**, so the next run's
pooled steps (every bronze/silver table, the model, predictions, drift; pools of size 1 in
``lakehouse/dagster.yaml``) wait for them forever; and two commands creating the SQLite stores of a fresh data
folder at the same moment race on their schema migrations and can leave them unusable.

Which mechanism covers which path:

* **``lakehouse run`` (in-process, no daemon).** :func:`exclusive` takes an exclusive lock on
  ``<data>/.lakehouse.lock`` (the kept ``filelock`` library: ``flock``, released by the kernel when the holder
  dies, whatever killed it). A second command refuses at once with one line naming the holder's pid. Under the
  lock the stores are created (race-free) and :func:`recover_dead_runs` marks every run the CLI started and that
  is still unfinished as FAILED (``DagsterInstance.report_run_failed``): since every CLI run holds the lock for its
  whole life, an unfinished CLI run seen by the lock holder has no live process. Its concurrency slots are freed
  (``event_log_storage.free_concurrency_slots_for_run``, the call Dagster's own monitoring daemon makes) and its
  MLflow runs still RUNNING end as KILLED. Slots still held by runs that already finished are freed too.
* **``lakehouse ui`` (webserver + daemons).** Runs are launched by the daemon through the code server. Dagster's
  run monitoring (``run_monitoring`` in ``lakehouse/dagster.yaml``) frees the slots of finished runs
  (``free_slots_after_run_end_seconds``) and ends a run that exceeds ``max_runtime_seconds``; the default run
  launcher cannot check a run worker's health (``supports_check_run_worker_health`` is False), so a run worker
  killed under the UI is ended by that timeout, or at once by the next ``lakehouse run``/``lakehouse recover``
  only if the CLI started it. ``lakehouse ui`` takes the lock only while it creates the stores.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from filelock import FileLock, Timeout
from mlflow.tracking import MlflowClient

LOCK_FILE = ".lakehouse.lock"
HOLDER_FILE = ".lakehouse.holder.json"
LAUNCHED_BY_TAG = "lakehouse/launched_by"
PID_TAG = "lakehouse/pid"
CLI = "cli"
UNFINISHED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


class Busy(RuntimeError):
    """Another lakehouse command holds the data folder's lock."""


@contextmanager
def exclusive(data_dir: str | os.PathLike[str], command: str) -> Iterator[None]:
    """Hold the data folder's lock for the duration of the block.

    Raises:
        Busy: another command holds it; the message names its pid, command and start time.
    """
    folder = Path(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / LOCK_FILE))
    holder_file = folder / HOLDER_FILE
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise Busy(
            f"another lakehouse command is using {folder} ({describe_holder(holder_file)}); "
            "wait for it to finish or stop it, then try again"
        ) from None
    try:
        holder_file.write_text(json.dumps({"pid": os.getpid(), "command": command, "since": time.time()}))
        yield
    finally:
        holder_file.unlink(missing_ok=True)
        lock.release()


def describe_holder(holder_file: Path) -> str:
    try:
        holder = json.loads(holder_file.read_text())
    except (OSError, ValueError):
        return "pid unknown"
    since = time.strftime("%H:%M:%S", time.localtime(holder.get("since", 0)))
    return f"pid {holder.get('pid')}, `lakehouse {holder.get('command')}` since {since}"


def cli_run_tags() -> dict[str, str]:
    """Tags of a run started by the CLI: what :func:`recover_dead_runs` recognises."""
    return {LAUNCHED_BY_TAG: CLI, PID_TAG: str(os.getpid())}


@dataclass(frozen=True)
class Recovery:
    """What :func:`recover_dead_runs` cleaned up: failed run ids, runs whose slots were freed, MLflow runs
    ended as KILLED."""

    failed_runs: list[str]
    freed_slots_of: list[str]
    killed_mlflow_runs: list[str]

    def describe(self) -> str:
        if not (self.failed_runs or self.freed_slots_of or self.killed_mlflow_runs):
            return "nothing to recover"
        return (
            f"marked {len(self.failed_runs)} dead run(s) failed, freed the concurrency slots of "
            f"{len(self.freed_slots_of)} run(s), ended {len(self.killed_mlflow_runs)} MLflow run(s) as KILLED"
        )


def recover_dead_runs(instance: dg.DagsterInstance, mlflow_tracking_uri: str | None) -> Recovery:
    """Clean up after CLI runs whose process died (see the module docstring). Call it holding :func:`exclusive`."""
    dead = instance.get_runs(filters=dg.RunsFilter(statuses=UNFINISHED, tags={LAUNCHED_BY_TAG: CLI}))
    failed = []
    for run in dead:
        pid = run.tags.get(PID_TAG, "?")
        instance.report_run_failed(
            run,
            f"The lakehouse process that ran this run (pid {pid}) is gone (killed, out of memory or machine "
            "lost); marked failed by the next lakehouse command, which holds the data folder's lock.",
        )
        failed.append(run.run_id)
    freed = []
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits:
        holders = storage.get_concurrency_run_ids()
        for run_id in sorted(holders):
            record = instance.get_run_by_id(run_id)
            if record is None or record.is_finished:
                storage.free_concurrency_slots_for_run(run_id)
                freed.append(run_id)
    killed = end_mlflow_runs(mlflow_tracking_uri, failed) if failed and mlflow_tracking_uri else []
    return Recovery(failed, freed, killed)


def end_mlflow_runs(tracking_uri: str, dagster_run_ids: list[str]) -> list[str]:
    """End as KILLED the MLflow runs still RUNNING that dagster-mlflow opened for ``dagster_run_ids`` (it tags
    each MLflow run with ``dagster_run_id``)."""
    client = MlflowClient(tracking_uri=tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return []
    killed = []
    for run_id in dagster_run_ids:
        for mlflow_run in client.search_runs(experiments, filter_string=f"tags.dagster_run_id = '{run_id}'"):
            if mlflow_run.info.status == "RUNNING":
                client.set_terminated(mlflow_run.info.run_id, status="KILLED")
                killed.append(mlflow_run.info.run_id)
    return killed
