"""The Dagster code location: every asset, check, job and resource of the lakehouse.

Loaded by ``dagster dev -w workspace.yaml``, ``dg dev`` (``[tool.dg]`` in pyproject.toml) and the tests.
"""

from __future__ import annotations

import dagster as dg

from lakehouse.assets.bronze import bronze_assets
from lakehouse.automation import automation_sensor
from lakehouse.sensors import landing_sensor
from lakehouse.assets.gold import gold_assets
from lakehouse.assets.ml import ml_assets
from lakehouse.assets.monitoring import monitoring_assets
from lakehouse.assets.silver import accounting_checks, silver_assets
from lakehouse.resources import build_resources
from lakehouse.retraining import retraining_sensors
from lakehouse.settings import LakehouseSettings

ALL_ASSETS = [*bronze_assets, *silver_assets, *gold_assets, *ml_assets, *monitoring_assets]
ALL_CHECKS: list[dg.AssetChecksDefinition] = [*accounting_checks, ]
ALL_SENSORS: list[dg.SensorDefinition] = [landing_sensor, automation_sensor, *retraining_sensors]

medallion_job = dg.define_asset_job(
    "medallion",
    selection=dg.AssetSelection.all(),
    description="Landing -> bronze -> silver -> gold -> model -> predictions, on whatever has landed.",
)


def build_definitions(settings: LakehouseSettings | None = None) -> dg.Definitions:
    """Definitions wired to ``settings`` (default: :meth:`LakehouseSettings.from_env`)."""
    settings = settings or LakehouseSettings.from_env()
    # In-process executor: Dagster's default multiprocess executor starts a fresh Python per step and re-imports
    # dagster, mlflow and every asset (a 12-day slice took 176 s that way vs 24.5 s in-process, BENCHMARKS.md).
    # Pools are still enforced in-process, so two runs never write one Delta table at once.
    return dg.Definitions(assets=ALL_ASSETS, asset_checks=ALL_CHECKS, sensors=ALL_SENSORS, jobs=[medallion_job],
                          resources=build_resources(settings), executor=dg.in_process_executor)


defs = build_definitions()
