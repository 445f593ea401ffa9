"""Asset checks of the silver layer, all blocking: a failure stops everything downstream of the table.

* ``quarantine_share``: the share of the batch's rows that went to quarantine is within
  :attr:`SilverConfig.max_quarantine_share`; evaluated by the silver asset from its batch.
* ``surrogate_key_unique``: the surrogate (hence natural) key is unique across the table; evaluated by the asset.
* ``row_accounting``: per ingested file version, rows read = rows in bronze = rows in silver + quarantined +
  superseded (:mod:`lakehouse.silver.accounting`).

All three are evaluated by the silver asset itself, after its MERGE, so they run and block on every silver
materialization, whoever starts it: a separate ``@asset_check`` is left out of runs the automation sensor launches
(seen in the UI: silver showed "2 / 3 passed" after a sensor-driven run until someone clicked "Materialize all").
"""

from __future__ import annotations

import dagster as dg
import polars as pl

from lakehouse.metadata import metadata_table
from lakehouse.silver.accounting import ROW, account_rows
from lakehouse.silver.conform import SilverBatch
from lakehouse.sources import SourceSpec
from lakehouse.tables import BRONZE, INGEST_LOG, QUARANTINE, SILVER, Lake

QUARANTINE_SHARE = "quarantine_share"
SURROGATE_KEY_UNIQUE = "surrogate_key_unique"
ROW_ACCOUNTING = "row_accounting"


def in_asset_specs(key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    """The checks the silver asset evaluates itself."""
    return [
        dg.AssetCheckSpec(
            QUARANTINE_SHARE,
            asset=key,
            blocking=True,
            description="Share of the batch's rows quarantined is within the limit.",
        ),
        dg.AssetCheckSpec(
            SURROGATE_KEY_UNIQUE,
            asset=key,
            blocking=True,
            description="The surrogate (hence natural) key is unique across the table.",
        ),
        dg.AssetCheckSpec(
            ROW_ACCOUNTING,
            asset=key,
            blocking=True,
            description="Per ingested file: rows read = rows in bronze = rows in silver + quarantined + superseded.",
        ),
    ]


def quarantine_share(batch: SilverBatch, rows_read: int, limit: float) -> dg.AssetCheckResult:
    share = batch.quarantine.height / rows_read if rows_read else 0.0
    return dg.AssetCheckResult(
        check_name=QUARANTINE_SHARE,
        passed=share <= limit,
        metadata={
            "rows_read": rows_read,
            "rows_quarantined": batch.quarantine.height,
            "share": share,
            "limit": limit,
            "by_check": metadata_table(batch.quarantine.group_by("failed_checks").len().sort("len", descending=True)),
        },
    )


def surrogate_key_unique(scan: pl.LazyFrame, surrogate_key: str) -> dg.AssetCheckResult:
    dupes = scan.group_by(surrogate_key).len().filter(pl.col("len") > 1).select(pl.len()).collect().item()
    return dg.AssetCheckResult(check_name=SURROGATE_KEY_UNIQUE, passed=dupes == 0, metadata={"duplicate_keys": dupes})


def row_accounting(lake: Lake, spec: SourceSpec) -> dg.AssetCheckResult:
    """Every row ingested up to the batch silver consumed is in silver, quarantined or superseded, per file."""
    silver = SILVER[spec.name]
    consumed = lake.consumed_version(silver)
    keys = list(spec.natural_key)
    report = account_rows(
        log=lake.read(INGEST_LOG[spec.name]).filter(pl.col("batch_seq") <= consumed),
        bronze=lake.scan(BRONZE[spec.name])
        .filter(pl.col("_batch_seq") <= consumed)
        .select(*keys, "_source_file", *ROW),
        silver=lake.scan(silver).select(*keys, *ROW),
        quarantine=lake.scan(QUARANTINE[spec.name]).select(ROW),
        spec=spec,
    )
    bad = report.filter(~pl.col("ok"))
    return dg.AssetCheckResult(
        check_name=ROW_ACCOUNTING,
        passed=bad.is_empty(),
        metadata={
            "files_checked": report.height,
            "files_unbalanced": bad.height,
            **{
                c: int(report.get_column(c).sum() or 0)
                for c in (
                    "rows_read",
                    "rows_bronze",
                    "rows_in_silver",
                    "rows_quarantined",
                    "rows_superseded",
                    "rows_unaccounted",
                )
            },
            "unbalanced_files": metadata_table(bad),
        },
    )
