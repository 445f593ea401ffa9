"""The gold sensor: stale months of the gold tables become partitioned runs.

Every tick it asks the lake which months are stale (:func:`lakehouse.gold.months.stale_months`: months with silver
flights and no gold partition, or reached by a silver commit made after the month was built) and requests one run
per contiguous range of them (a single-run backfill of ``gold/flight_features`` and ``gold/route_daily_delays``).
So landing July materializes July (and August, if August was already built: its 28-day windows reach back into
July), nothing else; a correction of March re-runs March and April. Run keys name the range and the silver
versions, so one state of the lake is requested once, and no request is made while a gold run is in progress.
"""

from datetime import date

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_START_TAG, PARTITION_NAME_TAG

from lakehouse.gold import assets as gold_assets
from lakehouse.gold.months import FEATURE_REACH, ROUTE_REACH, contiguous, stale_months
from lakehouse.partitions import MONTHS, MONTHS_TAG, month_of_key, range_tags
from lakehouse.resources import LakehouseStorage
from lakehouse.tables import FLIGHT_FEATURES, ROUTE_DAILY_DELAYS, SILVER, Lake

GOLD_KEYS = [gold_assets.flight_features.key, gold_assets.route_daily_delays.key]


def stale(lake: Lake) -> list[date]:
    """The months either gold table needs (re)built, oldest first."""
    months = [month_of_key(k) for k in MONTHS.get_partition_keys()]
    return sorted(
        set(stale_months(lake, FLIGHT_FEATURES, FEATURE_REACH, months))
        | set(stale_months(lake, ROUTE_DAILY_DELAYS, ROUTE_REACH, months))
    )


def gold_requests(lake: Lake) -> list[dg.RunRequest]:
    """One run request per contiguous range of stale months."""
    versions = lake.input_versions(list(SILVER.values()))
    state = ",".join(f"{v}" for _, v in sorted(versions.items()))
    return [
        dg.RunRequest(
            run_key=f"gold:{first:%Y-%m}..{last:%Y-%m}:{state}",
            asset_selection=GOLD_KEYS,
            tags=range_tags(first, last),
        )
        for first, last in contiguous(stale(lake))
    ]


@dg.sensor(
    name="gold_months_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    asset_selection=GOLD_KEYS,
    description="Requests the stale months of the gold tables (new or corrected silver data), one run per range.",
)
def gold_months_sensor(
    context: dg.SensorEvaluationContext, storage: LakehouseStorage
) -> dg.SensorResult | dg.SkipReason:
    running = _gold_runs_in_progress(context.instance)
    if running:
        return dg.SkipReason(f"a gold run is in progress ({running}); the next tick looks again")
    requests = gold_requests(storage.lake)
    if not requests:
        return dg.SkipReason("no gold month is stale (every month with silver flights is built from the latest data)")
    return dg.SensorResult(run_requests=requests)


def _gold_runs_in_progress(instance: dg.DagsterInstance) -> str | None:
    """The months tag of a queued or running gold run, None when there is none."""
    records = instance.get_run_records(
        dg.RunsFilter(
            statuses=[
                dg.DagsterRunStatus.QUEUED,
                dg.DagsterRunStatus.NOT_STARTED,
                dg.DagsterRunStatus.STARTING,
                dg.DagsterRunStatus.STARTED,
            ],
        ),
        limit=50,
    )
    for record in records:
        tags = record.dagster_run.tags
        months = tags.get(MONTHS_TAG) or tags.get(ASSET_PARTITION_RANGE_START_TAG) or tags.get(PARTITION_NAME_TAG)
        if months:  # ours, a backfill or a single month started from the UI
            return months
    return None
