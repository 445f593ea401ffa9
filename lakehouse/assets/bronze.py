"""Bronze assets: one per source, each ingesting the new files of ``<landing>/<source>/``."""

import dagster as dg
import polars as pl

from lakehouse import storage
from lakehouse.ingest import bronze_path, ingest_source, log_path
from lakehouse.settings import LakehouseSettings
from lakehouse.sources import SOURCES, SourceSpec
from lakehouse.transforms.bronze import empty_bronze

def build_bronze_asset(spec: SourceSpec) -> dg.AssetsDefinition:
    @dg.asset(
        key=["bronze", spec.name],
        group_name="bronze",
        kinds={"delta", "polars"},
        description=(
            f"Raw `{spec.name}` rows, exactly once per landed file (by sha256 of its bytes), every value kept "
            "as text, with ingest metadata and a `_rescued_data` JSON column for unexpected columns. "
            f"Files that cannot be read are copied to `landing/_rejected/{spec.name}/` with a reason."
        ),
        metadata={"dagster/column_schema": storage.column_schema(empty_bronze(spec).schema),
                  "natural_key": ", ".join(spec.natural_key)},
    )
    def _bronze(context: dg.AssetExecutionContext, settings: LakehouseSettings) -> dg.MaterializeResult:
        report = ingest_source(settings, spec, batch_id=context.run_id)
        for row in report.log.filter(pl.col("status") != "ingested").iter_rows(named=True):
            context.log.warning(f"{row['file_name']}: {row['status']}: {row['reason']}")
        extra = {
            "files_ingested": report.count("ingested"),
            "files_duplicate": report.count("duplicate"),
            "files_rejected": report.count("rejected"),
            "rows_appended": report.rows,
            "batch_seq": report.batch_seq,
            "files": storage.metadata_table(report.log.select("file_name", "status", "rows", "reason")),
            "ingest_log": dg.MetadataValue.path(log_path(settings, spec)),
        }
        path = bronze_path(settings, spec)
        if not storage.table_exists(path):
            storage.append(path, empty_bronze(spec))  # so downstream reads an empty table, not a missing one
        return dg.MaterializeResult(metadata=storage.table_metadata(path, **extra))

    return _bronze

bronze_assets = [build_bronze_asset(spec) for spec in SOURCES.values()]
