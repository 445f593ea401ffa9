"""The model registry side of the ML layer: loading, recording and reproducing models in MLflow.

A registered version of ``flight_delay_lgbm`` is a LightGBM booster plus two artifacts of its training run:
``feature_encoding.json`` (category -> integer code, :func:`lakehouse.ml.training.fit_encoding`) and
``training_config.json`` (everything :func:`reproduce` needs: Delta versions read, months, parameters, seed).
The aliases ``champion`` and ``challenger`` name the version that scores flights and the newest trained one.
Decisions of the champion/challenger gate are kept in the Delta table ``ml/model_decisions``
(:data:`DECISION_SCHEMA`).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import lightgbm as lgb
import mlflow
import numpy as np
import polars as pl
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from lakehouse.ml import training
from lakehouse.resources import ModelRegistry
from lakehouse.settings import REPO_ROOT
from lakehouse.tables import FLIGHT_FEATURES, MODEL_DECISIONS, SILVER, Lake, Table

# mlflow.artifacts.load_dict draws a tqdm progress bar per small JSON file into the Dagster step logs
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

CHAMPION = "champion"
CHALLENGER = "challenger"
ENCODING_ARTIFACT = "feature_encoding.json"
CONFIG_ARTIFACT = "training_config.json"
RETRAIN_REASON_TAG = "lakehouse/retrain_reason"
LINEAGE_TABLES: list[Table] = [FLIGHT_FEATURES, SILVER["flights"], SILVER["weather"], SILVER["planes"]]

DECISION_SCHEMA = pl.Schema(
    {
        "decided_at": pl.Datetime("us", "UTC"),
        "model_name": pl.String(),
        "challenger_version": pl.Int64(),
        "champion_version_before": pl.Int64(),  # null when there was no champion
        "champion_version_after": pl.Int64(),
        "outcome": pl.String(),  # first_champion | promoted | refused
        "promoted": pl.Boolean(),
        "metric": pl.String(),  # roc_auc
        "holdout_month": pl.String(),  # YYYY-MM, the newest month, unseen by both models
        "holdout_rows": pl.Int64(),
        "challenger_score": pl.Float64(),
        "champion_score": pl.Float64(),
        "difference": pl.Float64(),  # challenger - champion
        "max_drop": pl.Float64(),
        "challenger_log_loss": pl.Float64(),
        "champion_log_loss": pl.Float64(),
        "challenger_brier": pl.Float64(),
        "champion_brier": pl.Float64(),
        "retrain_reason": pl.String(),  # the run's lakehouse/retrain_reason tag, "manual" without one
        "dagster_run_id": pl.String(),
        "mlflow_run_id": pl.String(),
        "gold_flight_features_version": pl.Int64(),
    }
)


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


def read_features(lake: Lake, version: int | None = None) -> tuple[pl.DataFrame, int]:
    """The gold feature view at ``version`` (default: the latest) in a deterministic row order, and its version.

    Delta does not guarantee a row order, so rows are sorted by ``sched_dep_utc, flight_id`` (unique).
    """
    version = lake.version(FLIGHT_FEATURES) if version is None else version
    return lake.read(FLIGHT_FEATURES, version=version).sort("sched_dep_utc", "flight_id"), version


def lineage_versions(lake: Lake) -> dict[str, int]:
    """Current Delta version of each table the model depends on, keyed ``<layer>/<table>``."""
    return {t.path: lake.version(t) for t in LINEAGE_TABLES if lake.exists(t)}


def code_version() -> str:
    """Git commit of the code that trained (``+dirty`` with uncommitted changes), ``unknown`` outside git."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
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
    run_id = str(mv.run_id)  # every version registered here was logged from a run
    return RegisteredModel(
        name=name,
        version=int(mv.version),
        run_id=run_id,
        booster=mlflow.lightgbm.load_model(f"models:/{name}/{mv.version}"),
        encoding=mlflow.artifacts.load_dict(f"runs:/{mv.run_id}/{ENCODING_ARTIFACT}"),
        params=dict(client.get_run(run_id).data.params),
    )


def load_champion(registry: ModelRegistry) -> RegisteredModel | None:
    """Load ``models:/<name>@champion`` (None without a champion).

    The alias is resolved before and after loading: if a promotion moved it in between, load again, so the
    booster and the version number reported with the predictions always belong together.
    """
    registry.activate()
    client = registry.client()
    name = registry.model_name
    for _ in range(3):
        before = get_alias_version(client, name, CHAMPION)
        if before is None:
            return None
        booster = mlflow.lightgbm.load_model(f"models:/{name}@{CHAMPION}")
        after = get_alias_version(client, name, CHAMPION)
        if after is not None and after.version == before.version:
            return RegisteredModel(
                name=name,
                version=int(before.version),
                run_id=before.run_id,
                booster=booster,
                encoding=mlflow.artifacts.load_dict(f"runs:/{before.run_id}/{ENCODING_ARTIFACT}"),
                params=dict(client.get_run(before.run_id).data.params),
            )
    raise RuntimeError(f"the {CHAMPION} alias of {name} kept moving while loading it")


def reproduce(lake: Lake, registry: ModelRegistry, run_id: str) -> tuple[training.TrainedModel, dict[str, float]]:
    """Retrain the model of MLflow run ``run_id`` from what it recorded, and evaluate it like the original.

    Reads ``training_config.json`` of the run, the gold feature view **at the recorded Delta version**
    (time travel), splits by the recorded months and trains with the recorded parameters and seed.

    Returns:
        The retrained model and its metrics, keyed like the run's metrics (``valid_roc_auc``, ``test_roc_auc``...).
    """
    registry.activate()
    config = mlflow.artifacts.load_dict(f"runs:/{run_id}/{CONFIG_ARTIFACT}")
    features, _ = read_features(lake, version=config["data_versions"][FLIGHT_FEATURES.path])
    split = training.split_by_months(features, config["train_months"], config["valid_month"], config["test_month"])
    model = training.train(
        split,
        params=config["params"],
        seed=config["seed"],
        num_boost_round=config["num_boost_round"],
        early_stopping_rounds=config["early_stopping_rounds"],
    )
    return model, split_metrics(split, split_scores(model, split))


def split_scores(model: training.TrainedModel, split: training.Split) -> dict[str, np.ndarray]:
    """P(is_late) of ``model`` on the validation and test (holdout) sets, keyed ``valid``/``test``."""
    return {
        name: training.predict(model.booster, frame, model.encoding)
        for name, frame in (("valid", split.valid), ("test", split.test))
    }


def split_metrics(split: training.Split, scores: dict[str, np.ndarray]) -> dict[str, float]:
    """:func:`lakehouse.ml.training.evaluate` on valid and test, keys prefixed ``valid_``/``test_``."""
    out = {}
    for prefix, frame in (("valid", split.valid), ("test", split.test)):
        m = training.evaluate(frame.get_column(training.LABEL).to_numpy(), scores[prefix])
        out.update({f"{prefix}_{k}": v for k, v in m.items()})
    return out


def log_pngs(pngs: dict[str, bytes], artifact_path: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, png in pngs.items():
            (Path(tmp) / f"{name}.png").write_bytes(png)
        mlflow.log_artifacts(tmp, artifact_path)


@dataclass(frozen=True)
class Comparison:
    """Challenger and champion scored on the same holdout (``y``: its labels, 0/1), and the decision."""

    y: np.ndarray
    scores: dict[str, np.ndarray]  # label for the plots -> P(is_late) on the holdout
    champion: RegisteredModel | None
    champion_metrics: dict[str, float]  # training.evaluate of the champion on the holdout ({} without one)
    decision: training.PromotionDecision


def compare_with_champion(
    client: MlflowClient,
    name: str,
    split: training.Split,
    challenger_scores: np.ndarray,
    challenger_roc_auc: float,
    max_drop: float,
) -> Comparison:
    """Score the current ``champion`` of ``name`` (if any) on ``split.test``, the challenger's holdout (which
    ``challenger_scores`` already scored), and apply :func:`lakehouse.ml.training.decide_promotion`."""
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


def training_config(
    split: training.Split,
    model: training.TrainedModel,
    versions: dict[str, int],
    features: pl.DataFrame,
    num_boost_round: int,
    early_stopping_rounds: int,
) -> dict:
    """Everything needed to retrain the same model (``training_config.json``; read back by :func:`reproduce`)."""
    return {
        "params": model.params,
        "seed": model.params["seed"],
        "num_boost_round": num_boost_round,
        "early_stopping_rounds": early_stopping_rounds,
        "features": training.FEATURES,
        "categorical": training.CATEGORICAL,
        "label": training.LABEL,
        "train_months": split.train_months,
        "valid_month": split.valid_month,
        "test_month": split.test_month,
        "data_versions": versions,
        "train_end_date": str(split.train.get_column("flight_date").max()),
        "data_end_date": str(features.get_column("flight_date").max()),
        "best_iteration": model.best_iteration,
        "lightgbm_version": lgb.__version__,
        "polars_version": pl.__version__,
        "code_version": code_version(),
    }


def mlflow_params(config: dict, model: training.TrainedModel, split: training.Split) -> dict:
    """The training record as flat MLflow params (the retraining sensor and predictions read some back)."""
    versions = config["data_versions"]
    return {
        **model.params,
        "best_iteration": model.best_iteration,
        "features": ",".join(config["features"]),
        "train_months": ",".join(split.train_months),
        "valid_month": split.valid_month,
        "test_month": split.test_month,
        "train_end_date": config["train_end_date"],
        "data_end_date": config["data_end_date"],
        "gold_flight_features_version": versions["gold/flight_features"],
        **{f"{k.replace('/', '_')}_version": v for k, v in versions.items() if k.startswith("silver")},
        "train_rows": split.train.height,
        "num_boost_round": config["num_boost_round"],
        "early_stopping_rounds": config["early_stopping_rounds"],
        "code_version": config["code_version"],
    }


def decision_record(
    comparison: Comparison,
    name: str,
    version: int,
    split: training.Split,
    metrics: dict[str, float],
    reason: str,
    dagster_run_id: str,
    mlflow_run_id: str,
    features_version: int,
) -> dict:
    """One row of ``ml/model_decisions`` (:data:`DECISION_SCHEMA`)."""
    d, champion, cm = comparison.decision, comparison.champion, comparison.champion_metrics
    before = champion.version if champion else None
    return {
        "decided_at": datetime.now(UTC),
        "model_name": name,
        "challenger_version": version,
        "champion_version_before": before,
        "champion_version_after": version if d.promote else before,
        "outcome": d.outcome,
        "promoted": d.promote,
        "metric": d.metric,
        "holdout_month": split.test_month,
        "holdout_rows": split.test.height,
        "challenger_score": d.challenger_score,
        "champion_score": d.champion_score,
        "difference": d.difference,
        "max_drop": d.max_drop,
        "challenger_log_loss": metrics["test_log_loss"],
        "champion_log_loss": cm.get("log_loss"),
        "challenger_brier": metrics["test_brier"],
        "champion_brier": cm.get("brier"),
        "retrain_reason": reason,
        "dagster_run_id": dagster_run_id,
        "mlflow_run_id": mlflow_run_id,
        "gold_flight_features_version": features_version,
    }


def decision_tags(row: dict) -> dict[str, str]:
    """The decision as MLflow tags (set on the challenger's model version and on its run)."""

    def text(v) -> str:
        return "" if v is None else (f"{v:.6f}" if isinstance(v, float) else str(v))

    return {
        "lakehouse.decision": row["outcome"],
        "lakehouse.holdout_month": row["holdout_month"],
        "lakehouse.challenger_test_roc_auc": text(row["challenger_score"]),
        "lakehouse.champion_test_roc_auc": text(row["champion_score"]),
        "lakehouse.champion_version_at_decision": text(row["champion_version_before"]),
        "lakehouse.max_roc_auc_drop": str(row["max_drop"]),
        "lakehouse.retrain_reason": row["retrain_reason"],
        "dagster_run_id": row["dagster_run_id"],
    }


def decisions(lake: Lake) -> pl.DataFrame:
    """The ``ml/model_decisions`` table (empty with :data:`DECISION_SCHEMA` when no model was trained yet)."""
    if not lake.exists(MODEL_DECISIONS):
        return pl.DataFrame(schema=DECISION_SCHEMA)
    return lake.read(MODEL_DECISIONS).sort("decided_at")
