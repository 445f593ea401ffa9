"""The full lakehouse: the Dagster job ``medallion`` run in this process on an empty lake, measured.

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
import mlflow  # noqa: E402

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
from lakehouse.settings import LakehouseSettings  # noqa: E402

STAGE_BY_STEP = {
    "gold__flight_features": "gold",
    "gold__route_daily_delays": "gold",
    "ml__flight_delay_model": "train",
    "gold__flight_delay_predictions": "predict",
    "ml__feature_drift": "monitor",
}


def stage_of(step_key: str) -> str:
    """Benchmark stage of a Dagster step key (``bronze__flights`` -> ``bronze``)."""
    if step_key in STAGE_BY_STEP:
        return STAGE_BY_STEP[step_key]
    prefix = step_key.split("__", 1)[0]
    return prefix if prefix in ("bronze", "silver") else "other"


def instrument(timers: CallTimers) -> None:
    """Wrap the functions whose share of the step time is worth knowing (labels are what the report shows).

    Generic where the code under test moves fast: every public MLflow function and ``MlflowClient`` method, every
    function of ``lakehouse.plots``. Within one label family (text before ``:``) only the outermost call counts.
    """
    import dagster_mlflow.resources as dmr
    import mlflow.artifacts
    import mlflow.lightgbm
    from mlflow.tracking import MlflowClient

    from lakehouse import resources, storage
    from lakehouse.assets import silver as silver_assets
    from lakehouse.transforms import gold, silver, training

    timers.wrap(silver_assets, "conform", "compute: silver conform (incl. Pandera)")
    timers.wrap(silver, "failure_reasons", "pandera: validate (silver)")
    timers.wrap(gold, "flight_features", "compute: gold flight_features")
    timers.wrap(training, "train", "compute: LightGBM train")
    timers.wrap(training, "predict", "compute: LightGBM predict")
    try:
        from lakehouse.transforms import drift
        timers.wrap(drift, "drift_report", "compute: drift report (PSI, KS)")
    except ImportError:
        pass
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

    # every event of the run (steps, checks, materializations, run start/end), inside steps or not
    timers.wrap(SqliteEventLogStorage, "store_event", "dagster: event log writes (SQLite, whole run)")
    timers.wrap(storage, "table_metadata", "metadata: row count + schema + version scans")
    timers.wrap(storage, "metadata_table", "metadata: sample tables")
    try:
        from lakehouse import plots
        timers.wrap_all(plots, "reporting: matplotlib plots (PNG)")
    except ImportError:
        pass
    # MLflow: the resource's initialisation first (outermost), then the model log/load, then everything else.
    timers.wrap(resources, "ensure_experiment", "mlflow: resource init (store, experiment, run start)")
    timers.wrap(resources, "MlFlow", "mlflow: resource init (store, experiment, run start)")
    timers.wrap(mlflow.lightgbm, "log_model", "mlflow: log_model + register")
    timers.wrap(mlflow.lightgbm, "load_model", "mlflow: load_model")
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


def sanity_figures(result: dg.ExecuteInProcessResult | dg.ExecuteJobResult) -> dict:
    """Row counts and model figures from the materialization metadata (to check both sides did the same work)."""
    out: dict = {}
    for event in result.get_asset_materialization_events():
        m = event.materialization
        key = "_".join(m.asset_key.path)
        meta = {k: v.value for k, v in m.metadata.items()}
        if key.startswith("bronze_"):
            out[f"{key}_rows"] = meta.get("dagster/row_count")
        elif key.startswith("silver_"):
            out[f"{key}_rows"] = meta.get("dagster/row_count")
            out[f"{key}_quarantined"] = meta.get("rows_quarantined")
        elif key in ("gold_flight_features", "gold_route_daily_delays"):
            out[f"{key}_rows"] = meta.get("dagster/row_count")
        elif key == "ml_flight_delay_model":
            out.update(best_iteration=meta.get("best_iteration"), train_rows=meta.get("train_rows"),
                       valid_roc_auc=meta.get("valid_roc_auc"), test_roc_auc=meta.get("test_roc_auc"))
        elif key == "gold_flight_delay_predictions":
            out["predictions_rows"] = meta.get("rows_scored")
        elif key == "ml_feature_drift":
            out["max_psi"] = meta.get("max_psi")
    return out


EXECUTORS = {  # run config of the job's default executor (multi_or_in_process_executor) for each choice
    "in_process": None,
    "multiprocess": {"execution": {"config": {"multiprocess": {}}}},
    "forkserver": {"execution": {"config": {"multiprocess": {"start_method": {
        "forkserver": {"preload_modules": ["lakehouse.definitions"]}}}}}},
}


def medallion_job() -> dg.JobDefinition:
    """The ``medallion`` job wired to the ``LAKEHOUSE_*`` environment variables; module level so that
    ``dg.reconstructable`` can rebuild it in the step processes of the multiprocess executor."""
    return build_definitions(LakehouseSettings.from_env()).resolve_job_def("medallion")


def create_stores(work: Path, out: str) -> int:
    """Create, in ``work``, the persistent Dagster instance (SQLite run, event-log and schedule storage) and the
    MLflow SQLite store with the lakehouse's experiment, as the first run on a machine does (both run their
    schema migrations then); later runs reuse them. Writes ``{"kind": "stores", "stores_s": seconds}``."""
    from lakehouse.resources import ensure_experiment

    figures: dict = {"kind": "stores", "import_s": IMPORT_S}
    with timed(figures, "stores_s"):
        (work / "dagster").mkdir(parents=True, exist_ok=True)
        instance = dg.DagsterInstance.local_temp(tempdir=str(work / "dagster"))
        instance.get_runs_count()  # touch the run storage
        settings = LakehouseSettings.from_env(data_dir=work)  # the paths main() passes to the run
        ensure_experiment(settings.mlflow_tracking_uri, settings.mlflow_experiment, settings.mlflow_artifact_location)
        mlflow.MlflowClient().search_registered_models()  # touch the model registry store
    write_json(out, figures)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pipeline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--landing", required=True, help="landing zone root (read only)")
    parser.add_argument("--work", required=True, help="empty folder for the lake, MLflow and the Dagster instance")
    parser.add_argument("--out", required=True, help="JSON file for the measurements")
    parser.add_argument("--executor", choices=tuple(EXECUTORS), default="in_process",
                        help="in_process (as the tests and `lakehouse run`); multiprocess (Dagster's default for "
                             "runs launched by the webserver, sensors and schedules: a fresh process per step); "
                             "forkserver (multiprocess, steps forked from a server that preloaded "
                             "lakehouse.definitions)")
    parser.add_argument("--no-attribution", action="store_true", help="do not wrap functions to attribute time")
    parser.add_argument("--stores-only", action="store_true",
                        help="only create the Dagster instance and the MLflow store (with the experiment) in --work: "
                             "what the first run on a new machine does once")
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
        paths = {"LAKEHOUSE_DATA_DIR": str(work), "LAKEHOUSE_LANDING_DIR": str(Path(args.landing).resolve()),
                 "LAKEHOUSE_LAKE_DIR": str(work / "lake"),
                 "LAKEHOUSE_MLFLOW_URI": f"sqlite:///{work / 'mlflow' / 'mlflow.db'}",
                 "LAKEHOUSE_MLFLOW_ARTIFACTS": str(work / "mlflow" / "artifacts")}
        os.environ.update(paths)  # inherited by the step processes
        (work / "dagster").mkdir(parents=True, exist_ok=True)
        instance = dg.DagsterInstance.local_temp(tempdir=str(work / "dagster"))
        job = None if multiprocess else medallion_job()
    with ExitStack() as stack:
        with timed(figures, "run_s"):
            if multiprocess:
                result = stack.enter_context(dg.execute_job(dg.reconstructable(medallion_job), instance=instance,
                                                            run_config=EXECUTORS[args.executor]))
            else:
                result = job.execute_in_process(instance=instance)
        sampler.stop()
        if not result.success:
            raise SystemExit("the medallion run failed; see the log")
        clock = StepClock()
        step_times(instance, result.run_id, clock)
        checks = sanity_figures(result)
    write_json(args.out, {
        **figures,
        **clock.finish(sampler),
        "vm_hwm_bytes": vm_hwm_bytes(),
        "attribution": timers.totals,
        "attribution_missing": timers.missing,
        "checks": checks,
    })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
