"""ML assets: the LightGBM delay model as champion/challenger in the MLflow registry, and the champion's predictions.

How a model becomes the one that scores flights:

1. ``ml/flight_delay_model`` trains a **challenger** on the gold feature view read at one Delta version (time
   split: train all months but the last two, validate the second-to-last, hold out the newest month; see
   :mod:`lakehouse.transforms.training`), logs it to MLflow and registers it as a new version of
   ``flight_delay_lgbm`` with the alias ``challenger``.
2. The current **champion** (alias ``champion``) and the challenger are scored on the **same holdout**: the
   newest month, which neither was trained on.
3. The blocking asset check ``challenger_not_worse`` moves the ``champion`` alias to the challenger only when its
   holdout ROC-AUC is at least the champion's minus ``settings.promotion_max_roc_auc_drop`` (0.005; see
   :func:`lakehouse.transforms.training.decide_promotion`). The first model becomes champion.
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


import os
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import lightgbm as lgb
import mlflow
import numpy as np
import polars as pl
from dagster_mlflow import end_mlflow_on_run_finished
from deltalake import DeltaTable
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from lakehouse import plots, storage
from lakehouse.automation import MODEL_FRESHNESS, follow_upstream
from lakehouse.settings import REPO_ROOT, LakehouseSettings
from lakehouse.transforms import training

# mlflow.artifacts.load_dict draws a tqdm progress bar per small JSON file into the Dagster step logs
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

MODEL_KEY = dg.AssetKey(["ml", "flight_delay_model"])
FEATURES_KEY = dg.AssetKey(["gold", "flight_features"])
PREDICTIONS_KEY = dg.AssetKey(["gold", "flight_delay_predictions"])
ROC_AUC_FLOOR = 0.69  # test ROC-AUC of a bare LightGBM on simple leakage-free features (issue #2, STACK_FACTS)
CHAMPION = "champion"
CHALLENGER = "challenger"
ENCODING_ARTIFACT = "feature_encoding.json"
CONFIG_ARTIFACT = "training_config.json"
SEED = 42
RETRAIN_REASON_TAG = "lakehouse/retrain_reason"
LINEAGE_TABLES = [("gold", "flight_features"), ("silver", "flights"), ("silver", "weather"), ("silver", "planes")]

DECISION_SCHEMA = {
    "decided_at": pl.Datetime("us", "UTC"),
    "model_name": pl.String,
    "challenger_version": pl.Int64,
    "champion_version_before": pl.Int64,   # null when there was no champion
    "champion_version_after": pl.Int64,
    "outcome": pl.String,                  # first_champion | promoted | refused
    "promoted": pl.Boolean,
    "metric": pl.String,                   # roc_auc
    "holdout_month": pl.String,            # YYYY-MM, the newest month, unseen by both models
    "holdout_rows": pl.Int64,
    "challenger_score": pl.Float64,
    "champion_score": pl.Float64,
    "difference": pl.Float64,              # challenger - champion
    "max_drop": pl.Float64,
    "challenger_log_loss": pl.Float64,
    "champion_log_loss": pl.Float64,
    "challenger_brier": pl.Float64,
    "champion_brier": pl.Float64,
    "retrain_reason": pl.String,           # the run's lakehouse/retrain_reason tag, "manual" without one
    "dagster_run_id": pl.String,
    "mlflow_run_id": pl.String,
    "gold_flight_features_version": pl.Int64,
}


@dataclass(frozen=True)
class RegisteredModel:
    """A registered model version loaded for scoring, with what its training run recorded."""

    name: str
    version: int
    run_id: str
    booster: lgb.Booster
    encoding: dict[str, list[str]]
    params: dict[str, str]  # the MLflow run params (train_months, test_month, train_end_date, ...)

    @property
    def train_end_date(self) -> date:
        return date.fromisoformat(self.params["train_end_date"])

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        return training.predict(self.booster, frame, self.encoding)


def read_features(settings: LakehouseSettings, version: int | None = None) -> tuple[pl.DataFrame, int]:
    """The gold feature view at ``version`` (default: the latest) in a deterministic row order, and its version.

    Delta does not guarantee a row order, so rows are sorted by ``sched_dep_utc, flight_id`` (unique).
    """
    path = settings.table_path("gold", "flight_features")
    version = DeltaTable(path).version() if version is None else version
    return pl.read_delta(path, version=version).sort("sched_dep_utc", "flight_id"), version


def lineage_versions(settings: LakehouseSettings) -> dict[str, int]:
    """Current Delta version of each table the model depends on, keyed ``<layer>/<table>``."""
    return {f"{layer}/{table}": DeltaTable(settings.table_path(layer, table)).version()
            for layer, table in LINEAGE_TABLES if storage.table_exists(settings.table_path(layer, table))}


def code_version() -> str:
    """Git commit of the code that trained (``+dirty`` with uncommitted changes), ``unknown`` outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def get_alias_version(client: MlflowClient, name: str, alias: str):
    """The ModelVersion behind ``name@alias``, or None when the model or the alias does not exist."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def load_version(client: MlflowClient, name: str, version: int | str) -> RegisteredModel:
    """Load registered version ``name/version`` with its encoding and its training run's params."""
    mv = client.get_model_version(name, str(version))
    return RegisteredModel(
        name=name, version=int(mv.version), run_id=mv.run_id,
        booster=mlflow.lightgbm.load_model(f"models:/{name}/{mv.version}"),
        encoding=mlflow.artifacts.load_dict(f"runs:/{mv.run_id}/{ENCODING_ARTIFACT}"),
        params=dict(client.get_run(mv.run_id).data.params),
    )


def load_champion(settings: LakehouseSettings) -> RegisteredModel | None:
    """Load ``models:/<name>@champion`` (None without a champion).

    The alias is resolved before and after loading: if a promotion moved it in between, load again, so the
    booster and the version number reported with the predictions always belong together.
    """
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    client = MlflowClient()
    name = settings.registered_model_name
    for _ in range(3):
        before = get_alias_version(client, name, CHAMPION)
        if before is None:
            return None
        booster = mlflow.lightgbm.load_model(f"models:/{name}@{CHAMPION}")
        after = get_alias_version(client, name, CHAMPION)
        if after is not None and after.version == before.version:
            return RegisteredModel(
                name=name, version=int(before.version), run_id=before.run_id, booster=booster,
                encoding=mlflow.artifacts.load_dict(f"runs:/{before.run_id}/{ENCODING_ARTIFACT}"),
                params=dict(client.get_run(before.run_id).data.params),
            )
    raise RuntimeError(f"the {CHAMPION} alias of {name} kept moving while loading it")


def reproduce(settings: LakehouseSettings, run_id: str) -> tuple[training.TrainedModel, dict[str, float]]:
    """Retrain the model of MLflow run ``run_id`` from what it recorded, and evaluate it like the original.

    Reads ``training_config.json`` of the run, the gold feature view **at the recorded Delta version**
    (time travel), splits by the recorded months and trains with the recorded parameters and seed.

    Returns:
        The retrained model and its metrics, keyed like the run's metrics (``valid_roc_auc``, ``test_roc_auc``...).
    """
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    config = mlflow.artifacts.load_dict(f"runs:/{run_id}/{CONFIG_ARTIFACT}")
    features, _ = read_features(settings, version=config["data_versions"]["gold/flight_features"])
    split = training.split_by_months(features, config["train_months"], config["valid_month"], config["test_month"])
    model = training.train(split, params=config["params"], seed=config["seed"],
                           num_boost_round=config["num_boost_round"],
                           early_stopping_rounds=config["early_stopping_rounds"])
    return model, _split_metrics(split, _split_scores(model, split))


def _split_scores(model: training.TrainedModel, split: training.Split) -> dict[str, np.ndarray]:
    """P(is_late) of ``model`` on the validation and test (holdout) sets, keyed ``valid``/``test``."""
    return {name: training.predict(model.booster, frame, model.encoding)
            for name, frame in (("valid", split.valid), ("test", split.test))}


def _split_metrics(split: training.Split, scores: dict[str, np.ndarray]) -> dict[str, float]:
    """:func:`lakehouse.transforms.training.evaluate` on valid and test, keys prefixed ``valid_``/``test_``."""
    out = {}
    for prefix, frame in (("valid", split.valid), ("test", split.test)):
        m = training.evaluate(frame.get_column(training.LABEL).to_numpy(), scores[prefix])
        out.update({f"{prefix}_{k}": v for k, v in m.items()})
    return out


def _log_pngs(pngs: dict[str, bytes], artifact_path: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, png in pngs.items():
            (Path(tmp) / f"{name}.png").write_bytes(png)
        mlflow.log_artifacts(tmp, artifact_path)


@dataclass(frozen=True)
class Comparison:
    """Challenger and champion scored on the same holdout (``y``: its labels, 0/1), and the decision."""

    y: np.ndarray
    scores: dict[str, np.ndarray]          # label for the plots -> P(is_late) on the holdout
    champion: RegisteredModel | None
    champion_metrics: dict[str, float]     # training.evaluate of the champion on the holdout ({} without one)
    decision: training.PromotionDecision


def compare_with_champion(client: MlflowClient, name: str, split: training.Split, challenger_scores: np.ndarray,
                          challenger_roc_auc: float, max_drop: float) -> Comparison:
    """Score the current ``champion`` of ``name`` (if any) on ``split.test``, the challenger's holdout (which
    ``challenger_scores`` already scored), and apply :func:`lakehouse.transforms.training.decide_promotion`."""
    y = split.test.get_column(training.LABEL).to_numpy()
    scores = {"challenger": challenger_scores}
    mv = get_alias_version(client, name, CHAMPION)
    champion = load_version(client, name, mv.version) if mv is not None else None
    champion_metrics: dict[str, float] = {}
    if champion is not None:
        scores[f"champion (v{champion.version})"] = p = champion.predict(split.test)
        champion_metrics = training.evaluate(y, p)
    decision = training.decide_promotion(challenger_roc_auc, champion_metrics.get("roc_auc"), max_drop)
    return Comparison(y, scores, champion, champion_metrics, decision)


def training_config(split: training.Split, model: training.TrainedModel, versions: dict[str, int],
                    features: pl.DataFrame) -> dict:
    """Everything needed to retrain the same model (``training_config.json``; read back by :func:`reproduce`)."""
    return {
        "params": model.params, "seed": model.params["seed"], "num_boost_round": training.NUM_BOOST_ROUND,
        "early_stopping_rounds": training.EARLY_STOPPING_ROUNDS, "features": training.FEATURES,
        "categorical": training.CATEGORICAL, "label": training.LABEL, "train_months": split.train_months,
        "valid_month": split.valid_month, "test_month": split.test_month, "data_versions": versions,
        "train_end_date": str(split.train.get_column("flight_date").max()),
        "data_end_date": str(features.get_column("flight_date").max()), "best_iteration": model.best_iteration,
        "lightgbm_version": lgb.__version__, "polars_version": pl.__version__, "code_version": code_version(),
    }


def mlflow_params(config: dict, model: training.TrainedModel, split: training.Split) -> dict:
    """The training record as flat MLflow params (the retraining sensor and predictions read some back)."""
    versions = config["data_versions"]
    return {
        **model.params, "best_iteration": model.best_iteration, "features": ",".join(config["features"]),
        "train_months": ",".join(split.train_months), "valid_month": split.valid_month,
        "test_month": split.test_month, "train_end_date": config["train_end_date"],
        "data_end_date": config["data_end_date"], "gold_flight_features_version": versions["gold/flight_features"],
        **{f"{k.replace('/', '_')}_version": v for k, v in versions.items() if k.startswith("silver")},
        "train_rows": split.train.height, "num_boost_round": config["num_boost_round"],
        "early_stopping_rounds": config["early_stopping_rounds"], "code_version": config["code_version"],
    }


def decision_record(comparison: Comparison, name: str, version: int, split: training.Split,
                    metrics: dict[str, float], reason: str, dagster_run_id: str, mlflow_run_id: str,
                    features_version: int) -> dict:
    """One row of ``ml/model_decisions`` (:data:`DECISION_SCHEMA`)."""
    d, champion, cm = comparison.decision, comparison.champion, comparison.champion_metrics
    before = champion.version if champion else None
    return {
        "decided_at": datetime.now(timezone.utc), "model_name": name, "challenger_version": version,
        "champion_version_before": before, "champion_version_after": version if d.promote else before,
        "outcome": d.outcome, "promoted": d.promote, "metric": d.metric,
        "holdout_month": split.test_month, "holdout_rows": split.test.height,
        "challenger_score": d.challenger_score, "champion_score": d.champion_score,
        "difference": d.difference, "max_drop": d.max_drop,
        "challenger_log_loss": metrics["test_log_loss"], "champion_log_loss": cm.get("log_loss"),
        "challenger_brier": metrics["test_brier"], "champion_brier": cm.get("brier"),
        "retrain_reason": reason, "dagster_run_id": dagster_run_id, "mlflow_run_id": mlflow_run_id,
        "gold_flight_features_version": features_version,
    }


def decision_tags(row: dict) -> dict[str, str]:
    """The decision as MLflow tags (set on the challenger's model version and on its run)."""
    def text(v) -> str:
        return "" if v is None else (f"{v:.6f}" if isinstance(v, float) else str(v))

    return {
        "lakehouse.decision": row["outcome"], "lakehouse.holdout_month": row["holdout_month"],
        "lakehouse.challenger_test_roc_auc": text(row["challenger_score"]),
        "lakehouse.champion_test_roc_auc": text(row["champion_score"]),
        "lakehouse.champion_version_at_decision": text(row["champion_version_before"]),
        "lakehouse.max_roc_auc_drop": str(row["max_drop"]), "lakehouse.retrain_reason": row["retrain_reason"],
        "dagster_run_id": row["dagster_run_id"],
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
    required_resource_keys={"mlflow", "settings"},  # mlflow is a function-style resource: no mixing with params
    hooks={end_mlflow_on_run_finished},
    pool="ml_flight_delay_model",  # one training at a time: the champion alias is read, then moved
    freshness_policy=MODEL_FRESHNESS,
    description=MODEL_DESCRIPTION,
    check_specs=[
        dg.AssetCheckSpec(
            "challenger_not_worse", asset=MODEL_KEY, blocking=True,
            description="Champion/challenger gate: passes (and promotes the challenger to `champion`) when the "
            "challenger's ROC-AUC on the newest month is >= the champion's on the same month minus the allowed "
            "drop (settings.promotion_max_roc_auc_drop, 0.005); fails (the champion stays, downstream steps of "
            "the run are skipped) otherwise.",
        ),
        dg.AssetCheckSpec("test_roc_auc_floor", asset=MODEL_KEY,
                          description=f"Holdout ROC-AUC >= {ROC_AUC_FLOOR}, the bare-LightGBM reference."),
    ],
)
def flight_delay_model(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    settings: LakehouseSettings = context.resources.settings
    mlf = context.resources.mlflow  # dagster-mlflow: an MLflow run tagged with this Dagster run's id
    name = settings.registered_model_name
    reason = context.run.tags.get(RETRAIN_REASON_TAG, "manual")
    versions = lineage_versions(settings)
    features, features_version = read_features(settings, version=versions["gold/flight_features"])
    split = training.time_split(features)
    model = training.train(split, seed=SEED)
    scores = _split_scores(model, split)
    metrics = _split_metrics(split, scores)
    client = MlflowClient()
    comparison = compare_with_champion(client, name, split, scores["test"], metrics["test_roc_auc"],
                                       settings.promotion_max_roc_auc_drop)
    decision = comparison.decision

    config = training_config(split, model, versions, features)
    mlf.log_params(mlflow_params(config, model, split))
    mlf.log_metrics({**metrics, **{f"champion_test_{k}": v for k, v in comparison.champion_metrics.items()}})
    mlflow.log_dict(model.encoding, ENCODING_ARTIFACT)
    mlflow.log_dict(config, CONFIG_ARTIFACT)
    pngs = {
        "roc_holdout": plots.roc_curves(comparison.y, comparison.scores, f"ROC on holdout {split.test_month}"),
        "calibration_holdout": plots.calibration_curves(comparison.y, comparison.scores,
                                                        f"Calibration on {split.test_month}"),
        "feature_importance": plots.feature_importance(model.booster),
    }
    _log_pngs(pngs, "plots")
    info = mlflow.lightgbm.log_model(
        model.booster, name="model", registered_model_name=name,
        pip_requirements=[f"lightgbm=={lgb.__version__}"],  # skips ~6 s of requirement inference (STACK_FACTS 2i)
    )
    version = int(info.registered_model_version)
    run_id = mlflow.active_run().info.run_id

    client.set_registered_model_alias(name, CHALLENGER, version)
    if decision.promote:  # the gate: only a challenger that is not worse becomes champion
        client.set_registered_model_alias(name, CHAMPION, version)
    row = decision_record(comparison, name, version, split, metrics, reason, context.run_id, run_id,
                          features_version)
    for key, value in decision_tags(row).items():
        client.set_model_version_tag(name, str(version), key, value)
        mlflow.set_tag(key, value)
    decisions_path = settings.table_path("ml", "model_decisions")
    storage.append(decisions_path, pl.DataFrame([row], schema=DECISION_SCHEMA))
    context.log.info(f"{name} v{version}: {decision.describe()}")
    # The dagster-mlflow hook only ends the MLflow run when this step is the last node of the job, which it is
    # not when predictions follow; end it here so the MLflow run is FINISHED (the hook still marks failures).
    mlflow.end_run()

    n_pos = int(comparison.y.sum())
    auc_se = training.auc_standard_error(metrics["test_roc_auc"], n_pos, len(comparison.y) - n_pos)
    check_meta = {k: row[k] for k in ("outcome", "challenger_version", "champion_version_before",
                                      "champion_version_after", "holdout_month", "holdout_rows", "difference",
                                      "max_drop")}
    check_meta |= {"challenger_roc_auc": row["challenger_score"], "champion_roc_auc": row["champion_score"],
                   "roc_auc_standard_error": auc_se}
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
            "seed": SEED,
            "gold_flight_features_version": features_version,
            "data_versions": dg.MetadataValue.json(versions),
            "features": ", ".join(training.FEATURES),
            "params": dg.MetadataValue.json(model.params),
            "code_version": config["code_version"],
            **{k: float(v) for k, v in metrics.items()},
            **{f"champion_test_{k}": float(v) for k, v in comparison.champion_metrics.items()},
            "test_roc_auc_standard_error": auc_se,
            "roc_holdout": dg.MetadataValue.md(plots.markdown_image(pngs["roc_holdout"], "ROC on holdout")),
            "calibration_holdout": dg.MetadataValue.md(plots.markdown_image(pngs["calibration_holdout"],
                                                                            "Calibration on holdout")),
            "feature_importance": dg.MetadataValue.md(plots.markdown_image(pngs["feature_importance"],
                                                                           "Feature importance")),
            "decisions": dg.MetadataValue.path(decisions_path),
        },
        check_results=[
            dg.AssetCheckResult(check_name="challenger_not_worse", passed=decision.promote,
                                severity=dg.AssetCheckSeverity.ERROR, description=decision.describe(),
                                metadata=check_meta),
            dg.AssetCheckResult(check_name="test_roc_auc_floor", passed=metrics["test_roc_auc"] >= ROC_AUC_FLOOR,
                                severity=dg.AssetCheckSeverity.WARN,
                                metadata={"test_roc_auc": metrics["test_roc_auc"], "floor": ROC_AUC_FLOOR}),
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
def flight_delay_predictions(context: dg.AssetExecutionContext, settings: LakehouseSettings) -> dg.MaterializeResult:
    champion = load_champion(settings)
    if champion is None:
        raise dg.Failure(f"no {CHAMPION} version of {settings.registered_model_name} yet: materialize the model")
    features, features_version = read_features(settings)
    scoring = features.filter(pl.col("flight_date") > champion.train_end_date)
    predictions = scoring.select("flight_id", "flight_date", "sched_dep_utc").with_columns(
        pl.Series("probability", champion.predict(scoring), dtype=pl.Float64),
        pl.lit(champion.name).alias("model_name"),
        pl.lit(champion.version, dtype=pl.Int64).alias("model_version"),
        pl.lit(champion.run_id).alias("mlflow_run_id"),
        pl.lit(datetime.now(timezone.utc)).cast(pl.Datetime("us", "UTC")).alias("scored_at"),
    )
    path = settings.table_path("gold", "flight_delay_predictions")
    storage.overwrite(path, predictions)
    context.log.info(f"scored {predictions.height} flights with {champion.name}@{CHAMPION} (v{champion.version})")
    return dg.MaterializeResult(metadata=storage.table_metadata(
        path, rows_scored=predictions.height, model_version=champion.version,
        model_uri=f"models:/{champion.name}@{CHAMPION}", gold_flight_features_version=features_version,
        mean_probability=float(predictions.get_column("probability").mean() or 0.0),
        scored_from=str(scoring.get_column("flight_date").min()),
    ))


ml_assets = [flight_delay_model, flight_delay_predictions]


def decisions(settings: LakehouseSettings) -> pl.DataFrame:
    """The ``ml/model_decisions`` table (empty with :data:`DECISION_SCHEMA` when no model was trained yet)."""
    path = settings.table_path("ml", "model_decisions")
    if not storage.table_exists(path):
        return pl.DataFrame(schema=DECISION_SCHEMA)
    return pl.read_delta(path).sort("decided_at")

