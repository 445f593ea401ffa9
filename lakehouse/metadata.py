"""Dagster materialization metadata for Delta tables and small frames (the asset pages of the UI)."""

from __future__ import annotations

from typing import Any

import dagster as dg
import polars as pl

from lakehouse.sources import SourceSpec, contract_columns
from lakehouse.tables import Lake, Table


def asset_key(table: Table) -> dg.AssetKey:
    """The asset key of a catalogue table (``silver/flights``)."""
    return dg.AssetKey(list(table.key))


def column_schema(schema: pl.Schema | dict) -> dg.TableSchema:
    """Dagster column schema (shown on the asset page) from a polars schema."""
    return dg.TableSchema(columns=[dg.TableColumn(name, str(dtype)) for name, dtype in dict(schema).items()])


LINEAGE_DESCRIPTIONS = {
    "_source_file": "Landed file the row came from.",
    "_content_hash": "sha256 of that file's bytes.",
    "_row_number": "1-based line of the row in its file, header not counted (lakehouse.bronze.parsing, 'Row numbers').",
    "_corrupt_record": "The raw line when it could not be parsed (bad bytes as \\xNN), else null.",
    "_parse_error": "Why the line could not be parsed, naming its line, else null.",
    "_batch_id": "Ingest batch (the Dagster run that ingested the file).",
    "_batch_seq": "Ingest batch number, increasing per source.",
    "_ingested_at": "When bronze ingested the row (UTC).",
    "_rescued_data": "JSON object of landed columns the contract does not know.",
    "_updated_at": "When silver last wrote the row (UTC).",
}


def contract_schema(spec: SourceSpec, actual: pl.Schema | dict | None = None) -> dg.TableSchema:
    """Dagster column schema of a silver table from its contract (dtypes, nullability, descriptions with units).

    With ``actual`` (the table's polars schema), the columns are the table's own, in its order: the surrogate key
    and lineage columns are described too, and a column the contract does not know is listed without a
    description.
    """
    declared = {c.name: c for c in contract_columns(spec.contract)}
    descriptions = {
        **LINEAGE_DESCRIPTIONS,
        spec.surrogate_key: f"Surrogate key: UUID v5 of the natural key ({', '.join(spec.natural_key)}).",
    }
    if actual is None:
        return dg.TableSchema(
            columns=[
                dg.TableColumn(
                    c.name,
                    str(c.dtype),
                    description=c.description,
                    constraints=dg.TableColumnConstraints(nullable=c.nullable),
                )
                for c in declared.values()
            ]
        )
    columns = []
    for name, dtype in dict(actual).items():
        c = declared.get(name)
        columns.append(
            dg.TableColumn(
                name,
                str(dtype),
                description=c.description if c else descriptions.get(name),
                constraints=dg.TableColumnConstraints(nullable=c.nullable) if c else None,
            )
        )
    return dg.TableSchema(columns=columns)


def table_metadata(lake: Lake, table: Table, contract: SourceSpec | None = None, **extra: Any) -> dict[str, Any]:
    """Standard materialization metadata for a Delta table, from one replay of its log (:meth:`Lake.state`):
    version, row count, location and column schema (the table's columns, described by ``contract``'s
    :func:`contract_schema` when given).

    Raises:
        deltalake.exceptions.TableNotFoundError: ``table`` does not exist.
    """
    state = lake.state(table)
    return {
        "dagster/uri": dg.MetadataValue.path(lake.location(table)),
        "dagster/row_count": state.rows,
        "dagster/column_schema": (
            column_schema(state.schema) if contract is None else contract_schema(contract, state.schema)
        ),
        "delta_version": state.version,
        **extra,
    }


def metadata_table(frame: pl.DataFrame, limit: int = 50) -> dg.MetadataValue:
    """A small frame as a Dagster table metadata value (first ``limit`` rows)."""
    head = frame.head(limit)
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord(
                {k: (v if isinstance(v, (int, float, str, bool)) or v is None else str(v)) for k, v in row.items()}
            )
            for row in head.iter_rows(named=True)
        ],
        schema=column_schema(head.schema),
    )
