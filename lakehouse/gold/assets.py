"""Gold assets: the point-in-time flight feature view and the route/day delay aggregate."""

import dagster as dg
import polars as pl

from lakehouse.automation import FEATURES_FRESHNESS, follow_upstream
from lakehouse.gold import checks, features
from lakehouse.metadata import asset_key, metadata_table, table_metadata
from lakehouse.resources import LakehouseStorage
from lakehouse.tables import FLIGHT_FEATURES, ROUTE_DAILY_DELAYS, SILVER

FEATURE_INPUTS = [SILVER[name] for name in ("flights", "weather", "planes")]


@dg.asset(
    key=asset_key(FLIGHT_FEATURES),
    deps=[asset_key(t) for t in FEATURE_INPUTS],
    group_name="gold",
    automation_condition=follow_upstream(),
    kinds={"delta", "polars"},
    description=(features.__doc__ or "").strip(),
    freshness_policy=FEATURES_FRESHNESS,
    check_specs=[checks.one_row_per_flight_spec(asset_key(FLIGHT_FEATURES))],
)
def flight_features(storage: LakehouseStorage) -> dg.MaterializeResult:
    lake = storage.lake
    frame = features.flight_features(*(lake.read(t) for t in FEATURE_INPUTS))
    lake.overwrite(FLIGHT_FEATURES, frame)
    span = frame.select(pl.col("flight_date").min().alias("lo"), pl.col("flight_date").max().alias("hi")).row(0)
    return dg.MaterializeResult(
        metadata=table_metadata(
            lake,
            FLIGHT_FEATURES,
            first_flight_date=str(span[0]),
            last_flight_date=str(span[1]),
            late_share=float(frame.get_column("is_late").mean() or 0.0),  # type: ignore[arg-type]
            outcomes=metadata_table(frame.group_by("outcome").len().sort("outcome")),
        ),
        check_results=[checks.one_row_per_flight(frame)],
    )


@dg.asset(
    key=asset_key(ROUTE_DAILY_DELAYS),
    deps=[asset_key(SILVER["flights"])],
    group_name="gold",
    automation_condition=follow_upstream(),
    kinds={"delta", "polars"},
    description=(features.route_daily_delays.__doc__ or "").strip(),
)
def route_daily_delays(storage: LakehouseStorage) -> dg.MaterializeResult:
    lake = storage.lake
    lake.overwrite(ROUTE_DAILY_DELAYS, features.route_daily_delays(lake.read(SILVER["flights"])))
    return dg.MaterializeResult(metadata=table_metadata(lake, ROUTE_DAILY_DELAYS))


gold_assets = [flight_features, route_daily_delays]
