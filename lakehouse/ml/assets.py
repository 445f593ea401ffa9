"""ML assets: the LightGBM delay model as champion/challenger in the MLflow registry, and the champion's predictions.

How a model becomes the one that scores flights:

1. ``ml/flight_delay_model`` trains a **challenger** on the gold feature view read at one Delta version (time
   split: train all months but the last two, validate the second-to-last, hold out the newest month; see
   :mod:`lakehouse.ml.training`), logs it to MLflow and registers it as a new version of
   ``flight_delay_lgbm`` with the alias ``challenger``.
2. The current **champion** (alias ``champion``) and the challenger are scored on the **same holdout**: the
   newest month, which neither was trained on.
3. The blocking asset check ``challenger_not_worse`` (:mod:`lakehouse.ml.checks`) moves the ``champion`` alias
   to the challenger only when its holdout ROC-AUC is at least the champion's minus the model's
   ``max_roc_auc_drop`` config (0.005; see :func:`lakehouse.ml.training.decide_promotion`).
   The first model becomes champion.
   A **refused** challenger fails the check: the run is marked failed, the champion stays, and the downstream
   predictions and drift steps of that run do not execute (the predictions table keeps the champion's scores;
   declarative automation re-runs them with the same champion afterwards). Either way the decision and both
   scores are recorded: asset and check metadata, tags on the MLflow model version and run, and a row of the
   Delta table ``ml/model_decisions``.
4. ``gold/flight_delay_predictions`` always loads ``models:/flight_delay_lgbm@champion``.

Reproducibility: every training records the Delta versions it read (gold features, and silver flights, weather,
planes for lineage), the features, LightGBM parameters, seed, boosting rounds and code version, in MLflow
params and in ``training_config.json``; :func:`reproduce` retrains from exactly that and gets the same metrics.
"""

from datetime import UTC, datetime

import dagster as dg
import lightgbm as lgb
import mlflow
import polars as pl
from dagster_mlflow import end_mlflow_on_run_finished
from pydantic import Field

from lakehouse.automation import MODEL_FRESHNESS, follow_upstream
from lakehouse.metadata import asset_key, table_metadata
from lakehouse.ml import checks, plots, training
from lakehouse.ml.registry import (
    CHALLENGER,
    CHAMPION,
    CONFIG_ARTIFACT,
    DECISION_SCHEMA,
    ENCODING_ARTIFACT,
    RETRAIN_REASON_TAG,
    compare_with_champion,
    decision_record,
    decision_tags,
    lineage_versions,
    load_champion,
    log_pngs,
    mlflow_params,
    read_features,
    split_metrics,
    split_scores,
    training_config,
)
from lakehouse.resources import LakehouseStorage, ModelRegistry
from lakehouse.tables import FLIGHT_FEATURES, MODEL_DECISIONS, PREDICTIONS

MODEL_KEY = dg.AssetKey(["ml", "flight_delay_model"])  # lives in the MLflow registry, not in the lake
FEATURES_KEY = asset_key(FLIGHT_FEATURES)
PREDICTIONS_KEY = asset_key(PREDICTIONS)
_P = training.DEFAULT_PARAMS


class ModelConfig(dg.Config):
    """Hyperparameters, seed and promotion margin of one training (editable in the Launchpad).

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
    max_roc_auc_drop: float = Field(
        default=training.MAX_ROC_AUC_DROP,
        description="Champion/challenger margin: the challenger is promoted when its holdout ROC-AUC is at least "
        "the champion's minus this (0.005 ~ 1.5 standard errors of ROC-AUC on a month of flights).",
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
    "second-to-last; holdout: the newest). Registered in MLflow as a new version of the model with alias "
    "`challenger`; the current `champion` is scored on the same holdout, and the blocking check "
    "`challenger_not_worse` moves `champion` to the challenger only if its holdout ROC-AUC is at least the "
    "champion's minus 0.005. A refused challenger fails that check (the champion stays). Not automated: the "
    "`retraining_sensor` requests it on new labelled data, drift or a failed freshness policy."
)


@dg.asset(
    key=MODEL_KEY,
    deps=[FEATURES_KEY],
    group_name="ml",
    kinds={"lightgbm", "mlflow"},
    # mlflow is dagster-mlflow's function-style resource, which cannot be mixed with resource parameters
    required_resource_keys={"mlflow", "storage", "registry"},
    hooks={end_mlflow_on_run_finished},
    pool="ml_flight_delay_model",  # one training at a time: the champion alias is read, then moved
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
    features, features_version = read_features(lake, version=versions[FLIGHT_FEATURES.path])
    split = training.time_split(features)
    model = training.train(
        split,
        params=config.params(),
        seed=config.seed,
        num_boost_round=config.num_boost_round,
        early_stopping_rounds=config.early_stopping_rounds,
    )
    scores = split_scores(model, split)
    metrics = split_metrics(split, scores)
    client = registry.client()
    comparison = compare_with_champion(
        client, name, split, scores["test"], metrics["test_roc_auc"], config.max_roc_auc_drop
    )
    decision = comparison.decision

    record = training_config(split, model, versions, features, config.num_boost_round, config.early_stopping_rounds)
    mlf.log_params(mlflow_params(record, model, split))
    mlf.log_metrics({**metrics, **{f"champion_test_{k}": v for k, v in comparison.champion_metrics.items()}})
    mlflow.log_dict(model.encoding, ENCODING_ARTIFACT)
    mlflow.log_dict(record, CONFIG_ARTIFACT)
    pngs = {
        "roc_holdout": plots.roc_curves(comparison.y, comparison.scores, f"ROC on holdout {split.test_month}"),
        "calibration_holdout": plots.calibration_curves(
            comparison.y, comparison.scores, f"Calibration on {split.test_month}"
        ),
        "feature_importance": plots.feature_importance(model.booster),
    }
    log_pngs(pngs, "plots")
    info = mlflow.lightgbm.log_model(
        model.booster,
        name="model",
        registered_model_name=name,
        pip_requirements=[f"lightgbm=={lgb.__version__}"],  # no ~6 s inference: stack-notes "MLflow"
    )
    version = int(info.registered_model_version)
    active = mlflow.active_run()
    assert active is not None, "dagster-mlflow starts an MLflow run for every Dagster run"
    run_id = active.info.run_id

    client.set_registered_model_alias(name, CHALLENGER, str(version))
    if decision.promote:  # the gate: only a challenger that is not worse becomes champion
        client.set_registered_model_alias(name, CHAMPION, str(version))
    row = decision_record(
        comparison, name, version, split, metrics, reason, context.run.run_id, run_id, features_version
    )
    for key, value in decision_tags(row).items():
        client.set_model_version_tag(name, str(version), key, value)
        mlflow.set_tag(key, value)
    lake.append(MODEL_DECISIONS, pl.DataFrame([row], schema=DECISION_SCHEMA))
    context.log.info(f"{name} v{version}: {decision.describe()}")
    # The dagster-mlflow hook only ends the MLflow run when this step is the last node of the job, which it is
    # not when predictions follow; end it here so the MLflow run is FINISHED (the hook still marks failures).
    mlflow.end_run()

    n_pos = int(comparison.y.sum())
    auc_se = training.auc_standard_error(metrics["test_roc_auc"], n_pos, len(comparison.y) - n_pos)
    check_meta = {
        k: row[k]
        for k in (
            "outcome",
            "challenger_version",
            "champion_version_before",
            "champion_version_after",
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
            "retrain_reason": reason,
            "mlflow_run_id": run_id,
            "model_uri": info.model_uri,
            "registered_model": name,
            "model_version": version,
            "champion_version": row["champion_version_after"],
            "previous_champion_version": row["champion_version_before"],
            "train_months": ", ".join(split.train_months),
            "valid_month": split.valid_month,
            "test_month": split.test_month,
            "train_rows": split.train.height,
            "holdout_rows": split.test.height,
            "best_iteration": model.best_iteration,
            "seed": config.seed,
            "gold_flight_features_version": features_version,
            "data_versions": dg.MetadataValue.json(versions),
            "features": ", ".join(training.FEATURES),
            "params": dg.MetadataValue.json(model.params),
            "code_version": record["code_version"],
            **{k: float(v) for k, v in metrics.items()},
            **{f"champion_test_{k}": float(v) for k, v in comparison.champion_metrics.items()},
            "test_roc_auc_standard_error": auc_se,
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
            checks.test_roc_auc_floor(metrics["test_roc_auc"]),
        ],
    )


@dg.asset(
    key=PREDICTIONS_KEY,
    deps=[MODEL_KEY, FEATURES_KEY],
    group_name="ml",
    kinds={"delta", "lightgbm"},
    pool="gold_flight_delay_predictions",  # one writer per table (dagster.yaml sets the pools' limit to 1)
    automation_condition=follow_upstream(),
    description=(
        "Batch predictions of the **champion** (always loaded as `models:/<name>@champion`) for every flight "
        "after its training window: `flight_id, flight_date, sched_dep_utc, probability (Float64, P(is_late)), "
        "model_name, model_version (Int64), mlflow_run_id, scored_at`. Rewritten on each run, so the table "
        "holds the current champion's scores only (earlier scores stay readable by Delta time travel). Follows "
        "new features and new models by declarative automation."
    ),
)
def flight_delay_predictions(
    context: dg.AssetExecutionContext, storage: LakehouseStorage, registry: ModelRegistry
) -> dg.MaterializeResult:
    lake = storage.lake
    champion = load_champion(registry)
    if champion is None:
        raise dg.Failure(f"no {CHAMPION} version of {registry.model_name} yet: materialize the model")
    features, features_version = read_features(lake)
    scoring = features.filter(pl.col("flight_date") > champion.train_end_date)
    predictions = scoring.select("flight_id", "flight_date", "sched_dep_utc").with_columns(
        pl.Series("probability", champion.predict(scoring), dtype=pl.Float64),
        pl.lit(champion.name).alias("model_name"),
        pl.lit(champion.version, dtype=pl.Int64).alias("model_version"),
        pl.lit(champion.run_id).alias("mlflow_run_id"),
        pl.lit(datetime.now(UTC)).cast(pl.Datetime("us", "UTC")).alias("scored_at"),
    )
    lake.overwrite(PREDICTIONS, predictions)
    context.log.info(f"scored {predictions.height} flights with {champion.name}@{CHAMPION} (v{champion.version})")
    return dg.MaterializeResult(
        metadata=table_metadata(
            lake,
            PREDICTIONS,
            rows_scored=predictions.height,
            model_version=champion.version,
            model_uri=f"models:/{champion.name}@{CHAMPION}",
            gold_flight_features_version=features_version,
            mean_probability=float(predictions.select(pl.col("probability").mean()).item() or 0.0),
            scored_from=str(scoring.get_column("flight_date").min()),
        )
    )


ml_assets = [flight_delay_model, flight_delay_predictions]
