"""Silver assets: typed, validated, deduplicated tables upserted (MERGE) on their surrogate key.

Each silver asset processes only the bronze batches it has not consumed yet (a batch: landed files up to a row cap), in
groups of at most ``max_rows_per_merge`` rows (:func:`lakehouse.silver.conform.batch_groups`), one commit per
group (a MERGE, or an append when every month of the group is new to the table: :meth:`lakehouse.tables.Lake.merge`),
so memory is bounded by two groups (one written and checked on a background thread while the next one is read
and conformed: :class:`lakehouse.storage.WriteBehind`), not by what landed since the last run: the last consumed
``_batch_seq`` is committed with each group as a Delta application transaction (the table's ``app_id`` in
:mod:`lakehouse.tables`), so progress and data can never disagree, and a run killed between two groups resumes
after the last one. Rows failing the source's contract (:mod:`lakehouse.contracts`) go to
``silver/<source>_quarantine`` (MERGE on file hash and row position, so re-processing is idempotent).
"""

from concurrent.futures import Future

import dagster as dg
import polars as pl
from pydantic import Field

from lakehouse.automation import follow_upstream
from lakehouse.metadata import asset_key, contract_schema, metadata_table, table_metadata
from lakehouse.resources import LakehouseStorage
from lakehouse.silver import checks
from lakehouse.silver.conform import SilverBatch, batch_groups, changed_span, conform
from lakehouse.sources import SOURCES, SourceSpec
from lakehouse.storage import WriteBehind
from lakehouse.tables import BRONZE, QUARANTINE, SILVER


class SilverConfig(dg.Config):
    max_quarantine_share: float = Field(
        default=0.05,
        description="The blocking check quarantine_share fails when more than this share of a batch's rows is "
        "quarantined: a few bad rows are data, a large share means a broken export or a contract change.",
    )
    max_rows_per_merge: int = Field(
        default=1_000_000,
        gt=0,
        description="Most bronze rows conformed and MERGEd at once (whole batches, i.e. files: a larger file is "
        "one MERGE of its own). Bounds the step's memory; fewer, larger MERGEs are faster.",
    )


def build_silver_asset(spec: SourceSpec) -> dg.AssetsDefinition:
    table, quarantine = SILVER[spec.name], QUARANTINE[spec.name]
    key = asset_key(table)
    contract = spec.contract

    @dg.asset(
        key=key,
        deps=[asset_key(BRONZE[spec.name])],
        group_name="silver",
        automation_condition=follow_upstream(),
        pool=f"silver_{spec.name}",  # one writer per table (dagster.yaml sets the pools' limit to 1)
        kinds={"delta", "polars", "pandera"},
        description=(
            f"{(contract.__doc__ or '').strip()} Typed and validated by `{contract.__name__}`, one row "
            f"per natural key ({', '.join(spec.natural_key)}), surrogate key `{spec.surrogate_key}` "
            f"(UUID v5), upserted with a Delta MERGE. Failing rows: `{quarantine.path}`."
        ),
        metadata={
            "natural_key": ", ".join(spec.natural_key),
            "surrogate_key": spec.surrogate_key,
            "partition_by": ", ".join(spec.partition_by) or "none",
            "dagster/column_schema": contract_schema(spec),
        },
        check_specs=checks.in_asset_specs(key),
    )
    def _silver(
        context: dg.AssetExecutionContext, config: SilverConfig, storage: LakehouseStorage
    ) -> dg.MaterializeResult:
        lake = storage.lake
        consumed = lake.consumed_version(table)
        bronze = lake.scan(BRONZE[spec.name]).filter(pl.col("_batch_seq") > consumed)
        sizes = bronze.group_by("_batch_seq").agg(pl.len().alias("rows")).collect()
        groups = batch_groups(sizes, config.max_rows_per_merge) or [(consumed + 1, consumed)]  # nothing new: empty
        rows_read = inserted = updated = superseded = 0
        last_seq: int | None = None
        quarantined: list[pl.DataFrame] = []
        written: list[Future[tuple[dict, int, pl.DataFrame]]] = []

        def write_group(
            batch: SilverBatch, first: int, last: int, progress: int | None
        ) -> tuple[dict, int, pl.DataFrame]:
            """MERGE one conformed group (its quarantine, then silver with the progress ``last``), then evaluate
            the table-wide checks on the partitions it wrote (not the lake, nor the whole run's)."""
            lake.merge(quarantine, batch.quarantine)
            merge = lake.merge(table, batch.valid, progress=progress, changed=changed_span(batch.valid, spec))
            where = checks.touched_partitions(batch.valid, spec)
            duplicates = checks.duplicate_keys(lake.scan(table), spec.surrogate_key, where)
            return merge, duplicates, checks.account_batches(lake, spec, first, last, where)

        # group g is MERGEd and checked on a background thread while group g+1 is read and conformed; the MERGEs
        # commit one at a time in batch order, so the progress recorded with each is never ahead of the data
        with WriteBehind() as writer:
            for first, last in groups:
                new = bronze.filter(pl.col("_batch_seq").is_between(first, last)).collect()
                rows_read += new.height
                batch = conform(new, spec)
                del new  # only the conformed batch is needed from here on (peak memory)
                progress = last if rows_read else None
                last_seq = progress if progress is not None else last_seq
                superseded += batch.superseded
                quarantined.append(batch.quarantine.select("_source_file", "_row_number", "failed_checks", "reason"))
                written.append(writer.submit(write_group, batch, first, last, progress))
                del batch
        duplicates, reports = 0, []
        for merge, group_duplicates, report in (future.result() for future in written):
            inserted += int(merge.get("num_target_rows_inserted", 0))
            updated += int(merge.get("num_target_rows_updated", 0))
            duplicates += group_duplicates
            reports.append(report)
        quarantine_rows = pl.concat(quarantined)
        newest = last_seq if last_seq is not None else consumed
        if quarantine_rows.height:
            context.log.warning(f"{quarantine_rows.height} {spec.name} rows quarantined")
        return dg.MaterializeResult(
            metadata=table_metadata(
                lake,
                table,
                contract=spec,
                bronze_rows_read=rows_read,
                bronze_batches_read=sizes.height,
                merges=len(groups) if rows_read else 0,
                rows_inserted=inserted,
                rows_updated=updated,
                rows_superseded_in_batch=superseded,
                rows_quarantined=quarantine_rows.height,
                consumed_batch_seq=newest,
                quarantine_table=dg.MetadataValue.path(lake.location(quarantine)),
                quarantine_sample=metadata_table(quarantine_rows, 20),
            ),
            check_results=[
                checks.quarantine_share(quarantine_rows, rows_read, config.max_quarantine_share),
                checks.surrogate_key_unique(
                    duplicates, "whole table" if not spec.partition_by else "partitions each MERGE wrote"
                ),
                checks.row_accounting_result(pl.concat(reports), consumed, newest),
            ],
        )

    return _silver


silver_assets = [build_silver_asset(spec) for spec in SOURCES.values()]
