"""Where the lakehouse keeps its files, with embedded defaults and environment overrides.

Every location defaults to a folder under ``<repo>/data`` so a fresh clone runs with no configuration:

| setting              | environment variable           | default                               |
|----------------------|--------------------------------|---------------------------------------|
| data root            | ``LAKEHOUSE_DATA_DIR``         | ``<repo>/data``                       |
| landing zone         | ``LAKEHOUSE_LANDING_DIR``      | ``<data>/landing``                    |
| Delta lake root      | ``LAKEHOUSE_LAKE_DIR``         | ``<data>/lake``                       |
| S3 endpoint          | ``AWS_ENDPOINT_URL``           | AWS S3                                |
| S3 credentials       | ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` (``AWS_SESSION_TOKEN``) | none  |
| S3 region, plain HTTP| ``AWS_REGION``, ``AWS_ALLOW_HTTP`` | none                              |
| MLflow tracking URI  | ``LAKEHOUSE_MLFLOW_URI``       | ``sqlite:///<data>/mlflow/mlflow.db`` |
| MLflow artifacts     | ``LAKEHOUSE_MLFLOW_ARTIFACTS`` | ``<data>/mlflow/artifacts``           |

The landing zone and the lake root are *locations* (:mod:`lakehouse.locations`): a local path, resolved to an
absolute one, or ``s3://bucket[/prefix]`` reached with the ``AWS_*`` variables above. Any other value
(``gs://...``, ``s3:``, ``file://...``) raises :class:`lakehouse.locations.LocationError` naming the variable; it is
never reinterpreted as a local folder.

The Dagster instance itself lives in ``$DAGSTER_HOME`` (the CLI sets it to ``<data>/dagster``). This module only
resolves locations; :mod:`lakehouse.resources` turns them into Dagster resources.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lakehouse import locations

REPO_ROOT = Path(__file__).resolve().parents[1]


def default_data_dir() -> str:
    """``LAKEHOUSE_DATA_DIR`` or ``<repo>/data``, as an absolute path."""
    return str(Path(os.environ.get("LAKEHOUSE_DATA_DIR", str(REPO_ROOT / "data"))).resolve())


@dataclass(frozen=True)
class Settings:
    """Resolved locations: the landing zone and the lake as :func:`lakehouse.locations.parse` returns them (an
    absolute path or ``s3://bucket[/prefix]``), the MLflow tracking URI and the artifact folder."""

    landing_dir: str
    lake_dir: str
    mlflow_tracking_uri: str
    mlflow_artifact_location: str

    @classmethod
    def from_env(cls, data_dir: str | os.PathLike[str] | None = None) -> Settings:
        """Locations from the environment variables in the module docstring, else defaults under the data root.

        An explicit ``data_dir`` wins over the environment (tests use it for temporary lakes).

        Raises:
            lakehouse.locations.LocationError: ``LAKEHOUSE_LANDING_DIR`` or ``LAKEHOUSE_LAKE_DIR`` is not a supported
                location (one line naming the variable).
        """
        data = Path(data_dir).resolve() if data_dir is not None else Path(default_data_dir())

        def env(name: str, default: str) -> str:
            return default if data_dir is not None else os.environ.get(name, default)

        return cls(
            landing_dir=locations.parse(env("LAKEHOUSE_LANDING_DIR", str(data / "landing")), "LAKEHOUSE_LANDING_DIR"),
            lake_dir=locations.parse(env("LAKEHOUSE_LAKE_DIR", str(data / "lake")), "LAKEHOUSE_LAKE_DIR"),
            mlflow_tracking_uri=env("LAKEHOUSE_MLFLOW_URI", f"sqlite:///{data / 'mlflow' / 'mlflow.db'}"),
            mlflow_artifact_location=str(
                Path(env("LAKEHOUSE_MLFLOW_ARTIFACTS", str(data / "mlflow" / "artifacts"))).resolve()
            ),
        )
