"""Silver assets: typed, validated, deduplicated tables upserted (MERGE) on their surrogate key.

Each silver asset processes only the bronze batches it has not consumed yet: the last consumed
``_batch_seq`` is committed with the MERGE as a Delta application transaction (``app_id = silver.<source>``),
so progress and data can never disagree. Rows failing the Pandera contract (:mod:`lakehouse.schemas`) go to
``silver/<source>_quarantine`` (MERGE on file hash and row position, so re-processing is idempotent).
"""

import dagster as dg
import polars as pl

from lakehouse import storage
from lakehouse.automation import follow_upstream
from lakehouse.schemas import SCHEMAS
from lakehouse.settings import LakehouseSettings
from lakehouse.sources import SOURCES, SourceSpec
from lakehouse.transforms.accounting import ROW_ID, account_rows
from lakehouse.transforms.silver import conform

QUARANTINE_KEY = ["_content_hash", "_row_number"]

def quarantine_path(settings: LakehouseSettings, spec: SourceSpec) -> str:
    return settings.table_path("silver", f"{spec.name}_quarantine")

def build_silver_asset(spec: SourceSpec) -> dg.AssetsDefinition:
    key = dg.AssetKey(["silver", spec.name])
    schema = SCHEMAS[spec.name]
    app_id = f"silver.{spec.name}"

    @dg.asset(
        key=key,
        deps=[dg.AssetKey(["bronze", spec.name])],
        group_name="silver",
        automation_condition=follow_upstream(),
        pool=f"silver_{spec.name}",  # one writer per table (dagster.yaml sets the pools' limit to 1)
        kinds={"delta", "polars", "pandera"},
        description=(f"{(schema.__doc__ or '').strip()} Typed and validated by `{schema.__name__}`, one row per "
                     f"natural key ({', '.join(spec.natural_key)}), surrogate key `{spec.surrogate_key}` "
                     "(UUID v5), upserted with a Delta MERGE. Failing rows: "
                     f"`silver/{spec.name}_quarantine`."),
        metadata={"natural_key": ", ".join(spec.natural_key), "surrogate_key": spec.surrogate_key,
                  "partition_by": ", ".join(spec.partition_by) or "none"},
        check_specs=[
            dg.AssetCheckSpec("quarantine_share", asset=key, blocking=True,
                              description="Share of the batch's rows quarantined is within the limit."),
            dg.AssetCheckSpec("surrogate_key_unique", asset=key, blocking=True,
                              description="The surrogate (hence natural) key is unique across the table."),
        ],
    )
    def _silver(context: dg.AssetExecutionContext, settings: LakehouseSettings) -> dg.MaterializeResult:
        bronze = settings.table_path("bronze", spec.name)
        silver = settings.table_path("silver", spec.name)
        consumed = storage.consumed_version(silver, app_id)
        new = pl.scan_delta(bronze).filter(pl.col("_batch_seq") > consumed).collect()
        rows_read = new.height
        last_seq = int(new.get_column("_batch_seq").max()) if rows_read else None
        batch = conform(new, spec, schema)
        del new  # only the conformed batch is needed from here on (peak memory)
        storage.upsert(quarantine_path(settings, spec), batch.quarantine, QUARANTINE_KEY)
        merge = storage.upsert(silver, batch.valid, [spec.surrogate_key], partition_by=spec.partition_by,
                               app_id=app_id if last_seq is not None else None, version=last_seq)
        share = batch.quarantine.height / rows_read if rows_read else 0.0
        dupes = (pl.scan_delta(silver).group_by(spec.surrogate_key).len().filter(pl.col("len") > 1)
                 .select(pl.len()).collect().item())
        if batch.quarantine.height:
            context.log.warning(f"{batch.quarantine.height} {spec.name} rows quarantined")
        return dg.MaterializeResult(
            metadata=storage.table_metadata(
                silver,
                bronze_rows_read=rows_read,
                rows_inserted=int(merge.get("num_target_rows_inserted", 0)),
                rows_updated=int(merge.get("num_target_rows_updated", 0)),
                rows_superseded_in_batch=batch.superseded,
                rows_quarantined=batch.quarantine.height,
                consumed_batch_seq=last_seq if last_seq is not None else consumed,
                quarantine_table=dg.MetadataValue.path(quarantine_path(settings, spec)),
                quarantine_sample=storage.metadata_table(
                    batch.quarantine.select("_source_file", "_row_number", "failed_checks", "reason"), 20),
            ),
            check_results=[
                dg.AssetCheckResult(
                    check_name="quarantine_share", passed=share <= settings.max_quarantine_share,
                    metadata={"rows_read": rows_read, "rows_quarantined": batch.quarantine.height,
                              "share": share, "limit": settings.max_quarantine_share,
                              "by_check": storage.metadata_table(
                                  batch.quarantine.group_by("failed_checks").len().sort("len", descending=True))},
                ),
                dg.AssetCheckResult(check_name="surrogate_key_unique", passed=dupes == 0,
                                    metadata={"duplicate_keys": dupes}),
            ],
        )

    return _silver

def build_accounting_check(spec: SourceSpec) -> dg.AssetChecksDefinition:
    """Blocking check on ``silver/<source>``: every ingested row is in silver, quarantined or superseded."""

    @dg.asset_check(
        asset=dg.AssetKey(["silver", spec.name]),
        name="row_accounting",
        blocking=True,
        description="Per ingested file: rows read = rows in bronze = rows in silver + quarantined + superseded.",
    )
    def _check(settings: LakehouseSettings) -> dg.AssetCheckResult:
        silver = settings.table_path("silver", spec.name)
        consumed = storage.consumed_version(silver, f"silver.{spec.name}")
        keys = list(spec.natural_key)
        report = account_rows(
            log=storage.read(settings.table_path("bronze", f"{spec.name}_ingest_log")).filter(
                pl.col("batch_seq") <= consumed),
            bronze=pl.scan_delta(settings.table_path("bronze", spec.name))
            .filter(pl.col("_batch_seq") <= consumed).select(*keys, "_source_file", *ROW_ID),
            silver=pl.scan_delta(silver).select(*keys, *ROW_ID),
            quarantine=pl.scan_delta(quarantine_path(settings, spec)).select(ROW_ID),
            spec=spec,
        )
        bad = report.filter(~pl.col("ok"))
        return dg.AssetCheckResult(
            passed=bad.is_empty(),
            metadata={
                "files_checked": report.height,
                "files_unbalanced": bad.height,
                **{c: int(report.get_column(c).sum() or 0) for c in
                   ("rows_read", "rows_bronze", "rows_in_silver", "rows_quarantined", "rows_superseded",
                    "rows_unaccounted")},
                "unbalanced_files": storage.metadata_table(bad),
            },
        )

    return _check


silver_assets = [build_silver_asset(spec) for spec in SOURCES.values()]
accounting_checks = [build_accounting_check(spec) for spec in SOURCES.values()]
