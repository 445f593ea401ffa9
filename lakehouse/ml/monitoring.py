"""Drift monitoring: how far a month of flights moved from the data the champion model was trained on.

``ml/feature_drift`` compares, for every feature the champion uses, for the label ``is_late`` and for the
champion's own predicted probability (``prediction``):

* **reference**: the champion's training rows, i.e. the gold feature view **at the Delta version its training run
  recorded**, restricted to its training months (time travel, so later rewrites of gold do not move it);
* **current**: one calendar month of the current gold feature view: ``ml/feature_drift`` is partitioned by month
  (like the feature view and the predictions, and run with them: :mod:`lakehouse.ml.scoring` says which months).

Statistics, bins and thresholds are those of :mod:`lakehouse.ml.drift` (PSI with 10 reference-quantile
bins or one bin per category, stable < 0.10 <= moderate <= 0.25 < significant, after Siddiqi 2006; KS or
chi-square beside it). Each evaluation appends one row per column to the Delta table ``ml/feature_drift``, so
drift is kept over time; the asset metadata carries the headline numbers and two PNG plots, which are also logged
to the champion's MLflow run under ``drift/``.

The champion is loaded once per run as its registered MLflow pyfunc (the model the predictions use) and scores both
samples; the reference is read once per run (its training months' partitions at its recorded version), each month
from its own partition. A month is not evaluated again when the same champion version already evaluated it from
a feature view version at least the one that last wrote the month (a re-run without new data adds no rows); the
check then reports that evaluation again.

``month`` is computed but not *monitored*: as a calendar index its newest value lies outside the training months
by construction, so its PSI is always large and says nothing about the world changing.
"""

import tempfile
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import polars as pl

from lakehouse.metadata import asset_key, metadata_table, table_metadata
from lakehouse.ml import checks, drift, plots, training
from lakehouse.ml.assets import CHAMPION_KEY, FEATURES_KEY
from lakehouse.ml.registry import PREDICTION, RegisteredModel, load_champion, load_drift_reference, read_months
from lakehouse.partitions import MONTHS, month_of_key
from lakehouse.resources import LakehouseStorage, ModelRegistry, RetrainingPolicy
from lakehouse.tables import FEATURE_DRIFT, FLIGHT_FEATURES, Lake

DRIFT_KEY = asset_key(FEATURE_DRIFT)
DRIFT_EXEMPT = ["month"]
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


def monitored_columns(champion: RegisteredModel) -> list[str]:
    """The feature view's columns drift needs: the champion's features (its inputs), the label and ``flight_date``
    (only those are read: a sample of the training months costs their columns, not the view's)."""
    return ["flight_date", *champion.params["features"].split(","), training.LABEL]


def reference_sample(lake: Lake, champion: RegisteredModel, registry: ModelRegistry) -> tuple[pl.DataFrame, dict]:
    """The champion's training rows sampled to at most ``drift.MAX_SAMPLE_ROWS`` rows with a fixed seed
    (:func:`lakehouse.ml.drift.sample_rows`), with a ``prediction`` column (the champion's P(is_late), Float64);
    and the reference fields of :data:`EVALUATION_SCHEMA` plus ``reference_window_rows`` (rows before sampling).
    Read once per run, whatever the number of months evaluated.

    The sample its training run logged (:func:`lakehouse.ml.registry.log_drift_reference`) when there is one: a run
    then reads at most ``MAX_SAMPLE_ROWS`` rows, whatever the training window. Otherwise (a model trained before that
    artifact existed) the training months are read from gold at the Delta version the training run recorded
    (their ``flight_month`` partitions only) and sampled the same way: the same rows."""
    ref_version = int(champion.params["gold_flight_features_version"])
    train_months = champion.params["train_months"].split(",")
    window: dict = {
        "model_name": champion.name,
        "champion_version": champion.version,
        "reference_months": ",".join(train_months),
        "reference_features_version": ref_version,
    }
    logged = load_drift_reference(registry.client(), champion.run_id)
    if logged is not None:
        reference, recorded = logged
        window |= {
            "reference_start": date.fromisoformat(recorded["reference_start"]),
            "reference_end": date.fromisoformat(recorded["reference_end"]),
            "reference_window_rows": int(recorded["reference_window_rows"]),
            "reference_source": "logged sample",
        }
        return reference, window
    first_days = [date.fromisoformat(f"{m}-01") for m in train_months]
    reference = read_months(lake, first_days, ref_version, monitored_columns(champion))
    window |= {
        "reference_start": reference.get_column("flight_date").min(),
        "reference_end": reference.get_column("flight_date").max(),
        "reference_window_rows": reference.height,
        "reference_source": "training months",
    }
    reference = drift.sample_rows(reference)
    return reference.with_columns(pl.Series(PREDICTION, champion.predict(reference), dtype=pl.Float64)), window


def current_sample(lake: Lake, champion: RegisteredModel, month: date, version: int) -> tuple[pl.DataFrame, dict]:
    """One month of the gold feature view at ``version`` (its partition only), sampled and scored like
    :func:`reference_sample`; and the current fields of :data:`EVALUATION_SCHEMA` plus ``current_window_rows``."""
    current = read_months(lake, [month], version, monitored_columns(champion))
    window = {
        "current_month": f"{month:%Y-%m}",
        "current_start": current.get_column("flight_date").min(),
        "current_end": current.get_column("flight_date").max(),
        "current_features_version": version,
        "current_window_rows": current.height,
    }
    current = drift.sample_rows(current)
    return current.with_columns(pl.Series(PREDICTION, champion.predict(current), dtype=pl.Float64)), window


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


def previous_evaluation(
    history: pl.DataFrame, model_name: str, champion_version: int, month: date, written: int
) -> pl.DataFrame | None:
    """The rows of the latest evaluation in ``history`` (:func:`read_drift_history`) of ``champion_version`` on
    ``month`` made from a feature view version at least ``written`` (the version that last wrote the month), None
    when there is none: then the month is evaluated."""
    previous = history.filter(
        (pl.col("model_name") == model_name)
        & (pl.col("champion_version") == champion_version)
        & (pl.col("current_month") == f"{month:%Y-%m}")
        & (pl.col("current_features_version") >= written)
    )
    if previous.is_empty():
        return None
    return previous.filter(pl.col("evaluated_at") == pl.col("evaluated_at").max())


def _check(evaluation: pl.DataFrame, threshold: float) -> tuple[dg.AssetCheckResult, dict]:
    """The ``no_significant_drift`` result of one month's evaluation (its :data:`EVALUATION_SCHEMA` +
    ``drift.REPORT_SCHEMA`` rows) and its headline figures."""
    first = evaluation.row(0, named=True)
    monitored = evaluation.filter(pl.col("monitored")).sort("psi", descending=True)
    significant = monitored.filter(pl.col("psi") > threshold).get_column("column").to_list()
    worst_column: str | None = monitored.get_column("column")[0] if monitored.height else None
    worst_psi = float(monitored.get_column("psi")[0]) if monitored.height else 0.0
    figures = {
        "month": first["current_month"],
        "evaluation_id": first["evaluation_id"],
        "max_psi": worst_psi,
        "max_psi_column": worst_column,
        "significant": len(significant),
        "moderate": monitored.filter(pl.col("status") == "moderate").height,
    }
    result = checks.no_significant_drift(
        significant,
        worst_psi,
        threshold,
        max_psi_column=worst_column,
        monitored=monitored.height,
        reference_months=first["reference_months"],
        current_month=first["current_month"],
    )
    return result, figures


@dg.asset(
    key=DRIFT_KEY,
    deps=[FEATURES_KEY, CHAMPION_KEY],
    group_name="ml",
    partitions_def=MONTHS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"delta", "scipy"},
    pool="ml_feature_drift",  # one writer per table (dagster.yaml sets the pools' limit to 1)
    description=(
        "PSI (10 reference-quantile bins / one bin per category, missing values their own bin) and KS / "
        "chi-square per model feature, label and prediction, between the champion's training rows (gold at its "
        "recorded Delta version) and the partition's month; thresholds 0.10 / 0.25 after Siddiqi (2006). One row "
        "per column per month evaluated, appended to `ml/feature_drift`; a month already evaluated by the same "
        "champion on the same data is not evaluated again. Partitioned by month and run with the predictions by "
        "the `scoring_sensor` (new or rewritten months, and the newest month when the champion changes). Plots: "
        "the metadata entries `psi_by_column` (the run's newest month) and `psi_history` are PNGs; click [Show "
        "Markdown] to open one (also MLflow artifacts of the champion's run, under `drift/`). The check "
        "`no_significant_drift` (on the run's newest month) is a warning that is expected to be red when that month "
        "is in another season than the training months, and on the demo's slices (see the check's description)."
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
    champion = load_champion(registry)
    if champion is None:  # nothing to compare with yet; the retraining sensor trains the first model
        return dg.MaterializeResult(
            metadata={"status": "no champion model yet"},
            check_results=[checks.no_significant_drift([], None, None, status="no champion model yet")],
        )
    version = lake.version(FLIGHT_FEATURES)  # pinned: every month of this run reads this version
    written = {month: v for month, (v, _) in lake.partition_commits(FLIGHT_FEATURES).items()}
    history = read_drift_history(lake)
    features = champion.params["features"].split(",")
    evaluated_at = datetime.now(UTC)
    reference: pl.DataFrame | None = None
    reference_window: dict = {}
    new: list[pl.DataFrame] = []
    months: list[tuple[str, pl.DataFrame, bool]] = []  # (key, evaluation rows, evaluated by this run)
    for key in context.partition_keys:
        month = month_of_key(key)
        if month not in written:
            context.log.info(f"{key}: no flights in gold/flight_features; nothing to evaluate")
            continue
        previous = previous_evaluation(history, champion.name, champion.version, month, written[month])
        if previous is not None:
            context.log.info(
                f"{key}: already evaluated by champion v{champion.version} ({previous['evaluation_id'][0]})"
            )
            months.append((key, previous, False))
            continue
        if reference is None:
            reference, reference_window = reference_sample(lake, champion, registry)
        current, current_window = current_sample(lake, champion, month, version)
        report = evaluate_drift(reference, current, features)
        window = {**reference_window, **current_window}
        header = pl.DataFrame(
            [
                {
                    "evaluation_id": f"{context.run.run_id}/{month:%Y-%m}",
                    "evaluated_at": evaluated_at,
                    **{k: window[k] for k in EVALUATION_SCHEMA if k in window},
                }
            ],
            schema=EVALUATION_SCHEMA,
        )
        rows = header.join(report, how="cross")
        new.append(rows)
        months.append((key, rows, True))
    if new:
        lake.append(FEATURE_DRIFT, pl.concat(new))
    if not months:
        status = "no month of this run has flights in gold/flight_features"
        return dg.MaterializeResult(
            metadata={"status": status},
            check_results=[checks.no_significant_drift([], None, None, status=status)],
        )
    summaries = []
    for key, rows, fresh in months:
        _, figures = _check(rows, retraining_policy.drift_psi)
        summaries.append({"partition": key, "evaluated": "now" if fresh else "before", **figures})
        # each month's materialization carries its own figures (max_psi charted per month on the Plots tab)
        own = {("evaluated_month" if k == "month" else k): v for k, v in figures.items() if v is not None}
        context.add_asset_metadata({**own, "evaluated": summaries[-1]["evaluated"]}, partition_key=key)
    newest_key, newest, newest_fresh = months[-1]
    check, figures = _check(newest, retraining_policy.drift_psi)
    metadata: dict = {
        "champion_version": champion.version,
        "months_evaluated": sum(fresh for _, _, fresh in months),
        "months_already_evaluated": sum(not fresh for _, _, fresh in months),
        "months": metadata_table(pl.DataFrame(summaries)),
        # the figures of the run's newest month (max_psi is charted over time on the asset's Plots tab)
        **{("newest_month" if k == "month" else k): v for k, v in figures.items() if v is not None},
        "thresholds": "PSI < 0.10 stable, 0.10-0.25 moderate, > 0.25 significant (Siddiqi 2006)",
    }
    if new:
        metadata |= table_metadata(lake, FEATURE_DRIFT)
        by_column = {r["column"]: r for r in newest.iter_rows(named=True)}
        metadata |= {
            "label_psi": float(by_column[training.LABEL]["psi"]),
            "prediction_psi": float(by_column[PREDICTION]["psi"]),
            "drift": metadata_table(
                newest.select(
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
        }
        metadata |= _plots(lake, registry, champion, newest, evaluated_at) if newest_fresh else {}
    context.log.info(
        f"{newest_key}: max PSI {figures['max_psi']:.3f} ({figures['max_psi_column']}); "
        f"{figures['significant']} significant column(s)"
    )
    return dg.MaterializeResult(metadata=metadata, check_results=[check])


def _plots(
    lake: Lake, registry: ModelRegistry, champion: RegisteredModel, evaluation: pl.DataFrame, evaluated_at: datetime
) -> dict:
    """PSI by column of one month's ``evaluation`` and the champion's PSI history, as metadata entries (PNGs in
    Markdown) and as artifacts of the champion's MLflow run under ``drift/``."""
    first = evaluation.row(0, named=True)
    months = first["reference_months"].split(",")
    title = f"{first['current_month']} vs training {months[0]}..{months[-1]} (v{champion.version})"
    monitored = evaluation.filter(pl.col("monitored")).sort("psi", descending=True)
    history = read_drift_history(lake).filter(pl.col("model_name") == champion.name)
    pngs = {
        "psi_by_column": plots.psi_bars(evaluation, drift.PSI_MODERATE, drift.PSI_SIGNIFICANT, f"PSI: {title}"),
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
            file = Path(tmp) / f"{name}_{first['current_month']}_{evaluated_at:%Y%m%dT%H%M%S}.png"
            file.write_bytes(png)
            registry.client().log_artifact(champion.run_id, str(file), "drift")
    return {
        "psi_by_column": dg.MetadataValue.md(plots.markdown_image(pngs["psi_by_column"], "PSI by column")),
        "psi_history": dg.MetadataValue.md(plots.markdown_image(pngs["psi_history"], "PSI over time")),
    }


monitoring_assets = [feature_drift]
