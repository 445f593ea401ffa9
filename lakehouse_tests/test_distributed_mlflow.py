"""The distributed profile's MLflow: the lakehouse trains, registers and scores with a real ``mlflow server``
(Postgres backend store, artifacts proxied to the S3-compatible store; :func:`lakehouse_tests.servers.mlflow_server`)
selected by ``LAKEHOUSE_MLFLOW_URI``, on a small real slice."""

from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg
import numpy as np
import polars as pl
import pytest
from mlflow.tracking import MlflowClient

from lakehouse.landing import land
from lakehouse.ml.registry import CHAMPION, CONFIG_ARTIFACT, load_champion, read_features
from lakehouse.pipeline import MedallionResult
from lakehouse.resources import ModelRegistry
from lakehouse.settings import Settings
from lakehouse.tables import Lake
from lakehouse_tests.helpers import materialize_all, read_table
from lakehouse_tests.object_store import SECRET_ACCESS_KEY, S3Server, list_keys
from lakehouse_tests.servers import PG_PASSWORD, MlflowServer

pytestmark = pytest.mark.slow  # the whole graph on three months (measured in docs/distributed.md)
MODEL_NAME = ModelRegistry.model_fields["model_name"].default
SECRETS = (SECRET_ACCESS_KEY, PG_PASSWORD)


@dataclass(frozen=True)
class Trained:
    settings: Settings
    result: MedallionResult
    events: list[str]  # every event of the Dagster runs, as text


@pytest.fixture(scope="module")
def trained(mlflow_server: MlflowServer, s3_server: S3Server, tmp_path_factory) -> Iterator[Trained]:
    """Months 1-3 of 2013, days 1-2 of each, through the whole graph with ``LAKEHOUSE_MLFLOW_URI`` pointing at the
    server. The object store's credentials are in this process's environment, as they are on the machines of a
    deployment whose lake is on S3: no MLflow param, tag or Dagster event may carry them."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAKEHOUSE_DATA_DIR", str(tmp_path_factory.mktemp("mlflow-profile") / "data"))
        patch.setenv("LAKEHOUSE_MLFLOW_URI", mlflow_server.uri)
        for name, value in s3_server.env().items():
            patch.setenv(name, value)
        settings = Settings.from_env()
        assert settings.mlflow_tracking_uri == mlflow_server.uri
        land(settings.landing_dir, months=[1, 2, 3], max_day=2)
        with dg.instance_for_test() as instance:
            result = materialize_all(settings, instance)
            events = [str(record) for run_id in result.run_ids for record in instance.all_logs(run_id)]
        yield Trained(settings, result, events)


def test_the_model_is_registered_on_the_server_and_loads_back(
    trained: Trained, mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch
):
    assert trained.result.success
    # A client without any object-store credential: artifacts come through the server (mlflow-artifacts:/).
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    client = MlflowClient(tracking_uri=mlflow_server.uri, registry_uri=mlflow_server.uri)
    version = client.get_model_version_by_alias(MODEL_NAME, CHAMPION)
    run = client.get_run(str(version.run_id))
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")

    champion = load_champion(ModelRegistry(tracking_uri=mlflow_server.uri, artifact_location="unused"))
    assert champion is not None
    assert champion.version == int(version.version)
    # the registered pyfunc scores exactly what the lakehouse's prediction step wrote
    features, _ = read_features(Lake(trained.settings.lake_dir))
    predictions = read_table(trained.settings, "gold/flight_delay_predictions").sort("flight_id")
    scoring = features.filter(pl.col("flight_id").is_in(predictions.get_column("flight_id").implode())).sort(
        "flight_id"
    )
    assert scoring.height == predictions.height > 0
    np.testing.assert_allclose(
        champion.predict(scoring), predictions.get_column("probability").to_numpy(), rtol=0, atol=1e-12
    )


def test_artifacts_land_in_the_object_store(trained: Trained, mlflow_server: MlflowServer, s3_server: S3Server):
    assert trained.result.success
    client = MlflowClient(tracking_uri=mlflow_server.uri)
    version = client.get_model_version_by_alias(MODEL_NAME, CHAMPION)
    keys = list_keys(s3_server, mlflow_server.bucket, f"{mlflow_server.artifacts_prefix}/")
    run_keys = [k for k in keys if f"/{version.run_id}/artifacts/" in k]
    assert any(k.endswith(f"/artifacts/{CONFIG_ARTIFACT}") for k in run_keys), keys
    assert any(k.endswith("/MLmodel") for k in keys), keys  # the logged model (MLflow 3: models/m-<id>/...)


def test_no_secret_in_params_tags_or_events(trained: Trained, mlflow_server: MlflowServer):
    assert trained.result.success
    client = MlflowClient(tracking_uri=mlflow_server.uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()], filter_string="", max_results=100)
    assert runs
    for run in runs:
        recorded = [*run.data.params.values(), *run.data.tags.values(), *run.data.params, *run.data.tags]
        for secret in SECRETS:
            assert not [value for value in recorded if secret in value], run.info.run_id
    assert trained.events
    for secret in SECRETS:
        assert not [event for event in trained.events if secret in event]
