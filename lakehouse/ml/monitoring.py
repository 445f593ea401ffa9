"""Drift monitoring: how far the newest flights moved from the data the champion model was trained on.

``ml/feature_drift`` compares, for every feature the champion uses, for the label ``is_late`` and for the
champion's own predicted probability (``prediction``):

* **reference**: the champion's training rows, i.e. the gold feature view **at the Delta version its training run
  recorded**, restricted to its training months (time travel, so later rewrites of gold do not move it);
* **current**: the newest calendar month of the current gold feature view.

Statistics, bins and thresholds are those of :mod:`lakehouse.ml.drift` (PSI with 10 reference-quantile
bins or one bin per category, stable < 0.10 <= moderate <= 0.25 < significant, after Siddiqi 2006; KS or
chi-square beside it). Each evaluation appends one row per column to the Delta table ``ml/feature_drift``, so
drift is kept over time; the asset metadata carries the headline numbers and two PNG plots, which are also logged
to the champion's MLflow run under ``drift/``.

The champion is loaded once per evaluation as its registered MLflow pyfunc (the model the predictions use) and
scores both samples. An evaluation is skipped when the same champion version was already evaluated on the same
gold Delta version (a re-run without new data adds no rows); the check then reports that evaluation again.

``month`` is computed but not *monitored*: as a calendar index its newest value lies outside the training months
by construction, so its PSI is always large and says nothing about the world changing.
"""

import tempfile
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl

from lakehouse.automation import follow_upstream
from lakehouse.metadata import asset_key, metadata_table, table_metadata
from lakehouse.ml import checks, drift, plots, training
from lakehouse.ml.assets import CHAMPION_KEY, FEATURES_KEY
from lakehouse.ml.registry import CHAMPION, RegisteredModel, get_alias_version, load_champion, read_features
from lakehouse.resources import LakehouseStorage, ModelRegistry, RetrainingPolicy
from lakehouse.tables import FEATURE_DRIFT, FLIGHT_FEATURES, Lake

DRIFT_KEY = asset_key(FEATURE_DRIFT)
DRIFT_EXEMPT = ["month"]
PREDICTION = "prediction"
_YM = pl.col("flight_date").dt.strftime("%Y-%m")

EVALUATION_SCHEMA = pl.Schema(
    {
        "evaluation_id": pl.String(),  # the Dagster run id
        "evaluated_at": pl.Datetime("us", "UTC"),
        "model_name": pl.String(),
        "champion_version": pl.Int64(),
        "reference_months": pl.String(),  # comma-separated YYYY-MM: the champion's training months
        "reference_start": pl.Date(),
        "reference_end": pl.Date(),
        "reference_features_version": pl.Int64(),  # gold/flight_features Delta version the champion trained on
        "current_month": pl.String(),  # YYYY-MM: the newest month of the current gold features
        "current_start": pl.Date(),
        "current_end": pl.Date(),
        "current_features_version": pl.Int64(),
    }
)


def drift_samples(lake: Lake, champion: RegisteredModel) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """Reference and current samples (see module docstring; at most ``drift.MAX_SAMPLE_ROWS`` rows each, drawn
    with a fixed seed by :func:`lakehouse.ml.drift.sample_rows`), each with a ``prediction`` column (the
    champion's P(is_late), Float64), and the window description (:data:`EVALUATION_SCHEMA` fields, plus the row
    counts before sampling, ``reference_window_rows`` and ``current_window_rows``). The gold table is read once
    when the champion was trained on its current version."""
    ref_version = int(champion.params["gold_flight_features_version"])
    train_months = champion.params["train_months"].split(",")
    features, cur_version = read_features(lake)
    reference = features if ref_version == cur_version else read_features(lake, version=ref_version)[0]
    reference = reference.filter(_YM.is_in(train_months))
    newest = features.select(_YM.max()).item()
    current = features.filter(newest == _YM)
    del features
    window = {
        "model_name": champion.name,
        "champion_version": champion.version,
        "reference_months": ",".join(train_months),
        "reference_start": reference.get_column("flight_date").min(),
        "reference_end": reference.get_column("flight_date").max(),
        "reference_features_version": ref_version,
        "current_month": newest,
        "current_start": current.get_column("flight_date").min(),
        "current_end": current.get_column("flight_date").max(),
        "current_features_version": cur_version,
        "reference_window_rows": reference.height,
        "current_window_rows": current.height,
    }
    reference, current = (drift.sample_rows(f) for f in (reference, current))
    reference = reference.with_columns(pl.Series(PREDICTION, champion.predict(reference), dtype=pl.Float64))
    current = current.with_columns(pl.Series(PREDICTION, champion.predict(current), dtype=pl.Float64))
    return reference, current, window


def evaluate_drift(reference: pl.DataFrame, current: pl.DataFrame, features: list[str]) -> pl.DataFrame:
    """:func:`lakehouse.ml.drift.drift_report` over the model's ``features``, the label and the
    prediction, with :data:`DRIFT_EXEMPT` reported but not monitored."""
    categorical = [c for c in features if c in training.CATEGORICAL]
    numeric = [c for c in features if c not in training.CATEGORICAL]
    kinds = {training.LABEL: "label", PREDICTION: "prediction"}
    return drift.drift_report(
        reference,
        current,
        numeric=[*numeric, PREDICTION],
        categorical=[*categorical, training.LABEL],
        kinds=kinds,
        exempt=DRIFT_EXEMPT,
    )


def read_drift_history(lake: Lake) -> pl.DataFrame:
    """All evaluations in ``ml/feature_drift`` (empty frame when none yet)."""
    if not lake.exists(FEATURE_DRIFT):
        return pl.DataFrame(schema={**EVALUATION_SCHEMA, **drift.REPORT_SCHEMA})
    return lake.read(FEATURE_DRIFT).sort("evaluated_at", "column")


def previous_evaluation(lake: Lake, registry: ModelRegistry) -> pl.DataFrame | None:
    """The rows of the latest evaluation of the current champion on the current gold version (None when there is
    none: then the drift asset evaluates)."""
    mv = get_alias_version(registry.client(), registry.model_name, CHAMPION)
    if mv is None or not lake.exists(FLIGHT_FEATURES):
        return None
    previous = read_drift_history(lake).filter(
        (pl.col("model_name") == registry.model_name)
        & (pl.col("champion_version") == int(mv.version))
        & (pl.col("current_features_version") == lake.version(FLIGHT_FEATURES))
    )
    if previous.is_empty():
        return None
    return previous.filter(pl.col("evaluated_at") == pl.col("evaluated_at").max())


@dg.asset(
    key=DRIFT_KEY,
    deps=[FEATURES_KEY, CHAMPION_KEY],
    group_name="ml",
    kinds={"delta", "scipy"},
    pool="ml_feature_drift",  # one writer per table (dagster.yaml sets the pools' limit to 1)
    automation_condition=follow_upstream(FEATURES_KEY),
    description=(
        "PSI (10 reference-quantile bins / one bin per category, missing values their own bin) and KS / "
        "chi-square per model feature, label and prediction, between the champion's training rows (gold at its "
        "recorded Delta version) and the newest month; thresholds 0.10 / 0.25 after Siddiqi (2006). One row per "
        "column per evaluation appended to `ml/feature_drift`; skipped when the same champion was already evaluated "
        "on the same gold version. Follows new features and new champions. Plots: the metadata entries "
        "`psi_by_column` and `psi_history` of a materialization (Overview → Metadata, or Events) are PNGs; click "
        "[Show Markdown] to open one (also MLflow artifacts of the champion's run, under `drift/`). The check "
        "`no_significant_drift` is a warning that is expected to be red when the newest month is in another season "
        "than the training months, and on the demo's slices (see the check's description)."
    ),
    check_specs=[checks.drift_check_spec(DRIFT_KEY)],
)
def feature_drift(
    context: dg.AssetExecutionContext,
    storage: LakehouseStorage,
    registry: ModelRegistry,
    retraining_policy: RetrainingPolicy,
) -> dg.MaterializeResult:
    lake = storage.lake
    previous = previous_evaluation(lake, registry)
    if previous is not None:  # same champion, same gold version: nothing new to evaluate
        first = previous.row(0, named=True)
        monitored = previous.filter(pl.col("monitored")).sort("psi", descending=True)
        significant = monitored.filter(pl.col("psi") > retraining_policy.drift_psi).get_column("column").to_list()
        max_psi = float(monitored.get_column("psi").max() or 0.0)  # type: ignore[arg-type]
        status = (
            f"already evaluated: champion v{first['champion_version']} on gold v{first['current_features_version']} "
            f"(evaluation {first['evaluation_id']} at {first['evaluated_at']:%Y-%m-%d %H:%M:%S}); nothing appended"
        )
        context.log.info(status)
        return dg.MaterializeResult(
            metadata={
                "status": status,
                "champion_version": first["champion_version"],
                "evaluation_id": first["evaluation_id"],
                "max_psi": max_psi,
                "significant_columns": ", ".join(significant) or "none",
            },
            check_results=[
                checks.no_significant_drift(
                    significant,
                    max_psi,
                    retraining_policy.drift_psi,
                    max_psi_column=monitored.get_column("column")[0] if monitored.height else None,
                    monitored=monitored.height,
                    reference_months=first["reference_months"],
                    current_month=first["current_month"],
                )
            ],
        )
    champion = load_champion(registry)
    if champion is None:  # nothing to compare with yet; the sensor trains the first model
        return dg.MaterializeResult(
            metadata={"status": "no champion model yet"},
            check_results=[checks.no_significant_drift([], None, None, status="no champion model yet")],
        )
    reference, current, window = drift_samples(lake, champion)
    report = evaluate_drift(reference, current, champion.params["features"].split(","))
    evaluated_at = datetime.now(UTC)
    header = pl.DataFrame(
        [
            {
                "evaluation_id": context.run.run_id,
                "evaluated_at": evaluated_at,
                **{k: window[k] for k in EVALUATION_SCHEMA if k in window},
            }
        ],
        schema=EVALUATION_SCHEMA,
    )
    rows = header.join(report, how="cross")
    lake.append(FEATURE_DRIFT, rows)

    monitored = report.filter(pl.col("monitored"))
    worst = monitored.row(0, named=True)
    significant = monitored.filter(pl.col("psi") > retraining_policy.drift_psi).get_column("column").to_list()
    moderate = monitored.filter(pl.col("status") == "moderate").get_column("column").to_list()
    history = read_drift_history(lake).filter(pl.col("model_name") == champion.name)
    title = (
        f"{window['current_month']} vs training {window['reference_months'].split(',')[0]}.."
        f"{window['reference_months'].split(',')[-1]} (v{champion.version})"
    )
    pngs = {
        "psi_by_column": plots.psi_bars(report, drift.PSI_MODERATE, drift.PSI_SIGNIFICANT, f"PSI: {title}"),
        "psi_history": plots.psi_history(
            history,
            [*monitored.filter(pl.col("kind") == "feature").head(3).get_column("column"), training.LABEL, PREDICTION],
            drift.PSI_SIGNIFICANT,
            "PSI over time: top 3 features, label, prediction",
        ),
    }
    registry.activate()
    with tempfile.TemporaryDirectory() as tmp:
        for name, png in pngs.items():
            file = Path(tmp) / f"{name}_{window['current_month']}_{evaluated_at:%Y%m%dT%H%M%S}.png"
            file.write_bytes(png)
            registry.client().log_artifact(champion.run_id, str(file), "drift")
    by_column = {r["column"]: r for r in report.iter_rows(named=True)}
    context.log.info(f"max PSI {worst['psi']:.3f} ({worst['column']}); significant: {significant or 'none'}")
    return dg.MaterializeResult(
        metadata={
            **table_metadata(lake, FEATURE_DRIFT),
            "champion_version": champion.version,
            "reference": f"{window['reference_months']} (gold v{window['reference_features_version']}, "
            f"{window['reference_window_rows']} rows, sample of {reference.height})",
            "current": f"{window['current_month']} (gold v{window['current_features_version']}, "
            f"{window['current_window_rows']} rows, sample of {current.height})",
            "max_psi": float(worst["psi"]),
            "max_psi_column": worst["column"],
            "significant_columns": ", ".join(significant) or "none",
            "moderate_columns": ", ".join(moderate) or "none",
            "label_psi": float(by_column[training.LABEL]["psi"]),
            "prediction_psi": float(by_column[PREDICTION]["psi"]),
            "thresholds": "PSI < 0.10 stable, 0.10-0.25 moderate, > 0.25 significant (Siddiqi 2006)",
            "drift": metadata_table(
                report.select(
                    "column",
                    "kind",
                    "monitored",
                    "psi",
                    "status",
                    "test",
                    "test_statistic",
                    "test_pvalue",
                    "reference_missing_share",
                    "current_missing_share",
                    "reference_mean",
                    "current_mean",
                ),
                limit=40,
            ),
            "psi_by_column": dg.MetadataValue.md(plots.markdown_image(pngs["psi_by_column"], "PSI by column")),
            "psi_history": dg.MetadataValue.md(plots.markdown_image(pngs["psi_history"], "PSI over time")),
        },
        check_results=[
            checks.no_significant_drift(
                significant,
                float(worst["psi"]),
                retraining_policy.drift_psi,
                max_psi_column=worst["column"],
                monitored=monitored.height,
                reference_months=window["reference_months"],
                reference_rows=window["reference_window_rows"],
                current_month=window["current_month"],
                current_rows=window["current_window_rows"],
            )
        ],
    )


monitoring_assets = [feature_drift]
