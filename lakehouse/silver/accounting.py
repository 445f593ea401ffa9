"""Row accounting: prove that every landed row is in bronze, then in silver, quarantine, or superseded.

Per ingested file version (file name + content hash)::

    rows_read (ingest log) == rows_bronze
    rows_bronze == rows_in_silver + rows_quarantined + rows_superseded

where ``rows_superseded`` are valid rows whose natural key is now held in silver by a later row (a corrected
file, or a repeated key later in the same batch). Anything else is ``rows_unaccounted`` and fails the check.
"""

from __future__ import annotations

import polars as pl

from lakehouse.silver.conform import cast_expr
from lakehouse.sources import SourceSpec
from lakehouse.tables import ROW_ID

ROW = list(ROW_ID)


def account_rows(
    log: pl.DataFrame | pl.LazyFrame,
    bronze: pl.DataFrame | pl.LazyFrame,
    silver: pl.DataFrame | pl.LazyFrame,
    quarantine: pl.DataFrame | pl.LazyFrame,
    spec: SourceSpec,
) -> pl.DataFrame:
    """One row per ingested file version with the counts in the module docstring.

    Args:
        log: the ingest log (``file_name, content_hash, status, rows``).
        bronze: bronze rows already consumed by silver (natural key columns, ``_source_file`` and ROW).
        silver: silver lineage and natural key (``_content_hash, _row_number`` and ``spec.natural_key``).
        quarantine: quarantined rows (ROW).

    Returns:
        ``file_name, content_hash, rows_read, rows_bronze, rows_in_silver, rows_quarantined, rows_superseded,
        rows_unaccounted`` (Int64) and ``ok`` (Boolean).
    """
    # one lazy query: polars shares the tagged frame between its two uses and runs the joins in parallel
    # (measured on the 10x flights, 3.4 M rows: 1.5 s, against 2.4-4.1 s eagerly)
    log, bronze, silver, quarantine = log.lazy(), bronze.lazy(), silver.lazy(), quarantine.lazy()
    # no unique() on silver: one silver row comes from one bronze row, and a silver row duplicated by a bug would
    # double its bronze row here and fail the check (rows_bronze > rows_read) instead of being hidden
    in_silver = silver.select(ROW).with_columns(pl.lit(True).alias("_s"))
    in_q = quarantine.select(ROW).unique().with_columns(pl.lit(True).alias("_q"))
    tagged = bronze.join(in_silver, on=ROW, how="left").join(in_q, on=ROW, how="left")
    rest = tagged.filter(pl.col("_s").is_null() & pl.col("_q").is_null())
    keys = list(spec.natural_key)
    typed_rest = rest.select(*ROW, *[cast_expr(k, spec.columns[k]) for k in keys])
    superseded = (
        typed_rest.join(silver.select(keys), on=keys, how="semi").select(ROW).with_columns(pl.lit(True).alias("_sup"))
    )
    per_file = (
        tagged.join(superseded, on=ROW, how="left")
        .group_by(pl.col("_source_file").alias("file_name"), pl.col("_content_hash").alias("content_hash"))
        .agg(
            pl.len().cast(pl.Int64).alias("rows_bronze"),
            pl.col("_s").sum().cast(pl.Int64).alias("rows_in_silver"),
            (pl.col("_q") & pl.col("_s").is_null()).sum().cast(pl.Int64).alias("rows_quarantined"),
            pl.col("_sup").sum().cast(pl.Int64).alias("rows_superseded"),
        )
    )
    ingested = log.filter(pl.col("status") == "ingested").select(
        "file_name", "content_hash", pl.col("rows").cast(pl.Int64).alias("rows_read")
    )
    return (
        ingested.join(per_file, on=["file_name", "content_hash"], how="left")
        .with_columns(
            pl.col(c).fill_null(0) for c in ("rows_bronze", "rows_in_silver", "rows_quarantined", "rows_superseded")
        )
        .with_columns(
            (
                pl.col("rows_bronze")
                - pl.col("rows_in_silver")
                - pl.col("rows_quarantined")
                - pl.col("rows_superseded")
            ).alias("rows_unaccounted")
        )
        .with_columns(((pl.col("rows_read") == pl.col("rows_bronze")) & (pl.col("rows_unaccounted") == 0)).alias("ok"))
        .sort("file_name", "content_hash")
        .collect()
    )
