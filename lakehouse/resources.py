"""Dagster resources: the storage settings and dagster-mlflow's MLflow tracking resource."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import mlflow
from dagster_mlflow.resources import CONFIG_SCHEMA, MlFlow

from lakehouse.settings import LakehouseSettings


def ensure_experiment(tracking_uri: str, name: str, artifact_location: str) -> str:
    """Create the MLflow experiment with its artifacts under ``artifact_location`` if missing; return its id.

    dagster-mlflow calls ``mlflow.set_experiment``, which would create the experiment with the default
    artifact root ``<cwd>/mlruns``; creating it first keeps artifacts inside the data folder.
    """
    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    Path(artifact_location).mkdir(parents=True, exist_ok=True)
    return mlflow.create_experiment(name, artifact_location=Path(artifact_location).as_uri())


@dg.resource(config_schema={**CONFIG_SCHEMA, "artifact_location": dg.Field(dg.StringSource)})
def mlflow_tracking(init_context) -> MlFlow:
    """dagster-mlflow's ``MlFlow`` resource (one MLflow run per Dagster run, tagged ``dagster_run_id``),
    after making sure the experiment exists with its artifacts under the configured folder."""
    cfg = init_context.resource_config
    ensure_experiment(cfg["mlflow_tracking_uri"], cfg["experiment_name"], cfg["artifact_location"])
    return MlFlow(init_context)


def build_resources(settings: LakehouseSettings) -> dict:
    """Resources keyed as the assets expect them: ``settings`` and ``mlflow``."""
    return {
        "settings": settings,
        "mlflow": mlflow_tracking.configured({
            "experiment_name": settings.mlflow_experiment,
            "mlflow_tracking_uri": settings.mlflow_tracking_uri,
            "artifact_location": settings.mlflow_artifact_location,
            "extra_tags": {"pipeline": "lakehouse"},
        }),
    }
