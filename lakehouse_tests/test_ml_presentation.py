"""What a person reads in the UI about the model: the warning checks explain themselves, the plots are legible.

The browser test (test_ui_browser.py) shows these texts and images in the real UI; these tests pin their content
without a server: the thresholds are not weakened, a failure on a small slice says why it is expected, a failure
on a full-size training set says it is not, and the PNGs are drawn large enough to read at their natural size.
"""

from __future__ import annotations

import struct

import dagster as dg
import numpy as np
import polars as pl

from lakehouse.ml import checks, drift, plots


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def test_the_roc_auc_floor_warning_says_what_it_measured_and_why_a_small_slice_fails_it():
    small = checks.roc_auc_floor(
        0.6365,
        train_months=["2013-01"],
        train_rows=2_600,
        holdout_month="2013-03",
        holdout_rows=2_636,
        standard_error=0.012,
    )
    assert not small.passed and small.severity == dg.AssetCheckSeverity.WARN
    assert checks.ROC_AUC_FLOOR == 0.69  # measured on the full year (README "Model"), not lowered for slices
    text = small.description or ""
    for fact in ("0.6365", "2013-03", "2,636 flights", "2,600 flights of 1 month(s) (2013-01)", "below the floor 0.69"):
        assert fact in text, (fact, text)
    assert "0.698 test ROC-AUC" in text and "Expected on this small slice" in text
    assert small.metadata["floor_source"].value == checks.FLOOR_SOURCE
    assert small.metadata["train_rows"].value == 2_600 and small.metadata["holdout_month"].value == "2013-03"

    full = checks.roc_auc_floor(0.65, train_months=[f"2013-{m:02}" for m in range(1, 11)], train_rows=281_373)
    assert not full.passed
    assert "regression to investigate" in (full.description or "") and "Expected" not in (full.description or "")

    good = checks.roc_auc_floor(0.778, train_rows=281_373)
    assert good.passed and "Expected" not in (good.description or "")
    assert not checks.roc_auc_floor(float("nan")).passed  # no score is no pass


def test_the_drift_warning_names_the_months_the_worst_column_the_threshold_and_the_usual_causes():
    result = checks.no_significant_drift(
        ["weekday", "temp"],
        16.2,
        0.25,
        max_psi_column="weekday",
        monitored=56,
        reference_months="2013-01",
        reference_rows=2_699,
        current_month="2013-03",
        current_rows=2_636,
    )
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    text = result.description or ""
    for fact in ("2 of 56 monitored columns have PSI > 0.25", "(2013-01, 2,699 flights)", "2013-03, 2,636 flights"):
        assert fact in text, (fact, text)
    assert "weekday 16.200" in text and "Siddiqi 2006" in text and "another season" in text
    assert result.metadata["significant_columns"].value == "weekday, temp"
    assert str(result.metadata["threshold_source"].value).startswith("the retraining policy's drift_psi")

    calm = checks.no_significant_drift([], 0.05, 0.25, max_psi_column="temp", monitored=56)
    assert calm.passed and "Expected" not in (calm.description or "")
    waiting = checks.no_significant_drift([], None, None, status="no champion model yet")
    assert waiting.passed and waiting.description == "no champion model yet"


def test_check_definitions_state_their_threshold_source_and_the_slice_explanation():
    specs = {
        s.name: s for s in [*checks.model_check_specs(dg.AssetKey("m")), checks.drift_check_spec(dg.AssetKey("d"))]
    }
    floor = specs[checks.TEST_ROC_AUC_FLOOR].description or ""
    assert "0.69" in floor and checks.FLOOR_SOURCE in floor and "small slice" in floor
    assert not specs[checks.TEST_ROC_AUC_FLOOR].blocking and not specs[checks.NO_SIGNIFICANT_DRIFT].blocking
    drift_text = specs[checks.NO_SIGNIFICANT_DRIFT].description or ""
    assert "0.25" in drift_text and "Siddiqi" in drift_text and "weekday" in drift_text and "season" in drift_text


def test_plots_are_drawn_large_enough_to_read_at_natural_size():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 2_000)
    p = np.clip(y * 0.3 + rng.uniform(0, 0.7, 2_000), 0, 1)
    report = drift.drift_report(
        pl.DataFrame({f"c{i}": rng.normal(0, 1, 400) for i in range(30)}),
        pl.DataFrame({f"c{i}": rng.normal(i / 10, 1, 400) for i in range(30)}),
        numeric=[f"c{i}" for i in range(30)],
        categorical=[],
    )
    pngs = {
        "roc": plots.roc_curves(y, {"challenger": p, "champion": 1 - p}, "ROC on holdout 2013-03"),
        "calibration": plots.calibration_curves(y, {"challenger": p}, "Calibration on 2013-03"),
        "psi": plots.psi_bars(report, drift.PSI_MODERATE, drift.PSI_SIGNIFICANT, "PSI"),
    }
    for name, png in pngs.items():
        width, height = png_size(png)
        # the UI's dialog shows a plot at its natural size (the old 80-dpi plots were 376-455 px wide)
        assert 700 <= width <= 1_100 and 450 <= height <= 1_200, (name, width, height)
        assert len(png) < 150_000, (name, len(png))  # kept in Dagster's event log, base64-encoded
    assert plots.DPI >= 100
