"""Asset checks of the gold layer.

``one_row_per_flight`` (blocking) is evaluated by ``gold/flight_features`` from the frame it writes.
"""

from __future__ import annotations

import dagster as dg
import polars as pl

ONE_ROW_PER_FLIGHT = "one_row_per_flight"


def one_row_per_flight_spec(key: dg.AssetKey) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        ONE_ROW_PER_FLIGHT,
        asset=key,
        blocking=True,
        description="The feature view holds exactly one row per flight_id.",
    )


def one_row_per_flight(features: pl.DataFrame) -> dg.AssetCheckResult:
    n_ids = features.get_column("flight_id").n_unique()
    return dg.AssetCheckResult(
        check_name=ONE_ROW_PER_FLIGHT,
        passed=n_ids == features.height,
        metadata={"rows": features.height, "distinct_flight_ids": n_ids},
    )
