"""The Dagster code location: every asset, check, sensor, job and resource of the lakehouse.

Loaded by ``dg dev`` (``[tool.dg]`` in pyproject.toml), ``dagster-webserver -w workspace.yaml``, the CLI and the
tests. Definitions are discovered in the layer modules listed in :data:`LAYER_MODULES` (every asset, check and
sensor they define at module scope), so adding an asset to a layer needs no edit here.
"""

from __future__ import annotations

import dagster as dg

from lakehouse import automation
from lakehouse.bronze import assets as bronze_assets
from lakehouse.bronze import sensors as bronze_sensors
from lakehouse.executors import executor_from_env
from lakehouse.gold import assets as gold_assets
from lakehouse.gold import sensors as gold_sensors
from lakehouse.maintenance import jobs as maintenance_jobs
from lakehouse.ml import assets as ml_assets
from lakehouse.ml import monitoring as ml_monitoring
from lakehouse.ml import sensors as ml_sensors
from lakehouse.pipeline import STEPS
from lakehouse.resources import build_resources
from lakehouse.settings import Settings
from lakehouse.silver import assets as silver_assets

LAYER_MODULES = [
    bronze_assets,
    bronze_sensors,
    silver_assets,
    gold_assets,
    gold_sensors,
    ml_assets,
    ml_monitoring,
    ml_sensors,
    automation,
    maintenance_jobs,
]

# The four steps of lakehouse.pipeline as jobs (Launchpad, sensors, schedules): the gold months, predictions and
# drift are partitioned, so the whole graph is not one job (a run of it would need month ranges known only after
# the step before).
JOBS = [dg.define_asset_job(name, selection=selection, description=text) for name, selection, text in STEPS]


def build_definitions(
    settings: Settings | None = None, executor: dg.ExecutorDefinition | None = None
) -> dg.Definitions:
    """Definitions wired to ``settings`` (default: :meth:`Settings.from_env`), their jobs run by ``executor``
    (default: :func:`lakehouse.executors.executor_from_env`, the in-process executor unless ``LAKEHOUSE_EXECUTOR``
    says otherwise).

    Raises:
        lakehouse.executors.ExecutorConfigError: ``LAKEHOUSE_EXECUTOR`` is set to something unsupported.
    """
    # In-process executor by default: Dagster's default multiprocess executor starts a fresh Python per step and
    # re-imports dagster, mlflow and every asset (a 12-day slice took 176 s that way vs 24.5 s in-process,
    # BENCHMARKS.md). Pools are still enforced in-process, so two runs never write one Delta table at once.
    layers = dg.load_definitions_from_modules(LAYER_MODULES)
    return dg.Definitions.merge(
        layers,
        dg.Definitions(jobs=JOBS, resources=build_resources(settings), executor=executor or executor_from_env()),
    )


defs = build_definitions()
ALL_ASSETS: list[dg.AssetsDefinition] = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
ALL_CHECKS: list[dg.AssetChecksDefinition] = [
    c for c in defs.asset_checks or [] if isinstance(c, dg.AssetChecksDefinition)
]
