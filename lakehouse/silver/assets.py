"""Silver assets: typed, validated, deduplicated tables upserted (MERGE) on their surrogate key.

Each silver asset processes only the bronze batches it has not consumed yet: the last consumed ``_batch_seq`` is
committed with the MERGE as a Delta application transaction (the table's ``app_id`` in :mod:`lakehouse.tables`),
so progress and data can never disagree. Rows failing the source's contract (:mod:`lakehouse.contracts`) go to
``silver/<source>_quarantine`` (MERGE on file hash and row position, so re-processing is idempotent).
"""

import dagster as dg
import polars as pl
from pydantic import Field

from lakehouse.automation import follow_upstream
from lakehouse.metadata import asset_key, contract_schema, metadata_table, table_metadata
from lakehouse.resources import LakehouseStorage
from lakehouse.silver import checks
from lakehouse.silver.conform import changed_span, conform
from lakehouse.sources import SOURCES, SourceSpec
from lakehouse.tables import BRONZE, QUARANTINE, SILVER


class SilverConfig(dg.Config):
    max_quarantine_share: float = Field(
        default=0.05,
        description="The blocking check quarantine_share fails when more than this share of a batch's rows is "
        "quarantined: a few bad rows are data, a large share means a broken export or a contract change.",
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
        new = lake.scan(BRONZE[spec.name]).filter(pl.col("_batch_seq") > consumed).collect()
        rows_read = new.height
        last_seq = int(new.get_column("_batch_seq").max()) if rows_read else None  # type: ignore[arg-type]
        batch = conform(new, spec)
        del new  # only the conformed batch is needed from here on (peak memory)
        lake.merge(quarantine, batch.quarantine)
        merge = lake.merge(table, batch.valid, progress=last_seq, changed=changed_span(batch.valid, spec))
        where = checks.touched_partitions(batch.valid, spec)  # the checks read these partitions, not the lake
        if batch.quarantine.height:
            context.log.warning(f"{batch.quarantine.height} {spec.name} rows quarantined")
        return dg.MaterializeResult(
            metadata=table_metadata(
                lake,
                table,
                schema=contract_schema(spec, lake.scan(table).collect_schema()),
                bronze_rows_read=rows_read,
                rows_inserted=int(merge.get("num_target_rows_inserted", 0)),
                rows_updated=int(merge.get("num_target_rows_updated", 0)),
                rows_superseded_in_batch=batch.superseded,
                rows_quarantined=batch.quarantine.height,
                consumed_batch_seq=last_seq if last_seq is not None else consumed,
                quarantine_table=dg.MetadataValue.path(lake.location(quarantine)),
                quarantine_sample=metadata_table(
                    batch.quarantine.select("_source_file", "_row_number", "failed_checks", "reason"), 20
                ),
            ),
            check_results=[
                checks.quarantine_share(batch, rows_read, config.max_quarantine_share),
                checks.surrogate_key_unique(lake.scan(table), spec.surrogate_key, where),
                checks.row_accounting(lake, spec, since=consumed, where=where),
            ],
        )

    return _silver


silver_assets = [build_silver_asset(spec) for spec in SOURCES.values()]
