"""The model registry side of the ML layer: logging, loading, promoting and reproducing models in MLflow.

A registered version of ``flight_delay_lgbm`` is a self-contained **pyfunc** (:mod:`lakehouse.ml.model`, logged
from code): it takes gold feature rows as a pandas DataFrame, selects its input columns, encodes the categoricals
with the mapping of its training months (an unseen category is missing) and returns ``probability``. It carries a
signature (its input columns with their types; the output ``probability``), an input example and explicit
``pip_requirements``, so ``mlflow.pyfunc.load_model("models:/flight_delay_lgbm@champion")`` and ``mlflow models
serve`` work without this repository. The lakehouse's own predictions, drift and champion scoring load the same
pyfunc (:class:`RegisteredModel`). The training run also logs ``training_config.json`` (everything
:func:`reproduce` needs: Delta versions read, months, parameters, seed), its training, validation and test data
as MLflow dataset inputs (source: the gold Delta table and its version) and the holdout metrics per segment.

Aliases: ``challenger`` is the newest registered version; ``champion`` is the version that scores flights. Only
:func:`promote` (the ``ml/champion`` asset) moves ``champion``, and only to a challenger the gate admitted.
Decisions of the gate are kept in the Delta table ``ml/model_decisions`` (:data:`DECISION_SCHEMA`).

Idempotent training: every training records a :func:`training_fingerprint` (content of the training window,
code version, parameters). When a new training would have the fingerprint of the current champion, the model
step trains and registers nothing (:func:`unchanged_champion`).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
import polars as pl
from mlflow.data.delta_dataset_source import DeltaDatasetSource
from mlflow.data.polars_dataset import from_polars
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.pyfunc import PyFuncModel
from mlflow.tracking import MlflowClient
from mlflow.types.schema import ColSpec, Schema, TensorSpec
from sklearn.metrics import roc_auc_score

from lakehouse.ml import drift, training
from lakehouse.ml import model as pyfunc_model
from lakehouse.resources import ModelRegistry
from lakehouse.settings import REPO_ROOT
from lakehouse.tables import FLIGHT_FEATURES, MODEL_DECISIONS, SILVER, Lake, Table

# mlflow.artifacts.load_dict draws a tqdm progress bar per small JSON file into the Dagster step logs
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# MLflow 3.17 copies the uv.lock and pyproject.toml of the current uv project (this repository: dagster, polars...)
# into every logged model; the model's environment is its explicit pip_requirements, nothing else.
os.environ.setdefault("MLFLOW_LOG_UV_FILES", "false")

CHAMPION = "champion"
CHALLENGER = "challenger"
CONFIG_ARTIFACT = "training_config.json"
SEGMENTS_ARTIFACT = "evaluation/holdout_segments.csv"
RETRAIN_REASON_TAG = "lakehouse/retrain_reason"
LINEAGE_TABLES: list[Table] = [FLIGHT_FEATURES, SILVER["flights"], SILVER["weather"], SILVER["planes"]]
MODEL_CODE = pyfunc_model.__file__  # the pyfunc's code, logged with the model (models from code)
PROBABILITY = pyfunc_model.PROBABILITY
SEGMENT_COLUMNS = ["carrier", "origin", "sched_hour"]
ADMITTED = ("first_champion", "promoted")  # gate verdicts that make the challenger the next champion

DECISION_SCHEMA = pl.Schema(
    {
        "decided_at": pl.Datetime("us", "UTC"),
        "model_name": pl.String(),
        "challenger_version": pl.Int64(),
        "champion_version_before": pl.Int64(),  # the champion the gate compared with; null when there was none
        # refused: the champion before (the alias was not touched); admitted: null until ml/champion moved the
        # alias, then the challenger's version
        "champion_version_after": pl.Int64(),
        "outcome": pl.String(),  # the gate's verdict: first_champion | promoted | refused
        "promoted": pl.Boolean(),  # True once ml/champion moved the alias to the challenger (never when refused)
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
    """A registered model version loaded as its pyfunc, with what its training run recorded."""

    name: str
    version: int
    run_id: str
    pyfunc: PyFuncModel
    params: dict[str, str]  # the MLflow run params (train_months, test_month, train_end_date, ...)

    @property
    def train_end_date(self) -> date:
        return date.fromisoformat(self.params["train_end_date"])

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        """P(is_late) (float64) per row of a gold feature frame, through the registered pyfunc: the columns of its
        signature are handed over as pandas (:func:`model_input`; the other columns are not, so MLflow does not
        warn about them)."""
        return pyfunc_scores(self.pyfunc, frame)

    @property
    def input_columns(self) -> list[str]:
        """The gold columns the model reads (its signature's inputs), in order."""
        signature = self.pyfunc.metadata.signature
        assert signature is not None, f"{self.name} v{self.version} has no signature (checked when loaded)"
        return [c["name"] for c in signature.inputs.to_dict()]


def pyfunc_scores(pyfunc: PyFuncModel, frame: pl.DataFrame) -> np.ndarray:
    """P(is_late) (float64) per row of a gold feature frame through a lakehouse pyfunc with a signature, handed over
    :data:`lakehouse.ml.training.PREDICT_BATCH_ROWS` rows at a time (:func:`model_input`), so that the pandas copy
    and the model's float64 matrix exist for one batch at once (each row is scored on its own: the result does not
    depend on the batching)."""
    if frame.is_empty():
        return np.empty(0, dtype=np.float64)
    signature = pyfunc.metadata.signature
    assert signature is not None, "a lakehouse pyfunc is logged with a signature"
    return np.concatenate(
        [
            probabilities(pyfunc, model_input(batch, signature))
            for batch in frame.iter_slices(training.PREDICT_BATCH_ROWS)
        ]
    )


def probabilities(pyfunc: PyFuncModel, rows: pd.DataFrame) -> np.ndarray:
    """The ``probability`` column of the pyfunc's output for ``rows``, as a float64 array."""
    out = pyfunc.predict(rows)
    assert isinstance(out, pd.DataFrame), f"the pyfunc returned {type(out).__name__}, not a DataFrame"
    return out[PROBABILITY].to_numpy(dtype=np.float64)


def read_features(lake: Lake, version: int | None = None) -> tuple[pl.DataFrame, int]:
    """The gold feature view at ``version`` (default: the latest) in a deterministic row order, and its version.

    Delta does not guarantee a row order, so rows are sorted by ``sched_dep_utc, flight_id`` (unique).
    """
    version = lake.version(FLIGHT_FEATURES) if version is None else version
    return lake.read(FLIGHT_FEATURES, version=version).sort("sched_dep_utc", "flight_id"), version


ROW_ORDER = ["sched_dep_utc", "flight_id"]
TRAINING_COLUMNS = ["flight_id", "flight_date", "sched_dep_utc", *training.FEATURES, training.LABEL]
"""The feature view's columns a training reads: its row order, the month split (``flight_date``), the model's
inputs and label (everything :func:`data_fingerprint` hashes, so reading only these changes no fingerprint)."""


def read_months(lake: Lake, months: list[date], version: int, columns: list[str] | None = None) -> pl.DataFrame:
    """The gold feature view's rows of ``months`` (first days) at ``version``, reading their ``flight_month`` Delta
    partitions only (the read costs those months, not the lake), in :func:`read_features`' row order; empty (with
    the view's columns) for months it does not hold. ``columns`` (default all) limits the columns read (Parquet
    projection: memory grows with the columns kept); the row-order columns are always read."""
    scan = lake.scan(FLIGHT_FEATURES, version=version)
    kept = None if columns is None else list(dict.fromkeys([*columns, *ROW_ORDER]))
    if kept is not None:
        scan = scan.select(list(dict.fromkeys([*kept, "flight_month"])))
    if not months:
        return scan.head(0).collect().select(kept or pl.all())
    # Month by month, each sorted, concatenated without a copy: the months are disjoint ranges of sched_dep_utc in
    # order (flight_month is the local month of the scheduled departure), so this is the order of one sort of all,
    # without a second copy of all the rows during a sort.
    parts = [scan.filter(pl.col("flight_month") == month).collect().sort(ROW_ORDER) for month in sorted(months)]
    return pl.concat(parts, rechunk=False).select(kept or pl.all())


def training_months(lake: Lake, version: int, train_window_months: int) -> list[str]:
    """The months (``YYYY-MM``) a training reads: :func:`lakehouse.ml.training.window_months` of the feature
    view's partitions at ``version``, found in the Delta log (no data file is opened)."""
    present = sorted(f"{p['flight_month'][:7]}" for p in lake.partitions(FLIGHT_FEATURES, version=version))
    return training.window_months(present, train_window_months)


def read_training_months(lake: Lake, months: list[str], version: int) -> pl.DataFrame:
    """:data:`TRAINING_COLUMNS` of the feature view's ``months`` (``YYYY-MM``) at ``version``, their partitions only."""
    return read_months(lake, [date.fromisoformat(f"{m}-01") for m in months], version, TRAINING_COLUMNS)


def read_training_window(lake: Lake, version: int, train_window_months: int) -> tuple[pl.DataFrame, list[str]]:
    """The rows of the gold feature view (at ``version``) a training reads (:func:`training_months`, so the months
    outside the window are never opened; :data:`TRAINING_COLUMNS` only); and those months (``YYYY-MM``)."""
    months = training_months(lake, version, train_window_months)
    return read_training_months(lake, months, version), months


PREDICTION = "prediction"  # the champion's P(is_late) in drift samples (a monitored column)
DRIFT_REFERENCE_ARTIFACT = "drift_reference.parquet"
DRIFT_REFERENCE_WINDOW_ARTIFACT = "drift_reference.json"


def drift_reference(model: training.TrainedModel, split: training.Split) -> tuple[pl.DataFrame, dict]:
    """The drift reference of a new model: its training rows sampled as drift samples them
    (:func:`lakehouse.ml.drift.sample_rows`, fixed seed: the rows :func:`load_drift_reference`'s fallback would
    read and sample), ``flight_date``, the features and the label, plus :data:`PREDICTION` (the model's P(is_late),
    Float64); and the window it was drawn from (``reference_start``, ``reference_end`` as ISO dates,
    ``reference_window_rows``)."""
    sample = drift.sample_rows(split.train).select("flight_date", *training.FEATURES, training.LABEL)
    scores = training.predict(model.booster, sample, model.encoding)
    window = {
        "reference_start": str(split.train.get_column("flight_date").min()),
        "reference_end": str(split.train.get_column("flight_date").max()),
        "reference_window_rows": split.train.height,
    }
    return sample.with_columns(pl.Series(PREDICTION, scores, dtype=pl.Float64)), window


def log_drift_reference(reference: pl.DataFrame, window: dict) -> None:
    """Log :func:`drift_reference` as artifacts of the active MLflow run, so that drift reads a sample of at most
    ``drift.MAX_SAMPLE_ROWS`` rows per run instead of the training months (O(sample), not O(training window))."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / DRIFT_REFERENCE_ARTIFACT
        reference.write_parquet(path)
        mlflow.log_artifact(str(path))
    mlflow.log_dict(window, DRIFT_REFERENCE_WINDOW_ARTIFACT)


def load_drift_reference(client: MlflowClient, run_id: str) -> tuple[pl.DataFrame, dict] | None:
    """The drift reference logged by the training run ``run_id`` (:func:`log_drift_reference`), None when that run
    logged none (models trained before it existed: drift then reads their training months)."""
    names = {a.path for a in client.list_artifacts(run_id)}
    if not {DRIFT_REFERENCE_ARTIFACT, DRIFT_REFERENCE_WINDOW_ARTIFACT} <= names:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        frame = pl.read_parquet(client.download_artifacts(run_id, DRIFT_REFERENCE_ARTIFACT, tmp))
        window = json.loads(Path(client.download_artifacts(run_id, DRIFT_REFERENCE_WINDOW_ARTIFACT, tmp)).read_text())
    return frame, window


def read_training_split(lake: Lake, version: int, train_window_months: int) -> tuple[training.Split, list[str]]:
    """The time split of :func:`lakehouse.ml.training.time_split` over the months :func:`read_training_window`
    reads, each part read from its own months' partitions (:data:`TRAINING_COLUMNS`), so the whole window is never
    held beside its split: peak memory is the training months, not twice the window. Equals
    ``time_split(read_training_window(...)[0])`` (the months of the Delta partitions are those of the rows'
    ``flight_date``: ``flight_month`` is derived from it); returns the split and the months read (``YYYY-MM``).

    Raises:
        ValueError: fewer than three months.
    """
    months = training_months(lake, version, train_window_months)
    if len(months) < 3:
        raise ValueError(f"a time-based split needs at least 3 months of flights, got {months}")
    split = training.Split(
        train=read_training_months(lake, months[:-2], version),
        valid=read_training_months(lake, [months[-2]], version),
        test=read_training_months(lake, [months[-1]], version),
        train_months=months[:-2],
        valid_month=months[-2],
        test_month=months[-1],
    )
    return split, months


def lineage_versions(lake: Lake) -> dict[str, int]:
    """Current Delta version of each table the model depends on, keyed ``<layer>/<table>``."""
    return {t.path: lake.version(t) for t in LINEAGE_TABLES if lake.exists(t)}


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=True).stdout


CODE_PATHS = ["lakehouse", "pyproject.toml", "uv.lock"]


def code_version() -> str:
    """Git commit of the code that trains, ``unknown`` outside git.

    With uncommitted changes to the code (:data:`CODE_PATHS`: the package, the project file and the lock file;
    untracked files of the package included) it is ``<commit>+dirty.<digest>``, the digest being a sha256 of the
    diff and of the untracked files, so two different edits never share a code version (the idempotency check,
    :func:`training_fingerprint`, would otherwise take an edited training for an unchanged one).
    """
    try:
        sha = _git("rev-parse", "HEAD").strip()
        diff = _git("diff", "HEAD", "--no-ext-diff", "--binary", "--", *CODE_PATHS)
        untracked = sorted(_git("ls-files", "--others", "--exclude-standard", "--", "lakehouse").splitlines())
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not diff and not untracked:
        return sha
    digest = hashlib.sha256(diff.encode())
    for name in untracked:
        digest.update(name.encode())
        try:
            digest.update((REPO_ROOT / name).read_bytes())
        except OSError:  # removed since it was listed
            digest.update(b"<gone>")
    return f"{sha}+dirty.{digest.hexdigest()[:12]}"


# --- idempotent training ----------------------------------------------------------------------------------------


def data_fingerprint(frame: pl.DataFrame | Sequence[pl.DataFrame]) -> str:
    """sha256 of what training reads from ``frame``: ``flight_id``, ``flight_date``, the model features and the
    label (names, dtypes and every row's values, in the frame's order; callers sort it, see
    :func:`read_features`). Other gold columns do not count, nor does the Delta version: a rewrite of gold with the
    same content has the same fingerprint. Row hashes are polars' ``hash_rows`` (each row's hash depends on its
    values only), stable within one polars version, so the polars version is part of the digest. A sequence of
    frames (the parts of a split, in order) has the fingerprint of their concatenation."""
    parts = [frame] if isinstance(frame, pl.DataFrame) else list(frame)
    columns = [c for c in ["flight_id", "flight_date", *training.FEATURES, training.LABEL] if c in parts[0].columns]
    schema = list(parts[0].select(columns).schema.items())
    digest = hashlib.sha256(f"polars {pl.__version__}; {schema}".encode())
    for part in parts:
        digest.update(part.select(columns).hash_rows(seed=0).to_numpy().tobytes())
    return digest.hexdigest()


def training_fingerprint(data: str, code: str, settings: dict[str, Any]) -> str:
    """sha256 of everything a training depends on: the content of its training window (:func:`data_fingerprint`),
    the code version and the training settings (features, LightGBM parameters, seed, rounds, early stopping)."""
    payload = json.dumps({"data": data, "code": code, "settings": settings}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def training_settings(
    params: dict[str, Any], seed: int, num_boost_round: int, early_stopping_rounds: int
) -> dict[str, Any]:
    """What a training is configured with, as :func:`lakehouse.ml.training.train` will apply it (the feature lists
    are read now, from :mod:`lakehouse.ml.training`)."""
    return {
        "params": {**training.DEFAULT_PARAMS, **params, "seed": seed},
        "num_boost_round": num_boost_round,
        "early_stopping_rounds": early_stopping_rounds,
        "features": list(training.FEATURES),
        "categorical": list(training.CATEGORICAL),
        "label": training.LABEL,
    }


@dataclass(frozen=True)
class Unchanged:
    """The current champion was trained on the same data, code and settings as the training now asked for."""

    version: int
    run_id: str
    metrics: dict[str, float]  # the champion run's metrics


def unchanged_champion(client: MlflowClient, name: str, fingerprint: str) -> Unchanged | None:
    """The current champion when its training run recorded ``fingerprint`` (None otherwise, or without one)."""
    mv = get_alias_version(client, name, CHAMPION)
    if mv is None:
        return None
    run = client.get_run(str(mv.run_id))
    if run.data.params.get("training_fingerprint") != fingerprint:
        return None
    return Unchanged(int(mv.version), str(mv.run_id), dict(run.data.metrics))


# --- logging a model ----------------------------------------------------------------------------------------------


def pip_requirements() -> list[str]:
    """What the pyfunc imports, pinned to the versions that trained it (explicit: MLflow's inference of
    requirements costs ~6 s per model; docs/stack-notes.md, "MLflow")."""
    return [
        f"mlflow=={mlflow.__version__}",
        f"lightgbm=={lgb.__version__}",
        f"numpy=={np.__version__}",
        f"pandas=={pd.__version__}",
    ]


def model_inputs(model: training.TrainedModel) -> tuple[dict[str, list[str]], list[str]]:
    """The booster's inputs in order: categorical columns with their training categories, then numeric columns."""
    categorical = dict(model.encoding)
    numeric = [c for c in model.booster.feature_name() if c not in categorical]
    return categorical, numeric


def model_signature(categorical: dict[str, list[str]], numeric: list[str], schema: pl.Schema) -> ModelSignature:
    """Inputs: each categorical column as ``string``, each numeric one as ``double`` (the model computes in float64;
    an integer gold column with missing values arrives in pandas as float64, and MLflow converts int8-int32 to
    double itself; an Int64 column a client must cast); output: ``probability`` (double).

    Raises:
        TypeError: a numeric input is not numeric in gold (``schema``).
    """
    wrong = [c for c in numeric if not schema[c].is_numeric()]
    if wrong:
        raise TypeError(f"numeric model inputs that are not numeric in gold: {wrong}")
    inputs: list[ColSpec | TensorSpec] = [ColSpec("string", c) for c in categorical]
    inputs += [ColSpec("double", c) for c in numeric]
    outputs: list[ColSpec | TensorSpec] = [ColSpec("double", PROBABILITY)]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))


def model_input(frame: pl.DataFrame, signature: ModelSignature) -> pd.DataFrame:
    """The columns of ``signature``'s inputs of a gold frame as pandas, ``double`` inputs cast to Float64 first
    (exact for gold's integers), so MLflow's schema enforcement never has to convert a type."""
    columns = signature.inputs.to_dict()
    return frame.select(
        pl.col(c["name"]).cast(pl.Float64) if c["type"] == "double" else pl.col(c["name"]) for c in columns
    ).to_pandas()


def log_pyfunc(model: training.TrainedModel, holdout: pl.DataFrame, holdout_scores: np.ndarray) -> ModelInfo:
    """Log ``model`` as the pyfunc of :mod:`lakehouse.ml.model` in the active MLflow run (not registered yet).

    The input example is 5 holdout rows. The logged model is loaded back and must score the whole holdout
    bit-identically to ``holdout_scores`` (the scores the gate judges), so the artifact that gets registered is
    the model that was evaluated.

    Raises:
        RuntimeError: the logged model's predictions differ from ``holdout_scores``.
    """
    categorical, numeric = model_inputs(model)
    signature = model_signature(categorical, numeric, holdout.schema)
    with tempfile.TemporaryDirectory() as tmp:
        booster = Path(tmp) / "booster.txt"
        model.booster.save_model(str(booster))
        inputs = Path(tmp) / "inputs.json"
        inputs.write_text(json.dumps({"categorical": categorical, "numeric": numeric}), encoding="utf-8")
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=MODEL_CODE,
            artifacts={pyfunc_model.BOOSTER_ARTIFACT: str(booster), pyfunc_model.INPUTS_ARTIFACT: str(inputs)},
            signature=signature,
            input_example=model_input(holdout.head(5), signature),
            pip_requirements=pip_requirements(),
        )
    logged = mlflow.pyfunc.load_model(info.model_uri)
    scores = pyfunc_scores(logged, holdout)
    if not np.array_equal(scores, holdout_scores):
        raise RuntimeError(
            f"the logged pyfunc {info.model_uri} scores the holdout differently from the trained booster "
            f"(max |difference| {np.max(np.abs(scores - holdout_scores)):.3g}); not registering it"
        )
    return info


def register(client: MlflowClient, name: str, info: ModelInfo) -> ModelVersion:
    """Register the logged model ``info`` as a new version of ``name`` and point ``challenger`` at it."""
    mv = mlflow.register_model(info.model_uri, name)
    client.set_registered_model_alias(name, CHALLENGER, str(mv.version))
    return mv


def log_training_data(lake: Lake, split: training.Split, features_version: int) -> dict[str, str]:
    """Log the training, validation and test sets as MLflow dataset inputs of the active run (contexts
    ``training``, ``validation``, ``test``): the model's columns of each, with source the gold Delta table and its
    version, the label as target and :func:`data_fingerprint` as digest. Returns the digests by context.

    The Delta version is also an input tag (``delta_version``) and part of the name: MLflow 3.17's
    ``DeltaDatasetSource.to_dict`` drops a version 0 (it tests the version for truth).
    """
    source = DeltaDatasetSource(path=lake.location(FLIGHT_FEATURES), delta_table_version=features_version)
    columns = ["flight_id", *training.FEATURES, training.LABEL]
    digests = {}
    for context, frame, months in (
        ("training", split.train, split.train_months),
        ("validation", split.valid, [split.valid_month]),
        ("test", split.test, [split.test_month]),
    ):
        digest = data_fingerprint(frame)
        span = months[0] if len(months) == 1 else f"{months[0]}..{months[-1]}"
        dataset = from_polars(
            frame.select(columns),
            source=source,
            targets=training.LABEL,
            name=f"{FLIGHT_FEATURES.path}@v{features_version} {context} {span}",
            digest=digest[:16],
        )
        mlflow.log_input(
            dataset,
            context=context,
            tags={"months": ",".join(months), "delta_version": str(features_version), "sha256": digest},
        )
        digests[context] = digest
    return digests


# --- loading ------------------------------------------------------------------------------------------------------


def get_alias_version(client: MlflowClient, name: str, alias: str):
    """The ModelVersion behind ``name@alias``, or None when the model or the alias does not exist."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def load_version(client: MlflowClient, name: str, version: int | str) -> RegisteredModel:
    """Load registered version ``name/version`` as its pyfunc, with its training run's params.

    Raises:
        RuntimeError: the version has no input signature (a bare LightGBM booster registered before the models
            became pyfuncs): it cannot score gold rows.
    """
    mv = client.get_model_version(name, str(version))
    run_id = str(mv.run_id)  # every version registered here was logged from a run
    pyfunc = mlflow.pyfunc.load_model(f"models:/{name}/{mv.version}")
    if pyfunc.metadata.get_input_schema() is None:
        raise RuntimeError(
            f"{name} v{mv.version} has no signature: it predates the self-contained pyfunc models and cannot "
            f"score gold rows; start from a fresh MLflow store or delete its '{CHAMPION}' alias to retrain"
        )
    return RegisteredModel(
        name=name,
        version=int(mv.version),
        run_id=run_id,
        pyfunc=pyfunc,
        params=dict(client.get_run(run_id).data.params),
    )


def load_champion(registry: ModelRegistry) -> RegisteredModel | None:
    """Load the version behind ``models:/<name>@champion`` (None without a champion).

    The alias is resolved once and that version number is loaded (``models:/<name>/<version>``), so the model and
    the version reported with its predictions always belong together, even if a promotion moves the alias
    meanwhile.
    """
    registry.activate()
    client = registry.client()
    mv = get_alias_version(client, registry.model_name, CHAMPION)
    return None if mv is None else load_version(client, registry.model_name, mv.version)


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


def trained_versions(registry: ModelRegistry) -> dict[str, list[int]]:
    """Per table path (``<layer>/<name>``), the Delta versions the registered versions of ``registry.model_name``
    were trained on, sorted: the ``data_versions`` of each version's ``training_config.json`` (what
    :func:`reproduce` time-travels to). Maintenance passes them to ``vacuum(keep_versions=...)``, so every
    registered model stays reproducible and its drift reference readable. ``{}`` without a registered model.

    A version whose run has no ``training_config.json`` (logged before it existed) falls back on its run's
    ``gold_flight_features_version`` param.
    """
    client = registry.client()
    registry.activate()
    try:
        versions = client.search_model_versions(f"name = '{registry.model_name}'")
    except MlflowException:
        return {}
    kept: dict[str, set[int]] = {}
    for mv in versions:
        run_id = str(mv.run_id)
        try:
            data_versions = mlflow.artifacts.load_dict(f"runs:/{run_id}/{CONFIG_ARTIFACT}")["data_versions"]
        except (MlflowException, OSError, KeyError):
            param = client.get_run(run_id).data.params.get("gold_flight_features_version")
            data_versions = {FLIGHT_FEATURES.path: int(param)} if param is not None else {}
        for path, version in data_versions.items():
            kept.setdefault(path, set()).add(int(version))
    return {path: sorted(v) for path, v in sorted(kept.items())}


# --- evaluation ---------------------------------------------------------------------------------------------------


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


SEGMENT_SCHEMA = pl.Schema(
    {
        "segment": pl.String(),  # carrier | origin | sched_hour
        "value": pl.String(),
        "n": pl.Int64(),
        "late": pl.Int64(),
        "base_rate": pl.Float64(),
        "mean_prediction": pl.Float64(),
        "roc_auc": pl.Float64(),  # null unless both classes are present
    }
)


def segment_metrics(holdout: pl.DataFrame, scores: np.ndarray, by: list[str] | None = None) -> pl.DataFrame:
    """Holdout metrics per value of each segment column (default :data:`SEGMENT_COLUMNS`): rows ``n``, late
    flights, base rate, mean predicted probability and ROC-AUC (null unless the segment has both classes).

    Sorted by segment, then ROC-AUC ascending (the weakest first; segments without one last), then size.
    """
    frame = holdout.select(training.LABEL, *[c for c in by or SEGMENT_COLUMNS if c in holdout.columns]).with_columns(
        pl.Series("_p", scores, dtype=pl.Float64)
    )
    rows = []
    for column in [c for c in by or SEGMENT_COLUMNS if c in holdout.columns]:
        for (value,), group in frame.group_by(column):
            y = group.get_column(training.LABEL).to_numpy()
            p = group.get_column("_p").to_numpy()
            late = int(y.sum())
            rows.append(
                {
                    "segment": column,
                    "value": None if value is None else str(value),
                    "n": len(y),
                    "late": late,
                    "base_rate": float(y.mean()),
                    "mean_prediction": float(p.mean()),
                    "roc_auc": float(roc_auc_score(y, p)) if 0 < late < len(y) else None,
                }
            )
    return pl.DataFrame(rows, schema=SEGMENT_SCHEMA).sort(
        "segment", "roc_auc", "n", descending=[False, False, True], nulls_last=True
    )


def log_pngs(pngs: dict[str, bytes], artifact_path: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, png in pngs.items():
            (Path(tmp) / f"{name}.png").write_bytes(png)
        mlflow.log_artifacts(tmp, artifact_path)


# --- the gate and the promotion -----------------------------------------------------------------------------------


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
    """Score the current ``champion`` of ``name`` (if any; its registered pyfunc) on ``split.test``, the
    challenger's holdout (which ``challenger_scores`` already scored), and apply
    :func:`lakehouse.ml.training.decide_promotion`."""
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
    num_boost_round: int,
    early_stopping_rounds: int,
    code: str,
    fingerprints: dict[str, str],
) -> dict:
    """Everything needed to retrain the same model (``training_config.json``; read back by :func:`reproduce`),
    with the fingerprints (``training_fingerprint``, ``data_fingerprint``) that make training idempotent."""
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
        "data_end_date": str(split.test.get_column("flight_date").max()),  # the test month is the newest read
        "best_iteration": model.best_iteration,
        "lightgbm_version": lgb.__version__,
        "polars_version": pl.__version__,
        "code_version": code,
        **fingerprints,
    }


def mlflow_params(config: dict, model: training.TrainedModel, split: training.Split) -> dict:
    """The training record as flat MLflow params (the retraining sensor, predictions and the idempotency check
    read some back)."""
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
        "training_fingerprint": config["training_fingerprint"],
        "data_fingerprint": config["data_fingerprint"],
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
    """One row of ``ml/model_decisions`` (:data:`DECISION_SCHEMA`): the gate's verdict. Nothing is promoted yet:
    an admitted challenger has ``promoted`` False and ``champion_version_after`` null until :func:`promote`."""
    d, champion, cm = comparison.decision, comparison.champion, comparison.champion_metrics
    before = champion.version if champion else None
    return {
        "decided_at": datetime.now(UTC),
        "model_name": name,
        "challenger_version": version,
        "champion_version_before": before,
        "champion_version_after": None if d.promote else before,
        "outcome": d.outcome,
        "promoted": False,
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
    """The gate's decision as MLflow tags (set on the challenger's model version and on its run)."""

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


@dataclass(frozen=True)
class Promotion:
    """What :func:`promote` did: ``action`` is ``promoted`` (the alias moved to ``champion_version``) or ``kept``
    (nothing to promote; ``champion_version`` is the champion in place). ``decision``: the latest decision row."""

    action: str
    champion_version: int
    previous_version: int | None
    decision: dict | None

    def describe(self, name: str) -> str:
        if self.action == "promoted":
            before = "no champion before" if self.previous_version is None else f"was v{self.previous_version}"
            return f"{name}@{CHAMPION} moved to v{self.champion_version} ({before})"
        d = self.decision
        latest = "no decision yet" if d is None else f"latest decision: v{d['challenger_version']} {d['outcome']}"
        return f"{name}@{CHAMPION} stays v{self.champion_version} ({latest})"


class NoChampion(RuntimeError):
    """There is no champion and no admitted challenger to promote."""


class ChampionMoved(RuntimeError):
    """The champion changed between the gate's comparison and the promotion."""


def promote(lake: Lake, registry: ModelRegistry, dagster_run_id: str) -> Promotion:
    """Carry out the gate's decision for ``registry.model_name`` (the ``ml/champion`` asset): the decision of the
    Dagster run ``dagster_run_id`` when its model step decided, otherwise the latest one (``ml/champion``
    materialized alone, or a re-execution of a run that stopped before promoting).

    When that row of ``ml/model_decisions`` admitted its challenger (``first_champion``/``promoted``) and it is
    not promoted yet, move ``champion`` to it, tag the version (``lakehouse.promoted_at``,
    ``lakehouse.promoted_by_dagster_run``) and record the promotion in its row (``promoted`` True,
    ``champion_version_after``). Otherwise (refused, already promoted, or the model step found the champion
    unchanged) keep the champion. Safe to repeat: an alias already at the challenger only completes the record.

    Raises:
        ChampionMoved: the champion is neither the one the gate compared with nor the challenger (another
            promotion happened in between; the challenger was judged against another model).
        NoChampion: there is no champion and nothing to promote.
    """
    client, name = registry.client(), registry.model_name
    table = decisions(lake).filter(pl.col("model_name") == name)
    current = get_alias_version(client, name, CHAMPION)
    current_version = None if current is None else int(current.version)
    own = table.filter(pl.col("dagster_run_id") == dagster_run_id)  # this run's gate first, then the latest one
    latest = own.row(-1, named=True) if own.height else table.row(-1, named=True) if table.height else None
    if latest is None or latest["outcome"] not in ADMITTED or latest["promoted"]:
        if current_version is None:
            raise NoChampion(f"{name} has no {CHAMPION} and no admitted challenger: materialize the model first")
        return Promotion("kept", current_version, current_version, latest)
    challenger = int(latest["challenger_version"])
    if current_version not in (latest["champion_version_before"], challenger):
        raise ChampionMoved(
            f"{name}@{CHAMPION} is v{current_version}, but the gate compared challenger v{challenger} with "
            f"v{latest['champion_version_before']}: not promoting it (retrain to compare with the new champion)"
        )
    if current_version != challenger:
        client.set_registered_model_alias(name, CHAMPION, str(challenger))
    for key, value in {
        "lakehouse.promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "lakehouse.promoted_by_dagster_run": dagster_run_id,
        "lakehouse.replaced_champion_version": str(latest["champion_version_before"] or ""),
    }.items():
        client.set_model_version_tag(name, str(challenger), key, value)
    promoted = (pl.col("model_name") == name) & (pl.col("challenger_version") == challenger)
    lake.overwrite(
        MODEL_DECISIONS,
        decisions(lake)
        .with_columns(
            pl.when(promoted).then(True).otherwise(pl.col("promoted")).alias("promoted"),
            pl.when(promoted)
            .then(challenger)
            .otherwise(pl.col("champion_version_after"))
            .alias("champion_version_after"),
        )
        .cast(dict(DECISION_SCHEMA)),  # type: ignore[arg-type]
    )
    carried_out = {**latest, "promoted": True, "champion_version_after": challenger}
    return Promotion("promoted", challenger, latest["champion_version_before"], carried_out)
