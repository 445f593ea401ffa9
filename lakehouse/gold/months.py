"""Which months of a gold table are stale, read from the Delta logs alone.

Each month of a gold table is written by one replace-where commit that records the Delta versions of the silver
tables it read (:meth:`lakehouse.tables.Lake.replace_partition`); each silver commit records the span of event
times of the rows it wrote (:meth:`lakehouse.tables.Lake.merge`, ``changed``). A month is **stale** when silver
has flights for it but the gold table has no partition for it, or when a silver commit made after the version
the month was built from wrote rows whose **reach** (how far a changed row moves the features of other flights,
:data:`FEATURE_REACH`) overlaps the month. A commit that recorded no span (a dimension such as ``planes``, or an
older writer) reaches every month.

Because the answer comes from the lake and not from a sensor's memory, it survives anything: a killed run, a
table moved aside by ``lakehouse repair``, a sensor cursor reset. The gold sensor and ``lakehouse run`` both ask
it which partitions to materialize, so a run with nothing new materializes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta

from lakehouse.gold import features
from lakehouse.tables import SILVER, Lake, Table

Reach = tuple[timedelta, timedelta] | None
"""A changed row with event time ``t`` can change flights scheduled in ``[t + lo, t + hi]``; None: any flight."""

FEATURE_REACH: dict[str, Reach] = {
    # a flight's row reaches LOOKAHEAD earlier flights and LOOKBACK later ones (gold.features)
    "silver/flights": (-features.LOOKAHEAD, features.LOOKBACK),
    # a weather row of hour t is used by flights scheduled from t + 1 h to t + 4 h (available after, tolerance)
    "silver/weather": (
        features.WEATHER_AVAILABLE_AFTER,
        features.WEATHER_AVAILABLE_AFTER + features.WEATHER_TOLERANCE,
    ),
    "silver/planes": None,  # a dimension: a changed aircraft may fly in any month
}
ROUTE_REACH: dict[str, Reach] = {"silver/flights": (timedelta(0), timedelta(0))}  # a month aggregates its own days


def months_with_flights(lake: Lake, months: Iterable[date]) -> set[date]:
    """The months among ``months`` for which silver flights has rows (from its ``year, month`` partitions)."""
    if not lake.exists(SILVER["flights"]):
        return set()
    present = {date(int(p["year"]), int(p["month"]), 1) for p in lake.partitions(SILVER["flights"])}
    return present & set(months)


def _reaches(change: dict | None, reach: Reach, month: date) -> bool:
    """Whether a silver commit's ``changed`` record, moved by ``reach``, overlaps ``month``'s flights."""
    if change is None or reach is None or "from" not in change:
        return True
    start, end = features.month_bounds(month)
    lo = datetime.fromisoformat(change["from"]) + reach[0]
    hi = datetime.fromisoformat(change["to"]) + reach[1]
    return lo < end and hi >= start


def stale_months(lake: Lake, table: Table, reach: Mapping[str, Reach], months: Iterable[date]) -> list[date]:
    """The months of ``table`` (among ``months``, the partitions that exist) to (re)build, oldest first: months
    with silver flights but no partition in ``table``, and built months that a later silver commit reaches.

    Args:
        reach: per input table path (``silver/flights``...), how far its changed rows reach (:data:`FEATURE_REACH`).
        months: first days of the months the partitions definition has.
    """
    wanted = months_with_flights(lake, months)
    built = lake.partitions_built(table)
    oldest = {path: min((b.get(path, -1) for b in built.values()), default=-1) for path in reach}
    changes = {path: lake.changes_since(_table(path), version) for path, version in oldest.items()}
    stale = set(wanted - built.keys())
    for month in wanted & built.keys():
        for path, how_far in reach.items():
            since = built[month].get(path, -1)
            if any(v > since and _reaches(change, how_far, month) for v, change in changes[path]):
                stale.add(month)
                break
    return sorted(stale)


def _table(path: str) -> Table:
    layer, name = path.split("/")
    assert layer == "silver", path
    return SILVER[name]


def contiguous(months: list[date]) -> list[tuple[date, date]]:
    """Sorted months grouped into runs of consecutive months: ``[(first, last), ...]``."""
    runs: list[tuple[date, date]] = []
    for month in sorted(months):
        if runs and _next(runs[-1][1]) == month:
            runs[-1] = (runs[-1][0], month)
        else:
            runs.append((month, month))
    return runs


def _next(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)
