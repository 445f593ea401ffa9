"""Asset checks of the ML layer, evaluated by the assets they belong to.

* ``challenger_not_worse`` (blocking, on ``ml/flight_delay_model``): the champion/challenger gate
  (:func:`lakehouse.ml.training.decide_promotion`). It passes for an admitted challenger, which ``ml/champion``
  then promotes, and when the model step found the champion unchanged (nothing registered, nothing to decide).
  It fails when the challenger is refused, so the downstream steps of the run (``ml/champion``, predictions,
  drift) do not execute: the ``champion`` alias and the predictions stay untouched.
* ``test_roc_auc_floor`` (warning, on the model): holdout ROC-AUC >= :data:`ROC_AUC_FLOOR`.
* ``no_significant_drift`` (warning, on ``ml/feature_drift``): no monitored column has PSI above the retraining
  threshold (:class:`lakehouse.resources.RetrainingPolicy`).
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from lakehouse.ml import training

CHALLENGER_NOT_WORSE = "challenger_not_worse"
TEST_ROC_AUC_FLOOR = "test_roc_auc_floor"
NO_SIGNIFICANT_DRIFT = "no_significant_drift"

ROC_AUC_FLOOR = 0.69
"""Test ROC-AUC of a bare LightGBM on simple leakage-free features, measured on the full year (train Jan-Oct, test
Dec; README, "Model"): a model below it is worse than that baseline. On small slices (the demo, the tests) the
holdout is a few days and the check may warn without anything being wrong."""


def model_check_specs(key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            CHALLENGER_NOT_WORSE,
            asset=key,
            blocking=True,
            description="Champion/challenger gate: passes when the challenger's ROC-AUC on the newest month is >= "
            "the champion's on the same month minus the allowed drop (the model's max_roc_auc_drop config, 0.005 "
            "by default), or there is no champion yet (then `ml/champion` promotes it), or the champion was "
            "trained on the same data, code and settings (nothing was registered); fails otherwise, so "
            "`ml/champion`, the predictions and drift are skipped and the champion stays.",
        ),
        dg.AssetCheckSpec(
            TEST_ROC_AUC_FLOOR,
            asset=key,
            description=f"Holdout ROC-AUC >= {ROC_AUC_FLOOR}, the bare-LightGBM reference.",
        ),
    ]


def challenger_not_worse(decision: training.PromotionDecision, metadata: dict[str, Any]) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=CHALLENGER_NOT_WORSE,
        passed=decision.promote,
        severity=dg.AssetCheckSeverity.ERROR,
        description=decision.describe(),
        metadata=metadata,
    )


def challenger_unchanged(description: str, metadata: dict[str, Any]) -> dg.AssetCheckResult:
    """The gate when the model step registered nothing (the champion already is this training): passes."""
    return dg.AssetCheckResult(
        check_name=CHALLENGER_NOT_WORSE,
        passed=True,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata=metadata,
    )


def test_roc_auc_floor(test_roc_auc: float) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=TEST_ROC_AUC_FLOOR,
        passed=test_roc_auc >= ROC_AUC_FLOOR,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"test_roc_auc": test_roc_auc, "floor": ROC_AUC_FLOOR},
    )


def drift_check_spec(key: dg.AssetKey) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        NO_SIGNIFICANT_DRIFT,
        asset=key,
        description="Warns when a monitored column (model feature or label) has PSI > 0.25; the retraining "
        "sensor reacts to the same condition.",
    )


def no_significant_drift(
    significant: list[str], max_psi: float | None, threshold: float | None, status: str | None = None
) -> dg.AssetCheckResult:
    metadata: dict[str, Any] = (
        {"status": status}
        if status
        else {"significant_columns": ", ".join(significant) or "none", "max_psi": max_psi, "threshold": threshold}
    )
    return dg.AssetCheckResult(
        check_name=NO_SIGNIFICANT_DRIFT, passed=not significant, severity=dg.AssetCheckSeverity.WARN, metadata=metadata
    )
