"""The registered model as any MLflow client sees it, and idempotent training, on a small real slice.

One module-scoped lake (January-March 2013, days 1-2 of each month) is materialized once; the tests then use only
MLflow's public API (``mlflow.pyfunc.load_model``, ``mlflow models serve``) against its registry:

* the pyfunc behind ``models:/flight_delay_lgbm@champion`` scores gold rows read from the Delta table as pandas
  exactly like the predictions asset did, and carries a signature, an input example, pinned requirements and
  its training data as dataset inputs;
* ``mlflow models serve --env-manager local`` answers a REST request (``dataframe_split``) with the same numbers;
* materializing the model again without new data registers nothing and adds no drift rows; ``force_retrain``
  registers a new version.

The code version is pinned for the whole module: other edits of the working tree while the tests run must not
count as a code change (``lakehouse.ml.registry.code_version`` digests uncommitted changes).
"""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import lightgbm
import mlflow
import numpy as np
import pandas as pd
import polars as pl
import pytest
import requests
from deltalake import DeltaTable
from mlflow.tracking import MlflowClient

from lakehouse.landing import land
from lakehouse.ml import model as pyfunc_model
from lakehouse.ml import training
from lakehouse.ml.assets import CHAMPION_KEY, MODEL_KEY, PREDICTIONS_KEY
from lakehouse.ml.monitoring import DRIFT_KEY, read_drift_history
from lakehouse.ml.registry import CHAMPION, SEGMENTS_ARTIFACT, decisions
from lakehouse.resources import ModelRegistry
from lakehouse.settings import Settings
from lakehouse_tests.helpers import lake, location, materialize_all, read_table

MODEL_NAME = ModelRegistry.model_fields["model_name"].default
CHAMPION_URI = f"models:/{MODEL_NAME}@{CHAMPION}"
VENV_BIN = Path(sys.executable).parent
SERVE_TIMEOUT_S = 180.0  # a failure bound, not an expected duration (the server answers after ~10-15 s)


@dataclass
class Slice:
    settings: Settings
    instance: dg.DagsterInstance
    first: dg.ExecuteInProcessResult


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Iterator[Slice]:
    settings = Settings.from_env(tmp_path_factory.mktemp("serving"))
    land(settings.landing_dir, months=[1, 2, 3], max_day=2)
    with pytest.MonkeyPatch.context() as mp, dg.instance_for_test() as instance:
        mp.setattr("lakehouse.ml.assets.code_version", lambda: "pinned-by-test_model_serving")
        first = materialize_all(settings, instance)
        assert first.success
        mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
        yield Slice(settings, instance, first)


def gold_pandas(settings: Settings) -> pd.DataFrame:
    """The gold feature view as any client would read it: the Delta table to pandas (pyarrow), all columns."""
    return DeltaTable(location(settings, "gold/flight_features")).to_pandas()


def model_metadata(result: dg.ExecuteInProcessResult) -> dict:
    return {k: v.value for k, v in result.asset_materializations_for_node("ml__flight_delay_model")[0].metadata.items()}


@pytest.mark.slow
def test_the_champion_pyfunc_scores_gold_rows_like_the_predictions_asset(small):
    pyfunc = mlflow.pyfunc.load_model(CHAMPION_URI)
    gold = gold_pandas(small.settings)
    scored = pyfunc.predict(gold)  # whole gold rows: the model selects its columns
    assert list(scored.columns) == ["probability"] and len(scored) == len(gold)
    ours = pl.DataFrame({"flight_id": gold["flight_id"], "pyfunc": scored["probability"].to_numpy()})
    predictions = read_table(small.settings, "gold/flight_delay_predictions").join(ours, on="flight_id")
    assert predictions.height == read_table(small.settings, "gold/flight_delay_predictions").height > 0
    assert np.array_equal(predictions["probability"].to_numpy(), predictions["pyfunc"].to_numpy())

    # what the model declares: its inputs (the features it was trained on, typed), its output, an example
    client = MlflowClient()
    version = client.get_model_version_by_alias(MODEL_NAME, CHAMPION)
    run = client.get_run(version.run_id)
    signature = pyfunc.metadata.signature
    assert signature.inputs.input_names() == run.data.params["features"].split(",")
    types = {c["name"]: c["type"] for c in signature.inputs.to_dict()}
    assert {types[c] for c in run.data.params["features"].split(",") if c not in training.CATEGORICAL} == {"double"}
    assert {types[c] for c in training.CATEGORICAL} == {"string"}
    assert signature.outputs.input_names() == ["probability"]
    assert pyfunc.metadata.saved_input_example_info["type"] == "dataframe"
    requirements = Path(mlflow.pyfunc.get_model_dependencies(CHAMPION_URI)).read_text().split()
    assert f"lightgbm=={lightgbm.__version__}" in requirements and f"mlflow=={mlflow.__version__}" in requirements

    # an unseen category is a missing value, not an error; a missing categorical value too
    odd = gold.head(2).assign(carrier=["ZZ", None])
    assert all(0 < p < 1 for p in pyfunc.predict(odd)["probability"])

    # the training data is on the run: the gold table and its version, per split
    inputs = {_context(i): i.dataset for i in run.inputs.dataset_inputs}
    assert set(inputs) == {"training", "validation", "test"}
    assert all(location(small.settings, "gold/flight_features") in d.source for d in inputs.values())
    assert inputs["test"].name.endswith(run.data.params["test_month"])

    # where the model is weak: holdout metrics per carrier, origin and scheduled hour
    segments = model_metadata(small.first)["holdout_segments"]
    assert {r.data["segment"] for r in segments.records} == {"carrier", "origin", "sched_hour"}
    csv = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/{SEGMENTS_ARTIFACT}")
    table = pl.read_csv(csv.encode())
    assert table.columns == ["segment", "value", "n", "late", "base_rate", "mean_prediction", "roc_auc"]
    origins = table.filter(pl.col("segment") == "origin")
    assert origins["n"].sum() == int(run.data.metrics["test_n"])


def _context(dataset_input) -> str:
    return {t.key: t.value for t in dataset_input.tags}["mlflow.data.context"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, then SIGKILL if it is still there after 15 s."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.slow
def test_mlflow_models_serve_answers_rest_requests_like_the_pyfunc(small, tmp_path):
    port, log = free_port(), tmp_path / "serve.log"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": small.settings.mlflow_tracking_uri,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # the server execs `uvicorn` from PATH
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    command = [str(VENV_BIN / "mlflow"), "models", "serve", "-m", CHAMPION_URI, "--env-manager", "local"]
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*command, "-h", "127.0.0.1", "-p", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() reaches the uvicorn child too
        )
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + SERVE_TIMEOUT_S
        while True:
            assert proc.poll() is None, f"the server exited:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no answer within {SERVE_TIMEOUT_S} s:\n{log.read_text()[-3000:]}"
            try:
                if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.5)

        pyfunc = mlflow.pyfunc.load_model(CHAMPION_URI)
        columns = pyfunc.metadata.get_input_schema().input_names()
        rows = pl.read_delta(location(small.settings, "gold/flight_features")).select(columns).head(7)
        data = [[None if isinstance(v, float) and math.isnan(v) else v for v in row] for row in rows.rows()]
        answer = requests.post(
            f"{url}/invocations", json={"dataframe_split": {"columns": columns, "data": data}}, timeout=30
        )
        assert answer.status_code == 200, answer.text
        served = [p["probability"] for p in answer.json()["predictions"]]
        expected = pyfunc.predict(rows.to_pandas())["probability"].tolist()
        assert served == expected
    finally:
        stop(proc)
    assert proc.poll() is not None
    assert "Creating virtualenv" not in log.read_text() and "pip install" not in log.read_text()


def versions(name: str = MODEL_NAME) -> list[int]:
    return sorted(int(v.version) for v in MlflowClient().search_model_versions(f"name='{name}'"))


@pytest.mark.slow
def test_retraining_without_new_data_registers_nothing_unless_forced(small):
    settings, instance = small.settings, small.instance
    target = [MODEL_KEY, CHAMPION_KEY, PREDICTIONS_KEY, DRIFT_KEY]
    before = versions()
    drift_rows = read_drift_history(lake(settings)).height
    decision_rows = decisions(lake(settings)).height

    again = materialize_all(settings, instance, selection=target)
    assert again.success
    meta = model_metadata(again)
    assert meta["outcome"] == "unchanged" and meta["registered"] is False
    assert meta["model_version"] == int(MlflowClient().get_model_version_by_alias(MODEL_NAME, CHAMPION).version)
    assert versions() == before
    assert read_drift_history(lake(settings)).height == drift_rows  # same champion, same gold version
    assert decisions(lake(settings)).height == decision_rows  # no challenger, no decision
    (gate,) = [e for e in again.get_asset_check_evaluations() if e.check_name == "challenger_not_worse"]
    assert gate.passed and gate.metadata["outcome"].value == "unchanged"

    forced = materialize_all(
        settings,
        instance,
        selection=target,
        run_config={"ops": {"ml__flight_delay_model": {"config": {"force_retrain": True}}}},
        raise_on_error=False,
    )
    assert versions() == [*before, before[-1] + 1]
    assert model_metadata(forced)["outcome"] in ("promoted", "refused")
    # the same data, code and settings give the same model: it is not worse, so it becomes champion
    assert forced.success
    assert int(MlflowClient().get_model_version_by_alias(MODEL_NAME, CHAMPION).version) == before[-1] + 1


def test_the_pyfunc_builds_the_training_matrix_bit_for_bit():
    """The pyfunc's pandas path and training's polars path give the same float64 matrix (nulls, an unseen
    category, integer and float columns), whatever the feature lists are now."""
    rng = np.random.default_rng(7)
    n = 50
    frame = pl.DataFrame(
        {
            **{c: rng.choice(["A", "B", "C", None], n).tolist() for c in training.CATEGORICAL},
            **{
                c: pl.Series(rng.integers(0, 100, n), dtype=pl.Int32) if i % 2 else pl.Series(rng.normal(size=n))
                for i, c in enumerate(training.NUMERIC)
            },
        }
    ).with_columns(
        *[pl.when(pl.int_range(pl.len()) % 7 == 0).then(None).otherwise(pl.col(c)).alias(c) for c in training.NUMERIC]
    )
    encoding = {c: ["A", "B"] for c in training.CATEGORICAL}  # "C" is unseen
    expected = training.training_matrix(frame, encoding)
    actual = pyfunc_model.design_matrix(frame.to_pandas(), encoding, list(training.NUMERIC))
    assert actual.flags["C_CONTIGUOUS"] and actual.dtype == np.float64
    assert np.array_equal(actual, expected, equal_nan=True)
