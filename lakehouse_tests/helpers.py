"""Helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from lakehouse.bronze.parsing import to_bronze
from lakehouse.definitions import build_definitions
from lakehouse.folders import Folder
from lakehouse.pipeline import MedallionResult, materialize_medallion
from lakehouse.settings import Settings
from lakehouse.sources import SOURCES
from lakehouse.tables import BY_PATH, Lake, Landing

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def bronze_of(name: str, raw: pl.DataFrame, file: str = "f.csv", seq: int = 1) -> pl.DataFrame:
    """A raw (all-String) frame of source ``name`` conformed to the bronze shape."""
    return to_bronze(
        raw,
        SOURCES[name],
        source_file=file,
        file_hash=f"hash-{file}",
        batch_id=f"b{seq}",
        batch_seq=seq,
        ingested_at=NOW,
    )


def materialize_all(settings: Settings, instance: dg.DagsterInstance, **kwargs) -> MedallionResult:
    """Materialize the whole graph (or ``selection=``) with every check, on the lake of ``settings``, as
    ``lakehouse run`` does (:func:`lakehouse.pipeline.materialize_medallion`: ingest, stale gold months, ml)."""
    kwargs.setdefault("raise_on_error", True)
    return materialize_medallion(build_definitions(settings), instance, Lake(settings.lake_dir), **kwargs)


def lake(settings: Settings) -> Lake:
    return Lake(settings.lake_dir)


def location(settings: Settings, path: str) -> str:
    """Location of the catalogue table ``<layer>/<name>`` in the lake of ``settings``."""
    return lake(settings).location(BY_PATH[path])


def read_table(settings: Settings, path: str) -> pl.DataFrame:
    """The catalogue table ``<layer>/<name>`` as a DataFrame."""
    return pl.read_delta(location(settings, path))


def landing_folder(settings: Settings, source: str) -> Path:
    return Path(Landing(settings.landing_dir).source_dir(source))


def rejected_folder(settings: Settings, source: str) -> Path:
    return Path(Landing(settings.landing_dir).rejected_dir(source))


def spy_reads(monkeypatch: pytest.MonkeyPatch, folder_class: type[Folder]) -> list[str]:
    """The names of the files ``folder_class`` reads from now on (a spy on its real :meth:`Folder.read`)."""
    seen: list[str] = []
    real = folder_class.read

    def read(self: Folder, name: str) -> bytes:
        seen.append(name)
        return real(self, name)

    monkeypatch.setattr(folder_class, "read", read)
    return seen
