"""Gold assets: the point-in-time flight feature view and the route/day delay aggregate."""

import dagster as dg
import polars as pl

from lakehouse import storage
from lakehouse.automation import FEATURES_FRESHNESS, follow_upstream
from lakehouse.settings import LakehouseSettings
from lakehouse.transforms import gold

SILVER = {name: dg.AssetKey(["silver", name]) for name in ("flights", "weather", "planes")}

def _read_silver(settings: LakehouseSettings, name: str) -> pl.DataFrame:
    return pl.read_delta(settings.table_path("silver", name))

@dg.asset(
    key=["gold", "flight_features"],
    deps=list(SILVER.values()),
    group_name="gold",
    automation_condition=follow_upstream(),
    kinds={"delta", "polars"},
    description=(gold.__doc__ or "").strip(),
    freshness_policy=FEATURES_FRESHNESS,
    check_specs=[dg.AssetCheckSpec("one_row_per_flight", asset=["gold", "flight_features"], blocking=True)],
)
def flight_features(settings: LakehouseSettings) -> dg.MaterializeResult:
    features = gold.flight_features(*(_read_silver(settings, n) for n in SILVER))
    path = settings.table_path("gold", "flight_features")
    storage.overwrite(path, features)
    n_ids = features.get_column("flight_id").n_unique()
    span = features.select(pl.col("flight_date").min().alias("lo"), pl.col("flight_date").max().alias("hi")).row(0)
    return dg.MaterializeResult(
        metadata=storage.table_metadata(
            path, first_flight_date=str(span[0]), last_flight_date=str(span[1]),
            late_share=float(features.get_column("is_late").mean() or 0.0),
            outcomes=storage.metadata_table(features.group_by("outcome").len().sort("outcome")),
        ),
        check_results=[dg.AssetCheckResult(check_name="one_row_per_flight", passed=n_ids == features.height,
                                           metadata={"rows": features.height, "distinct_flight_ids": n_ids})],
    )

@dg.asset(
    key=["gold", "route_daily_delays"],
    deps=[SILVER["flights"]],
    group_name="gold",
    automation_condition=follow_upstream(),
    kinds={"delta", "polars"},
    description=(gold.route_daily_delays.__doc__ or "").strip(),
)
def route_daily_delays(settings: LakehouseSettings) -> dg.MaterializeResult:
    path = settings.table_path("gold", "route_daily_delays")
    storage.overwrite(path, gold.route_daily_delays(_read_silver(settings, "flights")))
    return dg.MaterializeResult(metadata=storage.table_metadata(path))

gold_assets = [flight_features, route_daily_delays]
