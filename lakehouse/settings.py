"""Where the lakehouse keeps its files, with embedded defaults and environment overrides.

Every path defaults to a folder under ``<repo>/data`` so a fresh clone runs with no configuration:

| setting              | environment variable        | default                                   |
|----------------------|-----------------------------|-------------------------------------------|
| data root            | ``LAKEHOUSE_DATA_DIR``      | ``<repo>/data``                           |
| landing zone         | ``LAKEHOUSE_LANDING_DIR``   | ``<data>/landing``                        |
| Delta lake root      | ``LAKEHOUSE_LAKE_DIR``      | ``<data>/lake``                           |
| MLflow tracking URI  | ``LAKEHOUSE_MLFLOW_URI``    | ``sqlite:///<data>/mlflow/mlflow.db``     |
| MLflow artifacts     | ``LAKEHOUSE_MLFLOW_ARTIFACTS`` | ``<data>/mlflow/artifacts``            |

The Dagster instance itself lives in ``$DAGSTER_HOME`` (the CLI sets it to ``<data>/dagster``).
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
from pydantic import Field

REPO_ROOT = Path(__file__).resolve().parents[1]


def _env_path(name: str, default: Path) -> str:
    return str(Path(os.environ.get(name, str(default))).resolve())


def default_data_dir() -> str:
    return _env_path("LAKEHOUSE_DATA_DIR", REPO_ROOT / "data")


class LakehouseSettings(dg.ConfigurableResource):
    """Storage locations shared by every asset. Build it with :meth:`from_env` (or pass paths in tests)."""

    landing_dir: str = Field(description="Folder with one sub-folder per source where files land.")
    lake_dir: str = Field(description="Root folder of the Delta tables (<layer>/<table>).")
    mlflow_tracking_uri: str = Field(description="MLflow tracking URI (a SQLite database by default).")
    mlflow_artifact_location: str = Field(description="Folder for MLflow artifacts of the lakehouse experiment.")
    mlflow_experiment: str = Field(default="lakehouse_flights", description="MLflow experiment name.")
    registered_model_name: str = Field(default="flight_delay_lgbm", description="MLflow registered model name.")
    max_quarantine_share: float = Field(
        default=0.05,
        description="Silver's blocking check fails when more than this share of a batch's rows is quarantined: "
        "a few bad rows are data, a large share means a broken export or a contract change.",
    )
    promotion_max_roc_auc_drop: float = Field(
        default=0.005,
        description="Champion/challenger margin: the challenger is promoted when its holdout ROC-AUC is at least "
        "the champion's minus this (0.005 ~ 1.5 standard errors of ROC-AUC on a month of flights).",
    )
    retrain_min_new_flights: int = Field(
        default=1000,
        description="Retrain on new data when a calendar month after the champion's holdout month holds at "
        "least this many labelled flights (a new holdout month large enough to compare models on).",
    )
    retrain_drift_psi: float = Field(
        default=0.25,
        description="Retrain on drift when a monitored column's PSI exceeds this (Siddiqi 2006: > 0.25 is a "
        "significant population shift).",
    )

    @classmethod
    def from_env(cls, data_dir: str | os.PathLike | None = None) -> LakehouseSettings:
        """Settings from the environment variables in the module docstring, else defaults under ``data_dir``."""
        data = Path(data_dir).resolve() if data_dir is not None else Path(default_data_dir())

        def env(name: str, default: str) -> str:  # an explicit data_dir wins over the environment
            return default if data_dir is not None else os.environ.get(name, default)

        return cls(
            landing_dir=str(Path(env("LAKEHOUSE_LANDING_DIR", str(data / "landing"))).resolve()),
            lake_dir=str(Path(env("LAKEHOUSE_LAKE_DIR", str(data / "lake"))).resolve()),
            mlflow_tracking_uri=env("LAKEHOUSE_MLFLOW_URI", f"sqlite:///{data / 'mlflow' / 'mlflow.db'}"),
            mlflow_artifact_location=str(
                Path(env("LAKEHOUSE_MLFLOW_ARTIFACTS", str(data / "mlflow" / "artifacts"))).resolve()),
        )

    def table_path(self, layer: str, table: str) -> str:
        """Filesystem path of the Delta table ``<lake_dir>/<layer>/<table>``."""
        return str(Path(self.lake_dir) / layer / table)

    def landing_path(self, source: str) -> Path:
        return Path(self.landing_dir) / source
