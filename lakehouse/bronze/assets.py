"""Bronze assets: one per source, each ingesting the new files of the source's landing folder.

Started by the landing sensor (:mod:`lakehouse.bronze.sensors`) with the batch of files to ingest in the run
config, or by hand from the UI with no config, which ingests every new file of the source.
"""

import dagster as dg
import polars as pl
from pydantic import Field

from lakehouse.bronze import checks
from lakehouse.bronze.ingest import ingest_source
from lakehouse.bronze.parsing import empty_bronze
from lakehouse.metadata import asset_key, column_schema, metadata_table, table_metadata
from lakehouse.resources import LakehouseStorage
from lakehouse.sources import SOURCES, SourceSpec
from lakehouse.tables import BRONZE, INGEST_LOG


class BronzeConfig(dg.Config):
    files: list[str] = Field(
        default_factory=list,
        description="File names (inside the source's landing folder) to ingest; empty = every new file.",
    )


def build_bronze_asset(spec: SourceSpec) -> dg.AssetsDefinition:
    table = BRONZE[spec.name]
    key = asset_key(table)

    @dg.asset(
        key=key,
        group_name="bronze",
        kinds={"delta", "polars"},
        pool=f"bronze_{spec.name}",  # one writer per table (dagster.yaml sets the pools' limit to 1)
        description=(
            f"Raw `{spec.name}` rows, exactly once per landed file (by sha256 of its bytes), every value kept "
            "as text, with ingest metadata and a `_rescued_data` JSON column for unexpected columns. "
            f"Files that cannot be read are copied to `landing/_rejected/{spec.name}/` with a reason."
        ),
        metadata={
            "dagster/column_schema": column_schema(empty_bronze(spec).schema),
            "natural_key": ", ".join(spec.natural_key),
        },
        check_specs=[checks.no_rejected_files_spec(key)],
    )
    def _bronze(
        context: dg.AssetExecutionContext, config: BronzeConfig, storage: LakehouseStorage
    ) -> dg.MaterializeResult:
        lake = storage.lake
        report = ingest_source(lake, storage.landing, spec, batch_id=context.run.run_id, only=config.files or None)
        for row in report.log.filter(pl.col("status") != "ingested").iter_rows(named=True):
            context.log.warning(f"{row['file_name']}: {row['status']}: {row['reason']}")
        if not lake.exists(table):
            lake.append(table, empty_bronze(spec))  # so downstream reads an empty table, not a missing one
        return dg.MaterializeResult(
            metadata=table_metadata(
                lake,
                table,
                files_ingested=report.count("ingested"),
                files_duplicate=report.count("duplicate"),
                files_rejected=report.count("rejected"),
                rows_appended=report.rows,
                batch_seq=report.batch_seq,
                files=metadata_table(report.log.select("file_name", "status", "rows", "reason"), 200),
                ingest_log=dg.MetadataValue.path(lake.location(INGEST_LOG[spec.name])),
            ),
            check_results=[checks.no_rejected_files(report, storage.landing.rejected_dir(spec.name))],
        )

    return _bronze


bronze_assets = [build_bronze_asset(spec) for spec in SOURCES.values()]
