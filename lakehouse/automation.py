"""Declarative automation: how assets downstream of bronze follow new data on their own.

Bronze is started by the landing sensor (:mod:`lakehouse.sensors`); everything after it uses
:func:`follow_upstream`, evaluated by :data:`automation_sensor` (declared RUNNING, because Dagster's
auto-created ``default_automation_condition_sensor`` starts STOPPED; ../shared/STACK_FACTS.md, item 4).
"""

from __future__ import annotations

import dagster as dg

AC = dg.AutomationCondition


def follow_upstream() -> dg.AutomationCondition:
    """``eager()``, plus a bootstrap for assets that were never materialized.

    ``eager()`` never requests an asset that has never been materialized (its ``since_last_handled`` resets on
    the first evaluation; verified in STACK_FACTS 2b), so a fresh lake would never get its first silver or gold
    tables. The bootstrap requests a missing asset once all its dependencies exist, nothing it depends on is
    running, and its own last run did not fail (so a broken asset is not retried on every tick).
    """
    bootstrap = (
        AC.missing() & ~AC.any_deps_missing() & ~AC.any_deps_in_progress() & ~AC.in_progress()
        & ~AC.execution_failed()
    ).with_label("missing, deps ready")
    return (AC.eager() | bootstrap).with_label("eager or bootstrap")


automation_sensor = dg.AutomationConditionSensorDefinition(
    "lakehouse_automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Evaluates the automation conditions of every asset (silver and gold follow new bronze data).",
)
