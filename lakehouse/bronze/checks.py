"""Asset checks of the bronze layer.

``no_rejected_files`` (warning) is evaluated by the bronze asset itself, from the ingest report of the run.
"""

from __future__ import annotations

import dagster as dg
import polars as pl

from lakehouse.bronze.ingest import IngestReport
from lakehouse.metadata import metadata_table

NO_REJECTED_FILES = "no_rejected_files"


def no_rejected_files_spec(key: dg.AssetKey) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        NO_REJECTED_FILES,
        asset=key,
        description="No file of this batch was rejected (rejected files are kept in landing/_rejected).",
    )


def no_rejected_files(report: IngestReport, rejected_folder: str) -> dg.AssetCheckResult:
    """Passes when no file of the batch was rejected; lists the rejected files and the folder that keeps them."""
    rejected = report.log.filter(pl.col("status") == "rejected")
    return dg.AssetCheckResult(
        check_name=NO_REJECTED_FILES,
        passed=rejected.is_empty(),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "rejected": metadata_table(rejected.select("file_name", "reason")),
            "rejected_folder": dg.MetadataValue.path(rejected_folder),
        },
    )
