"""Gold assets: the point-in-time flight feature view and the route/day delay aggregate, partitioned by month.

Both are Dagster **monthly time-window partitions** (:data:`lakehouse.partitions.MONTHS`) stored as Delta
partitions (``flight_month``). A run materializes a range of months in one process (single-run backfill policy),
one month at a time: it reads the silver flights of the month's context only (:func:`~lakehouse.gold.features.
month_context`: the month, the 31 days before it and the hour after it, pruned by silver's ``year, month``
partitions), pinned at one Delta version, and replaces that month's Delta partition (replace-where), recording the
silver versions it read in the commit. A month therefore costs what the month costs, not what the lake costs. Each
month's materialization carries its own figures (``dagster/row_count`` and the month's row of ``months``);
``run_rows`` and the ``months`` table are the run's.

Which months to run is decided from the lake (:mod:`lakehouse.gold.months`): the gold sensor
(:mod:`lakehouse.gold.sensors`) and ``lakehouse run`` request the stale months only; from the UI any month or range
can be (re)materialized or backfilled.
"""

from datetime import date, timedelta

import dagster as dg
import polars as pl

from lakehouse.automation import FEATURES_FRESHNESS
from lakehouse.gold import checks, features
from lakehouse.metadata import asset_key, metadata_table
from lakehouse.partitions import MONTHS, month_of_key
from lakehouse.resources import LakehouseStorage
from lakehouse.silver.conform import LOCAL_TZ
from lakehouse.storage import WriteBehind
from lakehouse.tables import FLIGHT_FEATURES, ROUTE_DAILY_DELAYS, SILVER, Lake, Table

FEATURE_INPUTS = [SILVER[name] for name in ("flights", "weather", "planes")]
GOLD_POOL = "gold_months"  # one writer of the gold months at a time (dagster.yaml sets the pools' limit to 1)


def _calendar_months(lo: date, hi: date) -> list[tuple[int, int]]:
    """``(year, month)`` of every calendar month from ``lo``'s to ``hi``'s, both included."""
    out, (y, m) = [], (lo.year, lo.month)
    while (y, m) <= (hi.year, hi.month):
        out.append((y, m))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def silver_flights_between(lake: Lake, version: int, lo, hi, columns: list[str] | None = None) -> pl.DataFrame:
    """Silver flights (at Delta ``version``) scheduled in ``[lo, hi)`` UTC, reading only the ``year, month``
    partitions of the local months that span covers; ``columns`` only when given (default all)."""
    months = _calendar_months(
        (lo - timedelta(days=1)).date(), (hi + timedelta(days=1)).date()
    )  # local months around a UTC span: a day of margin each side covers any UTC offset
    in_months = pl.any_horizontal([(pl.col("year") == y) & (pl.col("month") == m) for y, m in months])
    return (
        lake.scan(SILVER["flights"], version=version)
        .filter(in_months)
        .filter(pl.col("sched_dep_utc").is_between(lo, hi, closed="left"))
        .select(columns or pl.all())
        .collect()
    )


def _weather_between(lake: Lake, version: int, lo, hi) -> pl.DataFrame:
    return lake.scan(SILVER["weather"], version=version).filter(pl.col("time_hour").is_between(lo, hi)).collect()


def _existing_inputs(lake: Lake, tables: list[Table]) -> dict[str, int]:
    """The current Delta version of each input (``<layer>/<name>`` -> version).

    Raises:
        dagster.Failure: an input table does not exist yet (its source has not been landed and ingested).
    """
    inputs = lake.input_versions(tables)
    missing = [path for path, version in inputs.items() if version < 0]
    if missing:
        raise dg.Failure(f"{', '.join(missing)} does not exist yet: land its source and materialize it first")
    return inputs


def _empty(lake: Lake, table: Table) -> pl.DataFrame | None:
    """An empty frame with ``table``'s columns (replacing a month that has no flights any more), None when the
    table does not exist yet (then there is nothing to replace)."""
    return pl.DataFrame(schema=lake.scan(table).collect_schema()) if lake.exists(table) else None


def _month_keys(context: dg.AssetExecutionContext) -> list[str]:
    return list(context.partition_keys)


@dg.asset(
    key=asset_key(FLIGHT_FEATURES),
    deps=[asset_key(t) for t in FEATURE_INPUTS],
    group_name="gold",
    partitions_def=MONTHS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=GOLD_POOL,
    kinds={"delta", "polars"},
    description=(features.__doc__ or "").strip(),
    freshness_policy=FEATURES_FRESHNESS,
    check_specs=[checks.one_row_per_flight_spec(asset_key(FLIGHT_FEATURES))],
)
def flight_features(context: dg.AssetExecutionContext, storage: LakehouseStorage) -> dg.MaterializeResult:
    lake = storage.lake
    inputs = _existing_inputs(lake, FEATURE_INPUTS)  # pinned: every month of this run reads these versions
    planes = lake.read(SILVER["planes"], version=inputs["silver/planes"])
    written: list[dict[str, object]] = []
    ids = []
    rows, last_write = 0, None
    with WriteBehind() as writer:  # month M is written while month M+1 is read and computed
        for key in _month_keys(context):
            month = month_of_key(key)
            lo, hi = features.month_context(month)
            flights = silver_flights_between(lake, inputs["silver/flights"], lo, hi, features.INPUT_COLUMNS)
            weather_lo = lo - features.WEATHER_AVAILABLE_AFTER - features.WEATHER_TOLERANCE
            weather = _weather_between(lake, inputs["silver/weather"], weather_lo, hi)
            start, end = features.month_bounds(month)
            if flights.filter(pl.col("sched_dep_utc").is_between(start, end, closed="left")).is_empty():
                writer.wait()  # the table may be created by the pending write
                frame = _empty(lake, FLIGHT_FEATURES)  # a month without flights (a backfill of the whole range)
            else:
                frame = features.month_features(flights, weather, planes, month)
            if frame is not None:
                last_write = writer.submit(lake.replace_partition, FLIGHT_FEATURES, frame, month, inputs)
            else:
                schema = {"flight_id": pl.String, "is_late": pl.Int8}
                frame = pl.DataFrame({"flight_id": [], "is_late": []}, schema=schema)
            ids.append(frame.select("flight_id"))
            written.append(
                {
                    "month": key,
                    "flights": frame.height,
                    "context_flights": flights.height,
                    "late_share": frame.select(pl.col("is_late").cast(pl.Float64).mean()).item(),
                }
            )
            rows += frame.height
            # this month's own figures on its materialization (the partitions page); the run's are below
            context.add_asset_metadata({"dagster/row_count": frame.height, **written[-1]}, partition_key=key)
            context.log.info(
                f"{FLIGHT_FEATURES.path} {key}: {frame.height:,} flights from {flights.height:,} in context"
            )
            del flights, weather, frame  # before the next month's read: one month computed, one being written
    version = None if last_write is None else last_write.result()  # the Delta version of the run's last commit
    return dg.MaterializeResult(
        metadata={
            "dagster/uri": dg.MetadataValue.path(lake.location(FLIGHT_FEATURES)),
            "run_rows": rows,
            "delta_version": dg.MetadataValue.int(version) if version is not None else dg.MetadataValue.null(),
            "months": metadata_table(pl.DataFrame(written)),
            "built_from": dg.MetadataValue.json(inputs),
            "time_zone": LOCAL_TZ,
        },
        check_results=[checks.one_row_per_flight(pl.concat(ids) if ids else pl.DataFrame({"flight_id": []}))],
    )


@dg.asset(
    key=asset_key(ROUTE_DAILY_DELAYS),
    deps=[asset_key(SILVER["flights"])],
    group_name="gold",
    partitions_def=MONTHS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=GOLD_POOL,
    kinds={"delta", "polars"},
    description=(features.route_daily_delays.__doc__ or "").strip(),
)
def route_daily_delays(context: dg.AssetExecutionContext, storage: LakehouseStorage) -> dg.MaterializeResult:
    lake = storage.lake
    inputs = _existing_inputs(lake, [SILVER["flights"]])
    written: list[dict[str, object]] = []
    rows, version = 0, None  # the Delta version of this run's last commit (None: no month written)
    for key in _month_keys(context):
        month = month_of_key(key)
        start, end = features.month_bounds(month)
        flights = silver_flights_between(lake, inputs["silver/flights"], start, end, features.ROUTE_INPUT_COLUMNS)
        frame = features.route_daily_delays(flights) if not flights.is_empty() else _empty(lake, ROUTE_DAILY_DELAYS)
        if frame is not None:
            version = lake.replace_partition(ROUTE_DAILY_DELAYS, frame, month, inputs)
        written.append({"month": key, "route_days": 0 if frame is None else frame.height})
        rows += 0 if frame is None else frame.height
        context.add_asset_metadata({"dagster/row_count": written[-1]["route_days"]}, partition_key=key)
    return dg.MaterializeResult(
        metadata={
            "dagster/uri": dg.MetadataValue.path(lake.location(ROUTE_DAILY_DELAYS)),
            "run_rows": rows,
            "delta_version": dg.MetadataValue.int(version) if version is not None else dg.MetadataValue.null(),
            "months": metadata_table(pl.DataFrame(written)),
            "built_from": dg.MetadataValue.json(inputs),
        }
    )


gold_assets = [flight_features, route_daily_delays]
