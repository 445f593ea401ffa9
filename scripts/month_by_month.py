"""Replay 2013 month by month on the real data, as the sensors do, and print the champion/challenger table of
README.md ("Models that keep themselves fresh", *On the full real data*).

    uv run python -m scripts.month_by_month [--work DIR] [--max-day N]

1. January-June are landed and the whole graph is materialized once: the first model becomes champion (holdout
   June) and drift compares June with its training months.
2. Then for each month from July to December: the month is landed; bronze -> silver -> gold, the predictions and
   the drift evaluation follow (what the landing sensor and declarative automation do; the model is never
   automated); the ``retraining_sensor`` is evaluated once and its run request (model, predictions, drift, with
   the request's tags) is executed, as the daemon would launch it.

One row per holdout month: the sensor's reason, the challenger's and champion's ROC-AUC on that month, the
decision (``ml/model_decisions``), and the drift of that month against the champion *before* retraining (label
PSI, prediction PSI, largest PSI of a monitored column). Everything runs in this process on a temporary lake,
a temporary Dagster instance and a temporary MLflow store (about 3 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import dagster as dg
import polars as pl

from lakehouse.definitions import build_definitions
from lakehouse.landing import land
from lakehouse.ml.assets import MODEL_KEY
from lakehouse.ml.monitoring import PREDICTION, read_drift_history
from lakehouse.ml.registry import RETRAIN_REASON_TAG, decisions
from lakehouse.ml.sensors import retraining_sensor
from lakehouse.ml.training import LABEL
from lakehouse.pipeline import materialize_medallion
from lakehouse.resources import build_resources
from lakehouse.settings import Settings
from lakehouse.tables import Lake

FIRST_MONTHS = range(1, 7)
LATER_MONTHS = range(7, 13)


def drift_of(lake: Lake, month: str) -> dict:
    """Label PSI, prediction PSI and the largest monitored PSI of the first drift evaluation of ``month``."""
    history = read_drift_history(lake).filter(pl.col("current_month") == month)
    first = history.filter(pl.col("evaluated_at") == pl.col("evaluated_at").min())  # before retraining
    psi = dict(first.select("column", "psi").iter_rows())
    worst = first.filter(pl.col("monitored")).sort("psi", descending=True).row(0, named=True)
    return {
        "label_psi": psi[LABEL],
        "prediction_psi": psi[PREDICTION],
        "max_psi": f"{worst['psi']:.2f} (`{worst['column']}`)",
    }


def replay(work: Path, max_day: int | None) -> list[dict]:
    """Run the replay of the module docstring in ``work``; return one dict per holdout month."""
    settings = Settings.from_env(work)
    resources = build_resources(settings)
    lake = Lake(settings.lake_dir)
    sensor_resources = {k: v for k, v in resources.items() if k != "mlflow"}  # what retraining_sensor takes
    defs = build_definitions(settings)
    rows = []
    with dg.instance_for_test() as instance:
        t0 = time.perf_counter()
        land(settings.landing_dir, months=FIRST_MONTHS, max_day=max_day)
        first = materialize_medallion(defs, instance, lake)
        assert first.success, "the first materialization failed"
        rows.append({"reason": "(first run)", "seconds": time.perf_counter() - t0})
        for month in LATER_MONTHS:
            t0 = time.perf_counter()
            land(settings.landing_dir, months=[month], sources=["flights", "weather"], max_day=max_day)
            follow = materialize_medallion(
                defs, instance, lake, selection=dg.AssetSelection.all() - dg.AssetSelection.assets(MODEL_KEY)
            )
            assert follow.success, f"bronze -> gold -> predictions -> drift failed for month {month}"
            tick = retraining_sensor(dg.build_sensor_context(instance=instance, resources=sensor_resources))
            if not isinstance(tick, dg.SensorResult) or not tick.run_requests:
                rows.append(
                    {"reason": f"none ({getattr(tick, 'skip_message', tick)})", "seconds": time.perf_counter() - t0}
                )
                continue
            request = tick.run_requests[0]
            materialize_medallion(
                defs, instance, lake, selection=request.asset_selection, tags=request.tags
            )  # a refused challenger fails its check
            rows.append({"reason": request.tags[RETRAIN_REASON_TAG], "seconds": time.perf_counter() - t0})
    trained = [r for r in rows if not r["reason"].startswith("none")]  # one decision per model run, in order
    for row, decision in zip(trained, decisions(lake).iter_rows(named=True), strict=True):
        row.update(decision)
        row.update(drift_of(lake, decision["holdout_month"]))
    return rows


def table(rows: list[dict]) -> str:
    """The rows as the Markdown table of README.md."""
    out = [
        "| holdout | reason | challenger ROC-AUC | champion ROC-AUC | Δ | decision | label PSI | prediction PSI "
        "| max monitored PSI |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "holdout_month" not in r:
            out.append(f"| - | {r['reason']} | | | | | | | |")
            continue
        champion = "–" if r["champion_score"] is None else f"{r['champion_score']:.4f}"
        delta = "–" if r["difference"] is None else f"{r['difference']:+.4f}".replace("-", "−")
        decision = {"first_champion": "first champion", "promoted": "promoted", "refused": "refused"}[r["outcome"]]
        if r["outcome"] == "promoted" and r["difference"] < 0:
            decision = "promoted (within margin)"
        out.append(
            f"| {r['holdout_month']} | {r['reason']} | {r['challenger_score']:.4f} | {champion} | {delta} | "
            f"{decision} | {r['label_psi']:.3f} | {r['prediction_psi']:.3f} | {r['max_psi']} |"
        )
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.month_by_month", description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", help="empty folder for landing zone, lake and MLflow (default: a temporary one)")
    parser.add_argument("--max-day", type=int, help="keep only days <= N of each month (default: all)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lakehouse-months-") as tmp:
        rows = replay(Path(args.work or tmp).resolve(), args.max_day)
    print(table(rows))
    print(
        "\nseconds per step (first run, then each month: automation + sensor + retraining): "
        + ", ".join(f"{r['seconds']:.1f}" for r in rows)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
