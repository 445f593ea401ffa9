"""Declarative automation: how assets downstream of bronze follow new data on their own.

Bronze is started by the landing sensor (:mod:`lakehouse.bronze.sensors`); everything after it uses
:func:`follow_upstream`, evaluated by :data:`automation_sensor` (declared RUNNING, because Dagster's
auto-created ``default_automation_condition_sensor`` starts STOPPED; docs/stack-notes.md, "Declarative
automation").
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

AC = dg.AutomationCondition

# Freshness SLAs (Dagster's FreshnessDaemon turns them into PASS/WARN/FAIL states on the asset pages).
# Flights and weather land as one file per month, so a healthy feature view is rebuilt at least every 31 days
# (the longest month): warn after 32 days (a file is a day late), fail after 35 (it is most of a week late).
FEATURES_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(days=35), warn_window=timedelta(days=32))
# The retraining sensor trains a challenger within a tick of a new month arriving, so a healthy model asset is
# materialized about as often as the features; it gets 10 more days than the features before failing, so a late
# landing shows first on the features (the cause) and only then on the model (the effect).
MODEL_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(days=45), warn_window=timedelta(days=35))


def follow_upstream() -> dg.AutomationCondition:
    """``eager()``, plus a bootstrap for assets that were never materialized.

    ``eager()`` never requests an asset that has never been materialized (its ``since_last_handled`` resets on
    the first evaluation; docs/stack-notes.md, "Declarative automation"), so a fresh lake would never get its
    first silver or gold tables. The bootstrap requests a missing asset once all its dependencies exist, nothing
    it depends on is running, and its own last run did not fail (so a broken asset is not retried on every tick).

    Only unpartitioned assets use it: the monthly partitions after silver are requested by sensors that read the
    lake (:mod:`lakehouse.gold.sensors`, :mod:`lakehouse.ml.sensors`). ``any_deps_missing`` counts a partitioned
    dependency as missing while *any* of its partitions is missing (every month of the partitions definition,
    including months not landed yet), so it could not follow a partial year anyway.
    """
    missing = AC.any_deps_missing()
    eager = (
        AC.in_latest_time_window()
        & (AC.newly_missing() | AC.any_deps_updated()).since_last_handled()
        & ~missing
        & ~AC.any_deps_in_progress()
        & ~AC.in_progress()
    ).with_label("eager")
    bootstrap = (
        AC.missing() & ~missing & ~AC.any_deps_in_progress() & ~AC.in_progress() & ~AC.execution_failed()
    ).with_label("missing, deps ready")
    return (eager | bootstrap).with_label("eager or bootstrap")


automation_sensor = dg.AutomationConditionSensorDefinition(
    "lakehouse_automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Evaluates the automation conditions of every asset (silver and gold follow new bronze data).",
)
