"""The full lakehouse: the runs of ``lakehouse run`` (jobs ``ingest``, ``gold_months``, ``ml``, ``scoring``) in this
process on an empty lake, measured.

Run by :mod:`benchmarks.run` in its own process::

    python -m benchmarks.pipeline --landing <landing dir> --work <empty dir> --out result.json

By default the job runs with ``execute_in_process`` (Dagster's in-process executor: one process, steps in sequence,
as in the tests and ``lakehouse run``); ``--executor multiprocess`` runs it with ``dg.execute_job`` and Dagster's
multiprocess executor instead (one fresh process per step, at most 2 at a time on this machine: what runs
launched by the webserver, sensors and schedules use), and ``--executor forkserver`` the same with steps forked
from a server process that preloaded ``lakehouse.definitions`` (a run-config change, no code change); with
either, per-step memory and the attribution below are not available. ``--stores-only`` just creates the Dagster
instance and the MLflow store in ``--work`` (what the first run on a machine does once; the runner times it in a
process of its own before the measured one). Either way the run uses a persistent SQLite
Dagster instance (``DagsterInstance.local_temp``) and an SQLite MLflow store, both under ``--work``; the Delta lake
is ``<work>/lake`` (paths passed to the lakehouse through its ``LAKEHOUSE_*`` environment variables).

Measured (seconds / bytes):

* ``import_s``: importing dagster, mlflow and ``lakehouse.definitions`` (which imports every asset module);
* ``setup_s``: creating the Dagster instance, building the Definitions and resolving the job;
* ``run_s``: ``execute_in_process`` / ``execute_job`` from call to return;
* per step: wall time from the step's ``STEP_START`` to its ``STEP_SUCCESS`` event (event-log timestamps) and the
  peak RSS sampled in between; steps are grouped into the stages bronze, silver (with its row-accounting
  checks), gold, train (the model asset), predict (the predictions asset) and monitor (the drift asset);
* ``attribution``: time spent inside chosen functions during the run (Pandera validation, MLflow calls, plots,
  asset metadata scans, and the pure compute functions for comparison), measured by wrapping them in this
  process only (see :func:`instrument`); the lakehouse package itself is not modified.
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()

import dagster as dg  # noqa: E402

from lakehouse.definitions import build_definitions  # noqa: E402

IMPORT_S = time.perf_counter() - _T0

import argparse  # noqa: E402
import os  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from contextlib import ExitStack  # noqa: E402
from pathlib import Path  # noqa: E402

from dagster._core.events import DagsterEventType  # noqa: E402

from benchmarks.measure import CallTimers, RssSampler, StepClock, timed, vm_hwm_bytes, write_json  # noqa: E402
from lakehouse.cli import skip_final_gc  # noqa: E402
from lakehouse.metadata import asset_key  # noqa: E402
from lakehouse.ml.assets import CHAMPION_KEY, MODEL_KEY  # noqa: E402
from lakehouse.pipeline import STEPS, MedallionResult, materialize_medallion, step_ranges  # noqa: E402
from lakehouse.resources import build_resources, ensure_experiment  # noqa: E402
from lakehouse.settings import Settings  # noqa: E402
from lakehouse.tables import (  # noqa: E402
    BY_PATH,
    FEATURE_DRIFT,
    FLIGHT_FEATURES,
    PREDICTIONS,
    ROUTE_DAILY_DELAYS,
    Lake,
)

STAGE_BY_KEY: dict[dg.AssetKey, str] = {  # the layers bronze and silver are stages of their own
    asset_key(FLIGHT_FEATURES): "gold",
    asset_key(ROUTE_DAILY_DELAYS): "gold",
    MODEL_KEY: "train",
    CHAMPION_KEY: "train",  # the promotion step: moves the alias after the gate
    asset_key(PREDICTIONS): "predict",
    asset_key(FEATURE_DRIFT): "monitor",
}
STAGE_BY_STEP = {key.to_python_identifier(): stage for key, stage in STAGE_BY_KEY.items()}


def stage_of(step_key: str) -> str:
    """Benchmark stage of a Dagster step key (``bronze__flights`` -> ``bronze``; check steps of an asset belong
    to its stage)."""
    if step_key in STAGE_BY_STEP:
        return STAGE_BY_STEP[step_key]
    prefix = step_key.split("__", 1)[0]
    return prefix if prefix in ("bronze", "silver") else "other"


def instrument(timers: CallTimers) -> None:
    """Wrap the functions whose share of the step time is worth knowing (labels are what the report shows).

    Functions of the lakehouse are wrapped where they are defined *and* wherever a module bound them with ``from
    ... import`` (:meth:`CallTimers.wrap_bindings`). Generic where the code under test moves fast: every public
    MLflow function and ``MlflowClient`` method, every function of :mod:`lakehouse.ml.plots`. Within one label
    family (text before ``:``) only the outermost call counts. A name that no longer exists is listed in
    ``attribution_missing``, a wrapper never called shows 0 calls; the report flags both.
    """
    import dagster_mlflow.resources as dmr
    import mlflow.artifacts
    import mlflow.pyfunc
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
    from mlflow.tracking import MlflowClient

    from lakehouse import metadata, resources
    from lakehouse.gold import features
    from lakehouse.ml import drift, plots, training
    from lakehouse.silver import conform

    def lakehouse_function(owner: object, attr: str, label: str) -> None:
        timers.wrap_bindings(owner, attr, label, package="lakehouse")

    lakehouse_function(conform, "conform", "compute: silver conform (incl. Pandera)")
    lakehouse_function(conform, "failure_reasons", "pandera: validate (silver)")
    lakehouse_function(features, "month_features", "compute: gold month_features")
    lakehouse_function(training, "train", "compute: LightGBM train")
    lakehouse_function(training, "predict", "compute: LightGBM predict")
    lakehouse_function(drift, "drift_report", "compute: drift report (PSI, KS)")
    # every event of the run (steps, checks, materializations, run start/end), inside steps or not
    timers.wrap(SqliteEventLogStorage, "store_event", "dagster: event log writes (SQLite, whole run)")
    lakehouse_function(metadata, "table_metadata", "metadata: row count + schema + version scans")
    lakehouse_function(metadata, "metadata_table", "metadata: sample tables")
    timers.wrap_all(plots, "reporting: matplotlib plots (PNG)")
    # MLflow: the resource's initialisation first (outermost), then the model log/load, then everything else.
    lakehouse_function(resources, "ensure_experiment", "mlflow: resource init (store, experiment, run start)")
    timers.wrap(resources, "MlFlow", "mlflow: resource init (store, experiment, run start)")
    timers.wrap(mlflow.pyfunc, "log_model", "mlflow: log_model + register")
    timers.wrap(mlflow.pyfunc, "load_model", "mlflow: load_model")
    other = "mlflow: other tracking, registry and artifact calls"
    timers.wrap_all(mlflow, other, predicate=lambda name, f: f.__module__.startswith("mlflow"))
    timers.wrap_all(mlflow.artifacts, other)
    timers.wrap_all(MlflowClient, other)
    timers.wrap_all(dmr.MlFlow, other)


def step_times(instance: dg.DagsterInstance, run_id: str, clock: StepClock) -> None:
    """Add one step to ``clock`` per STEP_START/STEP_SUCCESS pair of the run's event log."""
    starts: dict[str, float] = {}
    kinds = {DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE}
    for entry in instance.all_logs(run_id, of_type=kinds):
        key = entry.step_key
        if entry.dagster_event.event_type == DagsterEventType.STEP_START:
            starts[key] = entry.timestamp
        else:
            clock.add(key, stage_of(key), starts[key], entry.timestamp)


def sanity_figures(result: MedallionResult) -> dict:
    """Row counts and model figures from the materialization metadata (to check both sides did the same work),
    named as the floor names them (``silver_flights_rows``, ``silver_flights_quarantined``, ...)."""
    out: dict = {}
    for event in result.get_asset_materialization_events():
        m = event.materialization
        meta = {k: v.value for k, v in m.metadata.items()}
        table = BY_PATH.get(m.asset_key.to_user_string())
        if m.asset_key == MODEL_KEY:
            out.update(
                seed=meta.get("seed"),
                best_iteration=meta.get("best_iteration"),
                train_rows=meta.get("train_rows"),
                valid_roc_auc=meta.get("valid_roc_auc"),
                test_roc_auc=meta.get("test_roc_auc"),
            )
        elif table is None:
            continue
        elif table == PREDICTIONS:
            # a single-run backfill reports one materialization per month (its own dagster/row_count), each with
            # the run's total as run_rows
            out["predictions_rows"] = meta.get("run_rows")
        elif table == FEATURE_DRIFT:
            out["max_psi"] = meta.get("max_psi")  # the newest month of the (last) scoring run
        elif table.layer in ("bronze", "silver") or table in (FLIGHT_FEATURES, ROUTE_DAILY_DELAYS):
            out[f"{table.layer}_{table.name}_rows"] = meta.get("run_rows", meta.get("dagster/row_count"))
            if table.layer == "silver":
                out[f"silver_{table.name}_quarantined"] = meta.get("rows_quarantined")
    return out


EXECUTORS = {  # run config of the job's default executor (multi_or_in_process_executor) for each choice
    "in_process": None,
    "multiprocess": {"execution": {"config": {"multiprocess": {}}}},
    "forkserver": {
        "execution": {
            "config": {"multiprocess": {"start_method": {"forkserver": {"preload_modules": ["lakehouse.definitions"]}}}}
        }
    },
}


def _job(name: str) -> dg.JobDefinition:
    return build_definitions(Settings.from_env()).resolve_job_def(name)


def ingest_job() -> dg.JobDefinition:
    """The ``ingest`` job wired to the ``LAKEHOUSE_*`` environment variables; module level and without arguments
    (like the three below) so that ``dg.reconstructable`` can rebuild it in the step processes of the
    multiprocess executor."""
    return _job("ingest")


def gold_job() -> dg.JobDefinition:
    return _job("gold_months")


def ml_job() -> dg.JobDefinition:
    return _job("ml")


def scoring_job() -> dg.JobDefinition:
    return _job("scoring")


JOB_FUNCTIONS = {"ingest": ingest_job, "gold_months": gold_job, "ml": ml_job, "scoring": scoring_job}


def run_multiprocess(instance: dg.DagsterInstance, executor: str, lake: Lake, stack: ExitStack) -> MedallionResult:
    """The runs of :func:`lakehouse.pipeline.materialize_medallion`, each with ``dg.execute_job`` on ``executor``
    (a process per step)."""
    out = MedallionResult()
    registry = build_resources(Settings.from_env())["registry"]
    for name, _, _ in STEPS:
        for tags in step_ranges(name, lake, registry):
            result = stack.enter_context(
                dg.execute_job(
                    dg.reconstructable(JOB_FUNCTIONS[name]),
                    instance=instance,
                    run_config=EXECUTORS[executor],
                    tags=tags,
                )
            )
            out.results.append(result)  # type: ignore[arg-type]  # the accessors used here exist on both kinds
            if not result.success:
                return out
    return out


def create_stores(work: Path, out: str) -> int:
    """Create, in ``work``, the persistent Dagster instance (SQLite run, event-log and schedule storage) and the
    MLflow SQLite store with the lakehouse's experiment, as the first run on a machine does (both run their
    schema migrations then); later runs reuse them. Writes ``{"kind": "stores", "stores_s": seconds}``."""
    figures: dict = {"kind": "stores", "import_s": IMPORT_S}
    with timed(figures, "stores_s"):
        (work / "dagster").mkdir(parents=True, exist_ok=True)
        instance = dg.DagsterInstance.local_temp(tempdir=str(work / "dagster"))
        instance.get_runs_count()  # touch the run storage
        registry = build_resources(Settings.from_env(data_dir=work))["registry"]  # what main() passes to the run
        ensure_experiment(registry.tracking_uri, registry.experiment, registry.artifact_location)
        registry.client().search_registered_models()  # touch the model registry store
    write_json(out, figures)
    return 0


def model_config(train_window_months: int) -> dict | None:
    """The run config setting the model's ``train_window_months`` (None for the default, every month)."""
    if not train_window_months:
        return None
    return {"ops": {"ml__flight_delay_model": {"config": {"train_window_months": train_window_months}}}}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pipeline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--landing", required=True, help="landing zone root (read only)")
    parser.add_argument("--work", required=True, help="empty folder for the lake, MLflow and the Dagster instance")
    parser.add_argument("--out", required=True, help="JSON file for the measurements")
    parser.add_argument(
        "--executor",
        choices=tuple(EXECUTORS),
        default="in_process",
        help="in_process (as the tests and `lakehouse run`); multiprocess (Dagster's default for "
        "runs launched by the webserver, sensors and schedules: a fresh process per step); "
        "forkserver (multiprocess, steps forked from a server that preloaded "
        "lakehouse.definitions)",
    )
    parser.add_argument(
        "--train-window-months",
        type=int,
        default=0,
        help="the model's train_window_months (run config of ml/flight_delay_model); 0 = every month",
    )
    parser.add_argument("--no-attribution", action="store_true", help="do not wrap functions to attribute time")
    parser.add_argument(
        "--stores-only",
        action="store_true",
        help="only create the Dagster instance and the MLflow store (with the experiment) in --work: "
        "what the first run on a new machine does once",
    )
    args = parser.parse_args(argv)
    skip_final_gc()  # as the `lakehouse` command does
    work = Path(args.work).resolve()
    if args.stores_only:
        return create_stores(work, args.out)
    multiprocess = args.executor != "in_process"

    figures: dict = {"kind": "pipeline", "executor": args.executor, "import_s": IMPORT_S}
    timers = CallTimers()
    if not args.no_attribution and not multiprocess:  # wrappers cannot reach the step processes
        with timed(figures, "instrument_s"):
            instrument(timers)
    sampler = RssSampler().start()
    with timed(figures, "setup_s"):
        # the locations Settings.from_env(work) gives (as --stores-only created them), with the landing zone
        # elsewhere; through the environment so that the step processes of the multiprocess executor see them too
        settings = Settings.from_env(data_dir=work)
        os.environ.update(
            {
                "LAKEHOUSE_DATA_DIR": str(work),
                "LAKEHOUSE_LANDING_DIR": str(Path(args.landing).resolve()),
                "LAKEHOUSE_LAKE_DIR": settings.lake_dir,
                "LAKEHOUSE_MLFLOW_URI": settings.mlflow_tracking_uri,
                "LAKEHOUSE_MLFLOW_ARTIFACTS": settings.mlflow_artifact_location,
            }
        )
        (work / "dagster").mkdir(parents=True, exist_ok=True)
        instance = dg.DagsterInstance.local_temp(tempdir=str(work / "dagster"))
        defs = None if multiprocess else build_definitions(Settings.from_env())
        lake = Lake(settings.lake_dir)
    with ExitStack() as stack:
        with timed(figures, "run_s"):
            if multiprocess:
                result = run_multiprocess(instance, args.executor, lake, stack)
            else:
                assert defs is not None
                result = materialize_medallion(defs, instance, lake, run_config=model_config(args.train_window_months))
        sampler.stop()
        if not result.success:
            raise SystemExit("a lakehouse run failed; see the log")
        clock = StepClock()
        for run_id in result.run_ids:
            step_times(instance, run_id, clock)
        checks = sanity_figures(result)
    write_json(
        args.out,
        {
            **figures,
            **clock.finish(sampler),
            "vm_hwm_bytes": vm_hwm_bytes(),
            "attribution": timers.totals,
            "attribution_missing": timers.missing,
            "checks": checks,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
