"""ML assets: the LightGBM delay model as champion/challenger in the MLflow registry, and the champion's predictions.

How a model becomes the one that scores flights:

1. ``ml/flight_delay_model`` trains a **challenger** on the gold feature view read at one Delta version (time
   split: train all months but the last two, validate the second-to-last, hold out the newest month; see
   :mod:`lakehouse.ml.training`), logs it to MLflow as a self-contained pyfunc (:mod:`lakehouse.ml.model`) with
   its training data as dataset inputs, registers it as a new version of ``flight_delay_lgbm`` with the alias
   ``challenger``, scores the current **champion** (alias ``champion``) on the **same holdout** (the newest
   month, which neither was trained on) and records the gate's decision: asset metadata, tags on the MLflow
   model version and run, and a row of the Delta table ``ml/model_decisions``. It never moves ``champion``.
2. The blocking asset check ``challenger_not_worse`` (:mod:`lakehouse.ml.checks`) is the gate: it passes when
   the challenger's holdout ROC-AUC is at least the champion's minus the model's ``max_roc_auc_drop`` config
   (0.005; see :func:`lakehouse.ml.training.decide_promotion`), and for the first model.
3. ``ml/champion`` (downstream of the model) moves the ``champion`` alias to the admitted challenger and records
   that it did (:func:`lakehouse.ml.registry.promote`). A **refused** challenger fails the blocking check: the run
   is marked failed and ``ml/champion``, the predictions and drift steps of that run do not execute, so the alias
   and the predictions stay untouched (``ml/champion`` would not promote a refused challenger anyway: it acts
   only on an admitted verdict in ``ml/model_decisions``).
4. ``gold/flight_delay_predictions`` (downstream of ``ml/champion``, partitioned by month like the feature view)
   scores with the version behind ``models:/flight_delay_lgbm@champion``, loaded once as its pyfunc; which months
   to (re)score is :mod:`lakehouse.ml.scoring`'s rule (a new champion re-scores the newest month).

Idempotent training: when the content of the training window (:func:`lakehouse.ml.registry.data_fingerprint`),
the code version and the training settings are those the current champion was trained with, the model step
records ``outcome: unchanged`` in its metadata and on its MLflow run, trains and registers nothing, and writes no
decision row (there was no challenger to decide on); its gate check passes, ``ml/champion`` keeps the champion.
``force_retrain`` (Launchpad) trains anyway.

Reproducibility: every training records the Delta versions it read (gold features, and silver flights, weather,
planes for lineage), the features, LightGBM parameters, seed, boosting rounds and code version, in MLflow
params and in ``training_config.json``; :func:`reproduce` retrains from exactly that and gets the same metrics.
"""

import os
from datetime import UTC, datetime

import dagster as dg
import mlflow
import polars as pl
from dagster_mlflow import end_mlflow_on_run_finished
from pydantic import Field

from lakehouse.automation import MODEL_FRESHNESS, follow_upstream
from lakehouse.metadata import asset_key, metadata_table
from lakehouse.ml import checks, plots, scoring, training
from lakehouse.ml.dask_training import TRAINING_VARIABLE, train_from_env
from lakehouse.ml.registry import (
    CHAMPION,
    CONFIG_ARTIFACT,
    DECISION_SCHEMA,
    RETRAIN_REASON_TAG,
    SEGMENTS_ARTIFACT,
    ChampionMoved,
    NoChampion,
    RegisteredModel,
    Unchanged,
    code_version,
    compare_with_champion,
    data_fingerprint,
    decision_record,
    decision_tags,
    drift_reference,
    lineage_versions,
    load_champion,
    log_drift_reference,
    log_pngs,
    log_pyfunc,
    log_training_data,
    mlflow_params,
    promote,
    read_months,
    read_training_split,
    register,
    segment_metrics,
    split_metrics,
    split_scores,
    training_config,
    training_fingerprint,
    training_settings,
    unchanged_champion,
)
from lakehouse.partitions import MONTHS, month_of_key
from lakehouse.resources import LakehouseStorage, ModelRegistry
from lakehouse.storage import WriteBehind
from lakehouse.tables import FLIGHT_FEATURES, MODEL_DECISIONS, PREDICTIONS

MODEL_KEY = dg.AssetKey(["ml", "flight_delay_model"])  # lives in the MLflow registry, not in the lake
CHAMPION_KEY = dg.AssetKey(["ml", "champion"])  # the MLflow alias flight_delay_lgbm@champion
FEATURES_KEY = asset_key(FLIGHT_FEATURES)
PREDICTIONS_KEY = asset_key(PREDICTIONS)
MODEL_POOL = "ml_flight_delay_model"  # training and promotion one at a time: the champion is read, then moved
_P = training.DEFAULT_PARAMS


class ModelConfig(dg.Config):
    """Hyperparameters, seed, promotion margin and idempotency of one training (editable in the Launchpad).

    Defaults are :data:`lakehouse.ml.training.DEFAULT_PARAMS` (why each value: that module's comments).
    """

    learning_rate: float = Field(default=_P["learning_rate"], description="LightGBM shrinkage rate.")
    num_leaves: int = Field(default=_P["num_leaves"], description="Maximum leaves per tree.")
    min_data_in_leaf: int = Field(default=_P["min_data_in_leaf"], description="Minimum flights per leaf.")
    feature_fraction: float = Field(default=_P["feature_fraction"], description="Share of features per tree.")
    bagging_fraction: float = Field(default=_P["bagging_fraction"], description="Share of rows per bagging round.")
    lambda_l2: float = Field(default=_P["lambda_l2"], description="L2 regularisation.")
    num_boost_round: int = Field(default=training.NUM_BOOST_ROUND, description="Maximum boosting rounds.")
    early_stopping_rounds: int = Field(
        default=training.EARLY_STOPPING_ROUNDS,
        description="Stop after this many rounds without a better validation loss.",
    )
    seed: int = Field(default=42, description="Random seed (bagging, feature fraction).")
    train_window_months: int = Field(
        default=0,
        ge=0,
        description="Training months read besides the validation and test months (the newest ones): 0 reads every "
        "month of the feature view, so a training's cost grows with the lake; N > 0 reads the newest N + 2 months "
        "only (their Delta partitions), so it grows with the window. Every month fits in memory up to 30x the "
        "real data on 23.5 GiB; at 100x (33.7 M flights) the training columns alone take ~11 GiB: use a window "
        "(BENCHMARKS.md).",
    )
    max_roc_auc_drop: float = Field(
        default=training.MAX_ROC_AUC_DROP,
        description="Champion/challenger margin: the challenger is promoted when its holdout ROC-AUC is at least "
        "the champion's minus this (0.005 ~ 1.5 standard errors of ROC-AUC on a month of flights).",
    )
    force_retrain: bool = Field(
        default=False,
        description="Train and register a challenger even when the champion was trained on the same data "
        "content, code version and settings (otherwise the step records 'unchanged' and registers nothing).",
    )

    def params(self) -> dict[str, float | int]:
        """The LightGBM parameters this config overrides."""
        return {
            k: getattr(self, k)
            for k in (
                "learning_rate",
                "num_leaves",
                "min_data_in_leaf",
                "feature_fraction",
                "bagging_fraction",
                "lambda_l2",
            )
        }


MODEL_DESCRIPTION = (
    "LightGBM classifier of `is_late` (arrives > 15 min late, cancelled or diverted), trained as a **challenger** "
    "on `gold/flight_features` at one Delta version (train: all months but the last two; valid: the "
    "second-to-last; holdout: the newest). Logged as a self-contained MLflow pyfunc (its own categorical "
    "encoding, a signature and an input example) and registered as a new version with alias `challenger`; the "
    "current `champion` is scored on the same holdout and the decision recorded. The blocking check "
    "`challenger_not_worse` is the gate (holdout ROC-AUC at least the champion's minus 0.005); `ml/champion` "
    "moves the alias. Unchanged data content, code and settings: nothing is trained (`force_retrain` to train "
    "anyway). Not automated: the `retraining_sensor` requests it on new labelled data, drift or a failed "
    "freshness policy. Plots (ROC and calibration of challenger and champion on the holdout, feature importance): "
    "the metadata entries `roc_holdout`, `calibration_holdout` and `feature_importance` of a materialization "
    "(Overview → Metadata, or Events) are PNGs: click [Show Markdown] to open one; they are also MLflow artifacts "
    "of the training run, under `plots/`. The warning `test_roc_auc_floor` is expected to be red on the demo's "
    "small slices (its description says why)."
)


def _cost_text(window: int, months: int) -> str:
    """How the training's cost grows, for its metadata."""
    if window == 0:
        return (
            f"grows with the lake: every month of the feature view is read ({months} months; set "
            "train_window_months to bound it)"
        )
    return f"grows with the window, not the lake: the newest {months} months are read (train_window_months={window})"


def _unchanged_result(
    context: dg.AssetExecutionContext,
    unchanged: Unchanged,
    name: str,
    reason: str,
    fingerprint: str,
    data_digest: str,
    features_version: int,
) -> dg.MaterializeResult:
    """The model step when the champion already is this training: record it, register nothing."""
    text = (
        f"unchanged: {name}@{CHAMPION} v{unchanged.version} was trained on the same data content, code version and "
        "settings; nothing trained or registered (force_retrain to train anyway)"
    )
    tags = {"lakehouse.outcome": "unchanged", "lakehouse.champion_version": str(unchanged.version)}
    mlflow.set_tags({**tags, RETRAIN_REASON_TAG: reason})
    mlflow.end_run()
    context.log.info(text)
    test_roc_auc = unchanged.metrics.get("test_roc_auc")
    meta = {"outcome": "unchanged", "champion_version": unchanged.version}
    return dg.MaterializeResult(
        metadata={
            "decision": dg.MetadataValue.text(text),
            "outcome": "unchanged",
            "registered": False,
            "retrain_reason": reason,
            "registered_model": name,
            "model_version": unchanged.version,
            "champion_version": unchanged.version,
            "champion_mlflow_run_id": unchanged.run_id,
            "training_fingerprint": fingerprint,
            "data_fingerprint": data_digest,
            "gold_flight_features_version": features_version,
            **({"test_roc_auc": float(test_roc_auc)} if test_roc_auc is not None else {}),
        },
        check_results=[
            checks.challenger_unchanged(text, meta),
            checks.roc_auc_floor(float("nan") if test_roc_auc is None else float(test_roc_auc)),
        ],
    )


@dg.asset(
    key=MODEL_KEY,
    deps=[FEATURES_KEY],
    group_name="ml",
    kinds={"lightgbm", "mlflow"},
    # mlflow is dagster-mlflow's function-style resource, which cannot be mixed with resource parameters
    required_resource_keys={"mlflow", "storage", "registry"},
    hooks={end_mlflow_on_run_finished},
    pool=MODEL_POOL,
    freshness_policy=MODEL_FRESHNESS,
    description=MODEL_DESCRIPTION,
    check_specs=checks.model_check_specs(MODEL_KEY),
)
def flight_delay_model(context: dg.AssetExecutionContext, config: ModelConfig) -> dg.MaterializeResult:
    lake = context.resources.storage.lake
    registry: ModelRegistry = context.resources.registry
    mlf = context.resources.mlflow  # dagster-mlflow: an MLflow run tagged with this Dagster run's id
    name = registry.model_name
    reason = context.run.tags.get(RETRAIN_REASON_TAG, "manual")
    versions = lineage_versions(lake)
    features_version = versions[FLIGHT_FEATURES.path]
    split, months_read = read_training_split(lake, features_version, config.train_window_months)
    parts = (split.train, split.valid, split.test)  # in time order: together, the months read
    client = registry.client()

    code = code_version()
    settings = training_settings(config.params(), config.seed, config.num_boost_round, config.early_stopping_rounds)
    data_digest = data_fingerprint(parts)  # the months read (the whole view, or the window)
    fingerprint = training_fingerprint(data_digest, code, settings)
    unchanged = None if config.force_retrain else unchanged_champion(client, name, fingerprint)
    if unchanged is not None:
        return _unchanged_result(context, unchanged, name, reason, fingerprint, data_digest, features_version)

    model = train_from_env(  # in this process, or with lightgbm.dask when LAKEHOUSE_TRAINING=dask
        split,
        params=config.params(),
        seed=config.seed,
        num_boost_round=config.num_boost_round,
        early_stopping_rounds=config.early_stopping_rounds,
    )
    scores = split_scores(model, split)
    metrics = split_metrics(split, scores)
    comparison = compare_with_champion(
        client, name, split, scores["test"], metrics["test_roc_auc"], config.max_roc_auc_drop
    )
    decision = comparison.decision

    record = training_config(
        split,
        model,
        versions,
        config.num_boost_round,
        config.early_stopping_rounds,
        code,
        {"training_fingerprint": fingerprint, "data_fingerprint": data_digest},
    )
    mlf.log_params(
        {
            **mlflow_params(record, model, split),
            "force_retrain": config.force_retrain,
            "train_window_months": config.train_window_months,
            "training": os.environ.get(TRAINING_VARIABLE, "").strip() or "local",
        }
    )
    mlf.log_metrics({**metrics, **{f"champion_test_{k}": v for k, v in comparison.champion_metrics.items()}})
    log_training_data(lake, split, features_version)
    mlflow.log_dict(record, CONFIG_ARTIFACT)
    log_drift_reference(*drift_reference(model, split))  # drift then reads a sample, not the training months
    segments = segment_metrics(split.test, scores["test"])
    mlflow.log_text(segments.write_csv(), SEGMENTS_ARTIFACT)
    pngs = {
        "roc_holdout": plots.roc_curves(comparison.y, comparison.scores, f"ROC on holdout {split.test_month}"),
        "calibration_holdout": plots.calibration_curves(
            comparison.y, comparison.scores, f"Calibration on {split.test_month}"
        ),
        "feature_importance": plots.feature_importance(model.booster),
    }
    log_pngs(pngs, "plots")
    info = log_pyfunc(model, split.test, scores["test"])
    version = int(register(client, name, info).version)
    active = mlflow.active_run()
    assert active is not None, "dagster-mlflow starts an MLflow run for every Dagster run"
    run_id = active.info.run_id

    row = decision_record(
        comparison, name, version, split, metrics, reason, context.run.run_id, run_id, features_version
    )
    for key, value in decision_tags(row).items():
        client.set_model_version_tag(name, str(version), key, value)
        mlflow.set_tag(key, value)
    mlflow.set_tag("lakehouse.outcome", decision.outcome)
    lake.append(MODEL_DECISIONS, pl.DataFrame([row], schema=DECISION_SCHEMA))
    promotion = "ml/champion moves the alias" if decision.promote else "none: the champion stays"
    context.log.info(f"{name} v{version} registered as challenger: {decision.describe()} (promotion: {promotion})")
    # The dagster-mlflow hook only ends the MLflow run when this step is the last node of the job, which it is
    # not when the champion and predictions follow; end it here so the MLflow run is FINISHED (the hook still
    # marks failures).
    mlflow.end_run()

    n_pos = int(comparison.y.sum())
    auc_se = training.auc_standard_error(metrics["test_roc_auc"], n_pos, len(comparison.y) - n_pos)
    check_meta = {
        k: row[k]
        for k in (
            "outcome",
            "challenger_version",
            "champion_version_before",
            "holdout_month",
            "holdout_rows",
            "difference",
            "max_drop",
        )
    }
    check_meta |= {
        "challenger_roc_auc": row["challenger_score"],
        "champion_roc_auc": row["champion_score"],
        "roc_auc_standard_error": auc_se,
    }
    return dg.MaterializeResult(
        metadata={
            "decision": dg.MetadataValue.text(decision.describe()),
            "outcome": decision.outcome,
            "promotion": promotion,
            "registered": True,
            "retrain_reason": reason,
            "mlflow_run_id": run_id,
            "model_uri": f"models:/{name}/{version}",
            "logged_model_uri": info.model_uri,
            "registered_model": name,
            "model_version": version,
            "champion_version_at_decision": row["champion_version_before"],
            "train_months": ", ".join(split.train_months),
            "valid_month": split.valid_month,
            "test_month": split.test_month,
            "train_rows": split.train.height,
            "holdout_rows": split.test.height,
            "best_iteration": model.best_iteration,
            "seed": config.seed,
            "force_retrain": config.force_retrain,
            "gold_flight_features_version": features_version,
            "train_window_months": config.train_window_months,
            "months_read": len(months_read),
            "rows_read": sum(part.height for part in parts),
            "training_cost": _cost_text(config.train_window_months, len(months_read)),
            "data_versions": dg.MetadataValue.json(versions),
            "features": ", ".join(training.FEATURES),
            "params": dg.MetadataValue.json(model.params),
            "code_version": code,
            "training_fingerprint": fingerprint,
            "data_fingerprint": data_digest,
            **{k: float(v) for k, v in metrics.items()},
            **{f"champion_test_{k}": float(v) for k, v in comparison.champion_metrics.items()},
            "test_roc_auc_standard_error": auc_se,
            "holdout_segments": metadata_table(segments, limit=200),
            "roc_holdout": dg.MetadataValue.md(plots.markdown_image(pngs["roc_holdout"], "ROC on holdout")),
            "calibration_holdout": dg.MetadataValue.md(
                plots.markdown_image(pngs["calibration_holdout"], "Calibration on holdout")
            ),
            "feature_importance": dg.MetadataValue.md(
                plots.markdown_image(pngs["feature_importance"], "Feature importance")
            ),
            "decisions": dg.MetadataValue.path(lake.location(MODEL_DECISIONS)),
        },
        check_results=[
            checks.challenger_not_worse(decision, check_meta),
            checks.roc_auc_floor(
                metrics["test_roc_auc"],
                train_months=split.train_months,
                train_rows=split.train.height,
                holdout_month=split.test_month,
                holdout_rows=split.test.height,
                standard_error=auc_se,
            ),
        ],
    )


@dg.asset(
    key=CHAMPION_KEY,
    deps=[MODEL_KEY],
    group_name="ml",
    kinds={"mlflow"},
    pool=MODEL_POOL,
    # a model materialized by hand (UI) is promoted once its gate passed; a refused one never requests this
    automation_condition=(follow_upstream() & dg.AutomationCondition.all_deps_blocking_checks_passed()).with_label(
        "eager or bootstrap, gate passed"
    ),
    description=(
        "The `champion` alias of the registered model: moved here, and only here, to the challenger that "
        "`ml/flight_delay_model` registered and its blocking check `challenger_not_worse` admitted (the latest "
        "row of `ml/model_decisions`). A refused challenger fails that check, so this step does not run and the "
        "alias stays. Records the promotion: `promoted` and `champion_version_after` of the decision row, "
        "`lakehouse.promoted_at` on the model version. Keeps the champion when there is nothing to promote."
    ),
)
def champion_alias(
    context: dg.AssetExecutionContext, storage: LakehouseStorage, registry: ModelRegistry
) -> dg.MaterializeResult:
    try:
        result = promote(storage.lake, registry, context.run.run_id)
    except (NoChampion, ChampionMoved) as exc:
        raise dg.Failure(str(exc)) from exc
    text = result.describe(registry.model_name)
    context.log.info(text)
    return dg.MaterializeResult(
        metadata={
            "action": result.action,
            "description": dg.MetadataValue.text(text),
            "champion_version": result.champion_version,
            "previous_champion_version": result.previous_version,
            "model_uri": f"models:/{registry.model_name}@{CHAMPION}",
            "decision_outcome": None if result.decision is None else result.decision["outcome"],
            "decision_challenger_version": None if result.decision is None else result.decision["challenger_version"],
        }
    )


PREDICTIONS_SCHEMA = pl.Schema(
    {
        "flight_id": pl.String(),
        "flight_date": pl.Date(),
        "flight_month": pl.Date(),
        "sched_dep_utc": pl.Datetime("us", "UTC"),
        "probability": pl.Float64(),
        "in_training_window": pl.Boolean(),
        "model_name": pl.String(),
        "model_version": pl.Int64(),
        "mlflow_run_id": pl.String(),
        "scored_at": pl.Datetime("us", "UTC"),
    }
)


SCORED_COLUMNS = ["flight_id", "flight_date", "flight_month", "sched_dep_utc"]  # what a prediction row keeps


def score_month(features: pl.DataFrame, champion: RegisteredModel, scored_at: datetime) -> pl.DataFrame:
    """The champion's predictions of one month of the feature view: :data:`PREDICTIONS_SCHEMA`, one row per row
    of ``features`` (``probability`` = P(is_late) in [0, 1]; ``in_training_window``: the flight is on or before
    the last day the champion was trained on, so its score is in-sample)."""
    return (
        features.select(SCORED_COLUMNS)
        .with_columns(
            pl.Series("probability", champion.predict(features), dtype=pl.Float64),
            (pl.col("flight_date") <= champion.train_end_date).alias("in_training_window"),
            pl.lit(champion.name).alias("model_name"),
            pl.lit(champion.version, dtype=pl.Int64).alias("model_version"),
            pl.lit(champion.run_id).alias("mlflow_run_id"),
            pl.lit(scored_at).cast(pl.Datetime("us", "UTC")).alias("scored_at"),
        )
        .cast(PREDICTIONS_SCHEMA)
    )


@dg.asset(
    key=PREDICTIONS_KEY,
    deps=[CHAMPION_KEY, FEATURES_KEY],
    group_name="ml",
    partitions_def=MONTHS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"delta", "mlflow"},
    pool="gold_flight_delay_predictions",  # one writer per table (dagster.yaml sets the pools' limit to 1)
    description=(
        "Batch predictions of the **champion** (the version behind `models:/<name>@champion`, loaded once as "
        "its MLflow pyfunc), one monthly partition per month of `gold/flight_features`, every flight of the month: "
        "`flight_id, flight_date, flight_month, sched_dep_utc, probability (Float64, P(is_late)), "
        "in_training_window (Boolean: in-sample score), model_name, model_version (Int64), mlflow_run_id, "
        "scored_at`. A month is replaced whole (Delta replace-where) and keeps the champion of its time: the "
        "`scoring_sensor` scores new or rewritten months and re-scores the **newest** month when the champion "
        "changes (lakehouse/ml/scoring.py), so a promotion costs one month. Re-score any month or range from the UI."
    ),
)
def flight_delay_predictions(
    context: dg.AssetExecutionContext, storage: LakehouseStorage, registry: ModelRegistry
) -> dg.MaterializeResult:
    lake = storage.lake
    champion = load_champion(registry)
    if champion is None:
        raise dg.Failure(f"no {CHAMPION} version of {registry.model_name} yet: materialize the model")
    features_version = lake.version(FLIGHT_FEATURES)  # pinned: every month of this run reads this version
    inputs = {scoring.FEATURES_INPUT: features_version, scoring.CHAMPION_INPUT: champion.version}
    scored_at = datetime.now(UTC)
    written = []
    with WriteBehind() as writer:  # month M is written while month M+1 is read and scored
        for key in context.partition_keys:
            month = month_of_key(key)
            columns = [*SCORED_COLUMNS, *champion.input_columns]
            predictions = score_month(read_months(lake, [month], features_version, columns), champion, scored_at)
            writer.submit(lake.replace_partition, PREDICTIONS, predictions, month, inputs)
            written.append(
                {
                    "month": key,
                    "flights": predictions.height,
                    "in_training_window": int(predictions.get_column("in_training_window").sum()),
                    "mean_probability": predictions.select(pl.col("probability").mean()).item(),
                }
            )
            context.add_asset_metadata({"dagster/row_count": predictions.height, **written[-1]}, partition_key=key)
            context.log.info(
                f"{PREDICTIONS.path} {key}: scored {predictions.height:,} flights with {champion.name}@{CHAMPION} "
                f"(v{champion.version})"
            )
    return dg.MaterializeResult(
        metadata={
            "dagster/uri": dg.MetadataValue.path(lake.location(PREDICTIONS)),
            "run_rows": sum(int(w["flights"]) for w in written),  # each month's own: its dagster/row_count
            "delta_version": lake.version(PREDICTIONS),
            "months": metadata_table(pl.DataFrame(written)),
            "model_version": champion.version,
            "model_uri": f"models:/{champion.name}/{champion.version}",
            "gold_flight_features_version": features_version,
            "train_end_date": str(champion.train_end_date),
        }
    )


ml_assets = [flight_delay_model, champion_alias, flight_delay_predictions]
