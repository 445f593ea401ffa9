"""Dagster resources, each narrow: where the data is, where the models are, when to retrain.

* ``storage`` (:class:`LakehouseStorage`): the landing zone and the lake root, the only locations assets need.
* ``registry`` (:class:`ModelRegistry`): the MLflow tracking/registry URI, artifact location, experiment and
  registered model name.
* ``mlflow``: dagster-mlflow's ``MlFlow`` resource (one MLflow run per Dagster run), configured from the registry.
* ``retraining_policy`` (:class:`RetrainingPolicy`): the thresholds of the retraining sensor.

Per-asset policies that a user may change for one run live as ``dg.Config`` on the asset instead (silver's
quarantine limit, the model's hyperparameters and promotion margin), editable in the Launchpad.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import mlflow
from dagster_mlflow.resources import CONFIG_SCHEMA, MlFlow
from mlflow.tracking import MlflowClient
from pydantic import Field

from lakehouse.settings import Settings
from lakehouse.tables import Lake, Landing


class LakehouseStorage(dg.ConfigurableResource):
    """The landing zone and the Delta lake root (see :mod:`lakehouse.tables` for what lives where)."""

    landing_dir: str = Field(description="Landing zone: one sub-folder per source where files land.")
    lake_dir: str = Field(description="Root of the Delta tables (<layer>/<table>).")

    @property
    def lake(self) -> Lake:
        return Lake(self.lake_dir)

    @property
    def landing(self) -> Landing:
        return Landing(self.landing_dir)


class ModelRegistry(dg.ConfigurableResource):
    """Where models are tracked and registered (MLflow)."""

    tracking_uri: str = Field(description="MLflow tracking and registry URI (a SQLite database by default).")
    artifact_location: str = Field(description="Folder for the artifacts of the lakehouse experiment.")
    experiment: str = Field(default="lakehouse_flights", description="MLflow experiment name.")
    model_name: str = Field(default="flight_delay_lgbm", description="MLflow registered model name.")

    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def activate(self) -> None:
        """Point the fluent ``mlflow.*`` API (model loading, artifacts) at this registry."""
        mlflow.set_tracking_uri(self.tracking_uri)


class RetrainingPolicy(dg.ConfigurableResource):
    """When the retraining sensor asks for a challenger (rules in :mod:`lakehouse.ml.sensors`)."""

    min_new_flights: int = Field(
        default=1000,
        description="Retrain on new data when a calendar month after the champion's holdout month holds at "
        "least this many labelled flights (a new holdout month large enough to compare models on).",
    )
    drift_psi: float = Field(
        default=0.25,
        description="Retrain on drift when a monitored column's PSI exceeds this (Siddiqi 2006: > 0.25 is a "
        "significant population shift).",
    )


def is_tracking_server(tracking_uri: str) -> bool:
    """Whether ``tracking_uri`` names an MLflow tracking server (``http://`` or ``https://``)."""
    return tracking_uri.startswith(("http://", "https://"))


def ensure_experiment(tracking_uri: str, name: str, artifact_location: str) -> str:
    """Create the MLflow experiment with its artifacts under ``artifact_location`` if missing; return its id.

    dagster-mlflow calls ``mlflow.set_experiment``, which would create the experiment with the default
    artifact root ``<cwd>/mlruns``; creating it first keeps artifacts inside the data folder.

    With a tracking *server* (an ``http(s)://`` URI, the distributed profile) ``artifact_location`` is not used:
    the experiment gets the server's default root, ``mlflow-artifacts:/...``, which the server proxies to its
    ``--artifacts-destination`` (the object store), so clients upload and download through the server and need
    no object-store credentials (docs/distributed.md). A local folder would be a path on the client's disk that
    other machines cannot read.
    """
    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    if is_tracking_server(tracking_uri):
        return mlflow.create_experiment(name)
    Path(artifact_location).mkdir(parents=True, exist_ok=True)
    return mlflow.create_experiment(name, artifact_location=Path(artifact_location).as_uri())


@dg.resource(config_schema={**CONFIG_SCHEMA, "artifact_location": dg.Field(dg.StringSource)})
def mlflow_tracking(init_context: dg.InitResourceContext) -> MlFlow:
    """dagster-mlflow's ``MlFlow`` resource (one MLflow run per Dagster run, tagged ``dagster_run_id``),
    after making sure the experiment exists with its artifacts under the configured folder."""
    cfg = init_context.resource_config
    # An MLflow run still active in this process belongs to an earlier Dagster run that ended without closing it
    # (a step failed before the model asset's own end_run; the dagster-mlflow hook only ends the run when its step
    # is the job's last node). MLflow's fluent API keeps one active-run stack per process, and dagster-mlflow would
    # resume that stale run (possibly of another tracking store: "Run with id=... not found"), so end it first.
    while mlflow.active_run() is not None:
        mlflow.end_run(status="KILLED")
    ensure_experiment(cfg["mlflow_tracking_uri"], cfg["experiment_name"], cfg["artifact_location"])
    return MlFlow(init_context)


def build_resources(
    settings: Settings | None = None,
    *,
    registry: ModelRegistry | None = None,
    retraining_policy: RetrainingPolicy | None = None,
) -> dict[str, Any]:
    """Resources keyed as the assets expect them, from ``settings`` (default :meth:`Settings.from_env`)."""
    settings = settings or Settings.from_env()
    registry = registry or ModelRegistry(
        tracking_uri=settings.mlflow_tracking_uri, artifact_location=settings.mlflow_artifact_location
    )
    return {
        "storage": LakehouseStorage(landing_dir=settings.landing_dir, lake_dir=settings.lake_dir),
        "registry": registry,
        "retraining_policy": retraining_policy or RetrainingPolicy(),
        "mlflow": mlflow_tracking.configured(
            {
                "experiment_name": registry.experiment,
                "mlflow_tracking_uri": registry.tracking_uri,
                "artifact_location": registry.artifact_location,
                "extra_tags": {"pipeline": "lakehouse"},
            }
        ),
    }
