"""Bronze assets: one per source, each ingesting the new files of ``<landing>/<source>/``.

Started by the landing sensor (:mod:`lakehouse.sensors`) with the batch of files to ingest in the run config,
or by hand from the UI with no config, which ingests every new file of the source.
"""

import dagster as dg
import polars as pl
from pydantic import Field

from lakehouse import storage
from lakehouse.ingest import bronze_path, ingest_source, log_path
from lakehouse.settings import LakehouseSettings
from lakehouse.sources import SOURCES, SourceSpec
from lakehouse.transforms.bronze import empty_bronze


class BronzeConfig(dg.Config):
    files: list[str] = Field(
        default_factory=list,
        description="File names (inside the source's landing folder) to ingest; empty = every new file.",
    )


def build_bronze_asset(spec: SourceSpec) -> dg.AssetsDefinition:
    key = dg.AssetKey(["bronze", spec.name])

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
        metadata={"dagster/column_schema": storage.column_schema(empty_bronze(spec).schema),
                  "natural_key": ", ".join(spec.natural_key)},
        check_specs=[dg.AssetCheckSpec(
            "no_rejected_files", asset=key,
            description="No file of this batch was rejected (rejected files are kept in landing/_rejected).")],
    )
    def _bronze(context: dg.AssetExecutionContext, config: BronzeConfig,
                settings: LakehouseSettings) -> dg.MaterializeResult:
        report = ingest_source(settings, spec, batch_id=context.run_id, only=config.files or None)
        for row in report.log.filter(pl.col("status") != "ingested").iter_rows(named=True):
            context.log.warning(f"{row['file_name']}: {row['status']}: {row['reason']}")
        path = bronze_path(settings, spec)
        if not storage.table_exists(path):
            storage.append(path, empty_bronze(spec))  # so downstream reads an empty table, not a missing one
        rejected = report.log.filter(pl.col("status") == "rejected")
        return dg.MaterializeResult(
            metadata=storage.table_metadata(
                path,
                files_ingested=report.count("ingested"),
                files_duplicate=report.count("duplicate"),
                files_rejected=report.count("rejected"),
                rows_appended=report.rows,
                batch_seq=report.batch_seq,
                files=storage.metadata_table(report.log.select("file_name", "status", "rows", "reason"), 200),
                ingest_log=dg.MetadataValue.path(log_path(settings, spec)),
            ),
            check_results=[dg.AssetCheckResult(
                check_name="no_rejected_files", passed=rejected.is_empty(), severity=dg.AssetCheckSeverity.WARN,
                metadata={"rejected": storage.metadata_table(rejected.select("file_name", "reason")),
                          "rejected_folder": dg.MetadataValue.path(str(settings.landing_path("_rejected") / spec.name))},
            )],
        )

    return _bronze


bronze_assets = [build_bronze_asset(spec) for spec in SOURCES.values()]
