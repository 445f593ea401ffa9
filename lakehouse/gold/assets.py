"""Gold assets: the point-in-time flight feature view and the route/day delay aggregate.

Each gold table records in its Delta commit the versions of the silver tables it was built from
(:meth:`lakehouse.tables.Lake.built_from`). When those are still the current versions (a run with nothing new:
silver commits nothing then), the asset reports the table as unchanged instead of rewriting it, so its Delta version
stays and everything keyed on it (the model's training window, drift's "already evaluated") sees no change.
"""

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
    inputs = lake.input_versions(FEATURE_INPUTS)
    if lake.exists(FLIGHT_FEATURES) and lake.built_from(FLIGHT_FEATURES) == inputs:
        current = lake.read(FLIGHT_FEATURES, columns=["flight_id"])
        return dg.MaterializeResult(
            metadata=table_metadata(lake, FLIGHT_FEATURES, unchanged=True, built_from=dg.MetadataValue.json(inputs)),
            check_results=[checks.one_row_per_flight(current)],
        )
    frame = features.flight_features(*(lake.read(t) for t in FEATURE_INPUTS))
    lake.overwrite(FLIGHT_FEATURES, frame, inputs=inputs)
    span = frame.select(pl.col("flight_date").min().alias("lo"), pl.col("flight_date").max().alias("hi")).row(0)
    return dg.MaterializeResult(
        metadata=table_metadata(
            lake,
            FLIGHT_FEATURES,
            first_flight_date=str(span[0]),
            last_flight_date=str(span[1]),
            unchanged=False,
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
    inputs = lake.input_versions([SILVER["flights"]])
    if lake.exists(ROUTE_DAILY_DELAYS) and lake.built_from(ROUTE_DAILY_DELAYS) == inputs:
        return dg.MaterializeResult(metadata=table_metadata(lake, ROUTE_DAILY_DELAYS, unchanged=True))
    lake.overwrite(ROUTE_DAILY_DELAYS, features.route_daily_delays(lake.read(SILVER["flights"])), inputs=inputs)
    return dg.MaterializeResult(metadata=table_metadata(lake, ROUTE_DAILY_DELAYS, unchanged=False))


gold_assets = [flight_features, route_daily_delays]
