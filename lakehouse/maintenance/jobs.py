"""The Dagster side of table maintenance: the job ``lake_maintenance`` and its daily schedule.

The job has one op per **writer** of the lake (the asset that writes a table, e.g. ``silver/flights`` writes
``silver/flights`` and ``silver/flights_quarantine``), each declaring the writer's own concurrency **pool**
(read from the writer's definition, so it cannot drift): pools have one slot (``lakehouse/dagster.yaml``), so a
table is never compacted or vacuumed while its writer runs, in this run or another one. delta-rs would refuse a
compaction racing a MERGE or an overwrite (a commit conflict, nothing lost), but an overwrite committed after a
concurrent compaction keeps the compacted copy of the old rows (docs/stack-notes.md, "Delta maintenance"):
overwritten tables are therefore never compacted, only vacuumed, whose *lite* mode never touches a file the log
does not mention (a writer's uncommitted files). A writer without a pool (the gold assets today) gets the pool
named after its table, ``<layer>_<name>``, which protects against a concurrent maintenance run only.

First op ``plan_maintenance`` reads the run's config (:class:`MaintenanceConfig`, set in the Launchpad:
``retention_hours``, default 168 = Delta's 7 days; ``compact``; ``target_file_mb``) and asks the MLflow registry
which Delta versions registered models were trained on (:func:`lakehouse.ml.registry.trained_versions`); every
table op keeps those versions' files. Each table op reports, as its output metadata and as an ``AssetObservation``
of the writer asset (its *Events* and *Plots*), files and bytes before and after (current version and on disk),
files compacted and vacuumed, versions kept.

Schedule ``lake_maintenance_daily`` (03:30 UTC, RUNNING by default): a lake that looks after itself must not
need someone to remember a switch, and the run is safe to start at any time (pools, 7-day retention, kept
model versions). It only fires under a daemon (``lakehouse ui``); ``lakehouse run`` never starts it.
"""

import dagster as dg
from pydantic import Field

from lakehouse.bronze import assets as bronze
from lakehouse.gold import assets as gold
from lakehouse.maintenance.housekeeping import DEFAULT_RETENTION_HOURS, TableReport, maintain, reports_frame
from lakehouse.metadata import asset_key, metadata_table
from lakehouse.ml import assets as ml
from lakehouse.ml import monitoring
from lakehouse.ml.registry import trained_versions
from lakehouse.resources import LakehouseStorage, ModelRegistry
from lakehouse.silver import assets as silver
from lakehouse.tables import (
    ALL_TABLES,
    BRONZE,
    FEATURE_DRIFT,
    FLIGHT_FEATURES,
    INGEST_LOG,
    MODEL_DECISIONS,
    PREDICTIONS,
    QUARANTINE,
    ROUTE_DAILY_DELAYS,
    SILVER,
    Table,
)

WRITERS: dict[dg.AssetKey, tuple[Table, ...]] = {
    **{asset_key(BRONZE[s]): (BRONZE[s], INGEST_LOG[s]) for s in BRONZE},
    **{asset_key(SILVER[s]): (SILVER[s], QUARANTINE[s]) for s in SILVER},
    asset_key(FLIGHT_FEATURES): (FLIGHT_FEATURES,),
    asset_key(ROUTE_DAILY_DELAYS): (ROUTE_DAILY_DELAYS,),
    asset_key(PREDICTIONS): (PREDICTIONS,),
    asset_key(FEATURE_DRIFT): (FEATURE_DRIFT,),
    ml.MODEL_KEY: (MODEL_DECISIONS,),  # ml/champion rewrites it too, in the same pool (checked below)
}
"""Which asset writes which tables (every table of the catalogue exactly once)."""
ALSO_WRITTEN_BY: dict[dg.AssetKey, tuple[dg.AssetKey, ...]] = {ml.MODEL_KEY: (ml.CHAMPION_KEY,)}

_WRITER_ASSETS = [
    *bronze.bronze_assets,
    *silver.silver_assets,
    *gold.gold_assets,
    *ml.ml_assets,
    *monitoring.monitoring_assets,
]
_BY_KEY = {key: a for a in _WRITER_ASSETS for key in a.keys}


def writer_pool(writer: dg.AssetKey) -> str | None:
    """The concurrency pool the writer asset (and every other asset writing its tables) declares."""
    pools = {_BY_KEY[k].op.pool for k in (writer, *ALSO_WRITTEN_BY.get(writer, ()))}
    if len(pools) != 1:
        raise ValueError(f"the writers of {writer.to_user_string()}'s tables use different pools: {pools}")
    return pools.pop()


def maintenance_pool(writer: dg.AssetKey) -> str:
    """The pool a maintenance op of ``writer``'s tables claims: the writer's, else ``<layer>_<name>``."""
    return writer_pool(writer) or "_".join(writer.path)


class MaintenanceConfig(dg.Config):
    retention_hours: int = Field(
        default=DEFAULT_RETENTION_HOURS,
        ge=0,
        description="VACUUM deletes data files removed from a table more than this many hours ago (Delta's "
        "default: 168 = 7 days). Files of versions a registered model was trained on are always kept. Below 168, "
        "a reader of an older snapshot (a run started before) may find its files gone.",
    )
    compact: bool = Field(
        default=True, description="Compact small files of appended and merged tables (never of overwritten ones)."
    )
    target_file_mb: int | None = Field(
        default=None,
        ge=1,
        description="Size of a compacted file, MiB (default: the table's delta.targetFileSize, else 100 MB).",
    )


@dg.op(
    description="The run's maintenance settings (MaintenanceConfig, set in the Launchpad) and the Delta versions of "
    "each table that registered models of the MLflow registry were trained on (kept by VACUUM).",
    out=dg.Out(
        dict,
        description="retention_hours, compact, target_size (bytes or None), protected "
        "(<layer>/<name> -> sorted Delta versions)",
    ),
)
def plan_maintenance(context: dg.OpExecutionContext, config: MaintenanceConfig, registry: ModelRegistry) -> dict:
    kept = trained_versions(registry)
    context.add_output_metadata(
        {"versions_kept": dg.MetadataValue.json(kept), "retention_hours": config.retention_hours}
    )
    return {
        "retention_hours": config.retention_hours,
        "compact": config.compact,
        "target_size": None if config.target_file_mb is None else config.target_file_mb * 2**20,
        "protected": kept,
    }


def _mb(n: int | None) -> float | None:
    return None if n is None else round(n / 2**20, 3)


def _report_metadata(report: TableReport, prefix: str = "") -> dict:
    b, a = report.before, report.after
    if b is None or a is None:
        return {f"{prefix}skipped": report.skipped or ""}
    return {
        f"{prefix}files_before": b.files,
        f"{prefix}files_after": a.files,
        f"{prefix}size_mb_before": _mb(b.bytes),
        f"{prefix}size_mb_after": _mb(a.bytes),
        f"{prefix}disk_files_before": b.disk_files,
        f"{prefix}disk_files_after": a.disk_files,
        f"{prefix}disk_mb_before": _mb(b.disk_bytes),
        f"{prefix}disk_mb_after": _mb(a.disk_bytes),
        f"{prefix}files_compacted": report.files_compacted,
        f"{prefix}files_vacuumed": report.files_vacuumed,
        f"{prefix}versions_kept": dg.MetadataValue.json(report.versions_kept),
        f"{prefix}delta_version_after": a.version,
    }


def build_maintenance_op(writer: dg.AssetKey, tables: tuple[Table, ...]) -> dg.OpDefinition:
    name = "maintain__" + "__".join(writer.path)

    @dg.op(
        name=name,
        pool=maintenance_pool(writer),
        description=f"Compact, vacuum, checkpoint {', '.join(t.path for t in tables)} (the tables "
        f"{writer.to_user_string()} writes), in its writer's pool.",
        out=dg.Out(list, description="one row per table (lakehouse.maintenance.housekeeping.REPORT_SCHEMA)"),
    )
    def _maintain(context: dg.OpExecutionContext, storage: LakehouseStorage, plan: dict) -> list:
        lake = storage.lake
        reports = [
            maintain(
                lake,
                t,
                retention_hours=plan["retention_hours"],
                keep_versions=plan["protected"].get(t.path, ()),
                compact=plan["compact"],
                target_size=plan["target_size"],
            )
            for t in tables
        ]
        main, *others = reports
        metadata = {
            **_report_metadata(main),
            **{k: v for r in others for k, v in _report_metadata(r, f"{r.path.split('/')[-1]}.").items()},
            "retention_hours": plan["retention_hours"],
            "tables": metadata_table(reports_frame(reports)),
        }
        context.log_event(dg.AssetObservation(asset_key=writer, metadata=metadata))
        context.add_output_metadata(metadata)
        for r in reports:
            context.log.info(
                f"{r.path}: "
                + (
                    r.skipped
                    or f"{r.before.files if r.before else 0} -> {r.after.files if r.after else 0} files, "
                    f"{r.files_compacted} compacted, {r.files_vacuumed} vacuumed, versions kept {r.versions_kept}"
                )
            )
        return [r.as_row() for r in reports]

    return _maintain


MAINTENANCE_OPS = {writer: build_maintenance_op(writer, tables) for writer, tables in WRITERS.items()}
assert sorted(t.path for ts in WRITERS.values() for t in ts) == sorted(t.path for t in ALL_TABLES), (
    "every table of the catalogue is maintained exactly once"
)


@dg.job(
    name="lake_maintenance",
    description="Compact small files, VACUUM removed files (keeping every version a registered model was trained "
    "on), checkpoint and clean the log of every Delta table; each table in its writer's concurrency pool.",
    tags={"lakehouse/kind": "maintenance"},
)
def lake_maintenance() -> None:
    plan = plan_maintenance()
    for op in MAINTENANCE_OPS.values():
        op(plan)


lake_maintenance_daily = dg.ScheduleDefinition(
    name="lake_maintenance_daily",
    job=lake_maintenance,
    cron_schedule="30 3 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily table maintenance (see the job); a quiet hour, after the night's landings.",
)
