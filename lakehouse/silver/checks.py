"""Asset checks of the silver layer, all blocking: a failure stops everything downstream of the table.

* ``quarantine_share``: the share of the batch's rows that went to quarantine is within
  :attr:`SilverConfig.max_quarantine_share`; evaluated by the silver asset from its batch.
* ``surrogate_key_unique``: the surrogate (hence natural) key is unique in the partitions the batch wrote (the
  key holds the partition columns, so a duplicate can only sit in a partition a MERGE touched); evaluated by the
  asset.
* ``row_accounting``: per ingested file version of the batches this materialization consumed, rows read = rows in
  bronze = rows in silver + quarantined + superseded (:mod:`lakehouse.silver.accounting`).

Both table-wide checks read the batch's files and the silver partitions the batch wrote, not the lake: a run
costs what its batch costs (issue #9). The silver asset evaluates them after each MERGE, for the group of batches
it just wrote, and reports their sum: a first build of a year is bounded by a group's partitions too. A file proved
once stays proved: later batches only move its rows from "in silver" to "superseded" (a correction), which keeps
its balance.

All three are evaluated by the silver asset itself, after its MERGE, so they run and block on every silver
materialization, whoever starts it: a separate ``@asset_check`` is left out of runs the automation sensor launches
(seen in the UI: silver showed "2 / 3 passed" after a sensor-driven run until someone clicked "Materialize all").
"""

from __future__ import annotations

import dagster as dg
import polars as pl

from lakehouse.metadata import metadata_table
from lakehouse.silver.accounting import ROW, account_rows
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


def quarantine_share(quarantined: pl.DataFrame, rows_read: int, limit: float) -> dg.AssetCheckResult:
    """Whether the share of the run's ``rows_read`` bronze rows that it ``quarantined`` (one row each, with
    ``failed_checks``) is at most ``limit``."""
    share = quarantined.height / rows_read if rows_read else 0.0
    return dg.AssetCheckResult(
        check_name=QUARANTINE_SHARE,
        passed=share <= limit,
        metadata={
            "rows_read": rows_read,
            "rows_quarantined": quarantined.height,
            "share": share,
            "limit": limit,
            "by_check": metadata_table(quarantined.group_by("failed_checks").len().sort("len", descending=True)),
        },
    )


def touched_partitions(valid: pl.DataFrame, spec: SourceSpec) -> pl.Expr | None:
    """A predicate selecting the silver Delta partitions the rows ``valid`` (a conformed batch) were written to;
    None for an unpartitioned table (then the whole table is the partition). A batch with no valid row selects
    nothing."""
    if not spec.partition_by:
        return None
    assert set(spec.partition_by) <= set(spec.natural_key), f"{spec.name}: partition columns outside the key"
    values = valid.select(spec.partition_by).unique().rows()
    terms = [pl.all_horizontal([pl.col(c) == v for c, v in zip(spec.partition_by, row, strict=True)]) for row in values]
    return pl.any_horizontal(terms) if terms else pl.lit(False)


def duplicate_keys(scan: pl.LazyFrame, surrogate_key: str, where: pl.Expr | None = None) -> int:
    """How many surrogate keys occur more than once among the rows ``where`` selects (the partitions a group of
    batches wrote; all rows when None)."""
    rows = scan if where is None else scan.filter(where)
    return int(rows.group_by(surrogate_key).len().filter(pl.col("len") > 1).select(pl.len()).collect().item())


def surrogate_key_unique(duplicates: int, scope: str) -> dg.AssetCheckResult:
    """The check's result from the :func:`duplicate_keys` counted over ``scope`` (said in its metadata)."""
    return dg.AssetCheckResult(
        check_name=SURROGATE_KEY_UNIQUE,
        passed=duplicates == 0,
        metadata={"duplicate_keys": duplicates, "scope": scope},
    )


def account_batches(lake: Lake, spec: SourceSpec, first: int, last: int, where: pl.Expr | None = None) -> pl.DataFrame:
    """The per-file report of :func:`lakehouse.silver.accounting.account_rows` for the files of the bronze batches
    ``first..last`` (``_batch_seq``, inclusive), evaluated right after silver MERGEd them: a silver run evaluates it
    group by group, so its memory is bounded by a group's partitions, not by everything it wrote.

    Args:
        where: the silver partitions those batches wrote (:func:`touched_partitions`); None reads all of silver.
    """
    keys = list(spec.natural_key)
    in_batches = pl.col("_batch_seq").is_between(first, last)
    log = lake.read(INGEST_LOG[spec.name]).filter(pl.col("batch_seq").is_between(first, last))
    hashes = log.filter(pl.col("status") == "ingested").get_column("content_hash").unique()
    silver = lake.scan(SILVER[spec.name])
    return account_rows(
        log=log,
        bronze=lake.scan(BRONZE[spec.name]).filter(in_batches).select(*keys, "_source_file", *ROW),
        silver=(silver if where is None else silver.filter(where)).select(*keys, *ROW),
        quarantine=lake.scan(QUARANTINE[spec.name]).filter(pl.col("_content_hash").is_in(hashes)).select(ROW),
        spec=spec,
    )


def row_accounting(lake: Lake, spec: SourceSpec, since: int = -1, where: pl.Expr | None = None) -> dg.AssetCheckResult:
    """Every row of the batches after ``since`` up to the one silver consumed is in silver, quarantined or
    superseded, per file (``since=-1``: every batch, the whole lake).

    Args:
        since: the last batch sequence number consumed before this materialization.
        where: the silver partitions those batches wrote (:func:`touched_partitions`); None reads all of silver.
    """
    consumed = lake.consumed_version(SILVER[spec.name])
    return row_accounting_result(account_batches(lake, spec, since + 1, consumed, where), since, consumed)


def row_accounting_result(report: pl.DataFrame, since: int, consumed: int) -> dg.AssetCheckResult:
    """The check's result from the :func:`account_batches` reports of the batches after ``since`` up to
    ``consumed`` (concatenated)."""
    bad = report.filter(~pl.col("ok"))
    return dg.AssetCheckResult(
        check_name=ROW_ACCOUNTING,
        passed=bad.is_empty(),
        metadata={
            "files_checked": report.height,
            "batches_checked": f"{since + 1}..{consumed}" if consumed > since else "none (no new batch)",
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
