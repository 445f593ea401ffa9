"""What ``lakehouse run`` prints while the job runs: one line per step as it finishes, nothing else.

Without this the console got Dagster's whole event stream (about 130 DEBUG lines for the medallion job), the
beta/preview warnings of dagster-mlflow and of ``load_definitions_from_modules``, and MLflow's INFO chatter, before
the summary. Now, unless ``lakehouse run --verbose``::

    [ 3/16] ok     bronze/flights                   37,058 rows   (+1,665)    0.5 s
    [13/16] ok     ml/flight_delay_model                                     18.6 s  flight_delay_lgbm v5 registered ...
    [13/16] FAILED ml/flight_delay_model                                     39.5 s  MlflowException: No such artifact
    [14/16] --     ml/champion                                                       not run: an upstream step ...

(the table's rows after the step from ``dagster/row_count``, the rows it wrote from :data:`WRITTEN_KEYS`, the
step's duration, then the checks that did not pass and the step's last warning or info message, or its error),
then the run's status, where its full log is when it failed, and the summary.

**How the lines are produced: an instance event listener** (:meth:`dagster.DagsterInstance.add_event_listener`,
dagster 1.13). ``execute_in_process`` stores every event through the instance's ``handle_new_event``, which
calls the listeners registered for the run id *after* the event is written to the event log, synchronously, in
the run's own thread. So the lines are printed from exactly the records the Dagster UI shows (materialization
metadata, check evaluations, step durations, the step's own ``context.log`` messages, failures with their error),
as each step finishes, with no polling and no change to the job. The alternatives, read in the dagster 1.13
source: a custom ``@dg.logger`` sees the same records, but a job only uses a logger listed in its run config
(``create_log_manager``), so the CLI would have to add a logger definition to the job and store
``loggers: {progress: ...}`` in the run's config, which a re-execution from the UI (whose job has no such logger)
rejects; ``instance.watch_event_logs`` polls the storage from another thread; ``result.all_events`` arrives only
when the run is over. The full log is unaffected in every mode: the instance records every event whatever the
console loggers are; ``--verbose`` only prints it as well.

**Quiet console**: :data:`QUIET_RUN_CONFIG` sets the built-in ``console`` logger of the run to CRITICAL (Dagster's
documented per-run logger config, recorded with the run), and :func:`quiet_libraries` silences, for the duration of
a command and only there, the known noise: Dagster's ``BetaWarning``/``PreviewWarning`` categories, MLflow's INFO
logs (its ``MLFLOW_LOGGING_LEVEL``; its warnings still print) and MLflow's "while inferring pip requirements"
fallback warning. Nothing is changed for library users or the UI.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import click
import dagster as dg
from dagster_shared.utils.warnings import BetaWarning, PreviewWarning

QUIET_RUN_CONFIG: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
"""Run config of a quiet ``lakehouse run``: Dagster's console logger prints only CRITICAL (it never does)."""

# materialization metadata keys that count the rows a step wrote (set by the bronze, silver and prediction assets);
# ``dagster/row_count`` is the table's size after the step
WRITTEN_KEYS = ("rows_appended", "rows_inserted", "rows_updated", "rows_scored")
NOTE_WIDTH = 110


@dataclass
class StepState:
    """What the event stream said about one step so far."""

    assets: list[str]
    started: float | None = None
    rows: int | None = None
    written: int | None = None
    checks_passed: int = 0
    checks_failed: list[str] = field(default_factory=list)
    blocking_failed: list[str] = field(default_factory=list)
    info: str | None = None
    warning: str | None = None
    reported: bool = False


def short_error(error: Any) -> str:
    """``Class: first line`` of the innermost cause of a Dagster ``SerializableErrorInfo`` (the user's exception,
    not Dagster's wrapper)."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    message = (getattr(error, "message", "") or "").strip().splitlines()
    first = message[0] if message else ""
    name = getattr(error, "cls_name", None) or ""
    at = first.find(name + ":") if name else -1
    if at >= 0 and " " not in first[:at]:  # "Class: text" or "package.module.Class: text"
        first = first[at:]
    elif name:
        first = f"{name}: {first}"
    return first


def clip(text: str, width: int = NOTE_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


class RunProgress:
    """Prints one line per step of a run as it finishes (register it with :meth:`listen`).

    Args:
        job: the job being run (its steps and their asset keys, in topological order).
        echo: where lines go (``click.echo`` by default).
        bar: an optional ``click.progressbar`` advanced once per finished step, showing the running step.
    """

    def __init__(
        self,
        job: dg.JobDefinition,
        echo: Callable[[str], None] = click.echo,
        bar: Any = None,
    ) -> None:
        assets: dict[str, list[str]] = {}
        for assets_def in job.asset_layer.asset_graph.assets_defs:
            if assets_def.is_executable and assets_def.keys:
                assets[assets_def.node_def.name] = sorted(k.to_user_string() for k in assets_def.keys)
        order = [node.name for node in job.nodes_in_topological_order]
        self.steps = {name: StepState(assets=assets.get(name, [name])) for name in order}
        self.echo = echo
        self.bar = bar
        self.done = 0
        self.run_errors: list[str] = []
        self.failed: list[str] = []
        self.width = max((len(", ".join(s.assets)) for s in self.steps.values()), default=20)

    def listen(self, instance: dg.DagsterInstance, run_id: str) -> None:
        """Call :meth:`handle` for every event of ``run_id`` that ``instance`` stores."""
        instance.add_event_listener(run_id, self.handle)

    # --- events -------------------------------------------------------------------------------------------------

    def handle(self, entry: dg.EventLogEntry) -> None:
        """One stored event of the run (called by the instance right after it wrote the event)."""
        step = self.steps.get(entry.step_key or "")
        event = entry.dagster_event
        if event is None:  # a context.log message (or Dagster's own "not executing" error for a step)
            level = logging.getLevelName(entry.level) if isinstance(entry.level, str) else entry.level
            if step is not None and entry.user_message and isinstance(level, int):
                if level >= logging.WARNING:
                    step.warning = entry.user_message
                elif level >= logging.INFO:
                    step.info = entry.user_message
            return
        kind = event.event_type
        if kind in (dg.DagsterEventType.RUN_FAILURE, dg.DagsterEventType.RESOURCE_INIT_FAILURE):
            error = getattr(event.event_specific_data, "error", None)
            self.run_errors.append(short_error(error) if error is not None else clip(event.message or "run failed"))
            return
        if step is None:
            return
        if kind == dg.DagsterEventType.STEP_START:
            step.started = entry.timestamp
            self._show_running(step)
        elif kind == dg.DagsterEventType.ASSET_MATERIALIZATION and entry.asset_materialization is not None:
            metadata = entry.asset_materialization.metadata
            rows = metadata.get("dagster/row_count")
            if isinstance(rows, dg.IntMetadataValue) and rows.value is not None:
                step.rows = rows.value
            written = [v.value for k in WRITTEN_KEYS if isinstance(v := metadata.get(k), dg.IntMetadataValue)]
            if written:
                step.written = sum(w for w in written if w is not None)
        elif kind == dg.DagsterEventType.ASSET_CHECK_EVALUATION and entry.asset_check_evaluation is not None:
            evaluation = entry.asset_check_evaluation
            if evaluation.passed:
                step.checks_passed += 1
            else:
                text = f"{evaluation.check_name} did not pass"
                if evaluation.description:
                    text += f" ({evaluation.description})"
                step.checks_failed.append(text)
                if evaluation.blocking:
                    step.blocking_failed.append(evaluation.check_name)
        elif kind == dg.DagsterEventType.STEP_SUCCESS:
            self._report(step, "ok", event.step_success_data.duration_ms / 1000, self._note(step))
        elif kind == dg.DagsterEventType.STEP_FAILURE:
            seconds = entry.timestamp - step.started if step.started is not None else None
            if step.blocking_failed:  # a blocking check stopped the step by design (e.g. a refused challenger)
                self._report(step, "stop", seconds, "blocking check " + "; ".join(step.checks_failed))
            else:
                error = event.step_failure_data.error
                self.failed.append(", ".join(step.assets))
                self._report(step, "FAILED", seconds, short_error(error) if error is not None else "failed")
        elif kind == dg.DagsterEventType.STEP_SKIPPED:
            self._report(step, "--", None, "skipped")

    def finish(self) -> None:
        """Name every step that never ran (its upstream failed, or the run stopped) once, after the run."""
        for step in self.steps.values():
            if not step.reported:
                self._report(step, "--", None, "not run: an upstream step failed or the run stopped")

    # --- lines --------------------------------------------------------------------------------------------------

    def _note(self, step: StepState) -> str:
        parts = [f"check {c}" for c in step.checks_failed]
        if step.warning:
            parts.append(step.warning)
        elif step.info:
            parts.append(step.info)
        return "; ".join(parts)

    def line(self, step: StepState, status: str, seconds: float | None, note: str) -> str:
        """``[ n/N] status  asset  rows (+written)  seconds  note`` (the note clipped to one line), ``n`` being
        :attr:`done`."""
        total = len(self.steps)
        rows = f"{step.rows:,} rows" if step.rows is not None else ""
        written = f"(+{step.written:,})" if step.written is not None else ""
        secs = f"{seconds:.1f} s" if seconds is not None else ""
        head = f"[{self.done:>{len(str(total))}}/{total}] {status:<6} {', '.join(step.assets):<{self.width}}"
        return f"{head} {rows:>14} {written:>10} {secs:>8}  {clip(note)}".rstrip()

    def _report(self, step: StepState, status: str, seconds: float | None, note: str) -> None:
        if step.reported:
            return
        step.reported = True
        self.done += 1
        text = self.line(step, status, seconds, note)
        if self.bar is not None:
            click.echo("\r\033[K", nl=False)  # clear the bar's line; it is drawn again by update()
            self.echo(text)
            self.bar.current_item = None  # done; the next STEP_START names the next one
            self.bar.update(1)
        else:
            self.echo(text)

    def _show_running(self, step: StepState) -> None:
        if self.bar is not None:  # update(0, ...) would not redraw (click draws every update_min_steps steps)
            self.bar.current_item = ", ".join(step.assets)
            self.bar.render_progress()


@contextmanager
def progress_bar(total: int) -> Iterator[Any]:
    """A ``click.progressbar`` over the run's steps showing the running step, on a terminal only (None otherwise:
    a log file or a pipe gets the step lines alone)."""
    if not sys.stdout.isatty():
        yield None
        return
    bar: Any = click.progressbar(
        length=total,
        label="running",
        show_eta=False,
        show_pos=True,
        item_show_func=lambda item: f"{item} ..." if item else "",
    )
    with bar:
        yield bar


class _DropMessage(logging.Filter):
    """Drops the records of one logger whose message starts with ``prefix``."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


# MLflow 3.17, mlflow/utils/environment.py: the fallback warning of pip requirement inference (the models logged
# here pass explicit pip_requirements, so it only appears for models logged elsewhere in the process)
PIP_INFERENCE_LOGGER = "mlflow.utils.environment"
PIP_INFERENCE_PREFIX = "Encountered an unexpected error while inferring pip requirements"


@contextmanager
def quiet_libraries() -> Iterator[None]:
    """For the duration of one command: no Dagster beta/preview warnings, no MLflow INFO logs, no MLflow
    pip-inference fallback warning. Other warnings, MLflow's warnings and errors still print; the previous state
    is restored on exit (tests call the CLI in-process).

    ``MLFLOW_LOGGING_LEVEL`` is MLflow's own setting, read when ``mlflow`` is imported (an explicit value of the
    user's wins); the ``mlflow`` logger's level is set as well for a process that imported it already. Not
    silenced: the two lines MLflow 3.17 prints when it registers a model version ("Created version 'N' of model
    ..."): they go through ``eprint`` to its own stream, whose only switch (``logging_utils.disable_logging``) MLflow
    turns back on by itself when one of its internal contexts exits during ``log_model``.
    """
    previous_env = os.environ.get("MLFLOW_LOGGING_LEVEL")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    mlflow_logger = logging.getLogger("mlflow")
    previous_level = mlflow_logger.level
    pip_filter = _DropMessage(PIP_INFERENCE_PREFIX)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=BetaWarning)
        warnings.filterwarnings("ignore", category=PreviewWarning)
        mlflow_logger.setLevel(max(logging.WARNING, previous_level))
        logging.getLogger(PIP_INFERENCE_LOGGER).addFilter(pip_filter)
        try:
            yield
        finally:
            logging.getLogger(PIP_INFERENCE_LOGGER).removeFilter(pip_filter)
            mlflow_logger.setLevel(previous_level)
            if previous_env is None:
                os.environ.pop("MLFLOW_LOGGING_LEVEL", None)
            else:
                os.environ["MLFLOW_LOGGING_LEVEL"] = previous_env
