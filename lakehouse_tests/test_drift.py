"""Drift statistics (PSI, KS, chi-square), their thresholds, and the PNG plots."""

import numpy as np
import polars as pl
import pytest
from scipy import stats

from lakehouse.ml import drift, plots, training


def test_psi_matches_the_formula_by_hand():
    # (0.9 - 0.5) ln(0.9 / 0.5) + (0.1 - 0.5) ln(0.1 / 0.5)
    assert drift.psi(np.array([0.5, 0.5]), np.array([0.9, 0.1])) == pytest.approx(
        0.4 * np.log(1.8) + (-0.4) * np.log(0.2)
    )
    assert drift.psi(np.array([0.2, 0.3, 0.5]), np.array([0.2, 0.3, 0.5])) == 0.0


def test_empty_bins_are_floored_so_psi_stays_finite():
    value = drift.psi(np.array([1.0, 0.0]), np.array([0.5, 0.5]))
    assert np.isfinite(value)
    assert value == pytest.approx((0.5 - 1.0) * np.log(0.5) + (0.5 - 1e-4) * np.log(0.5 / 1e-4))


@pytest.mark.parametrize(
    ("value", "status"),
    [
        (0.0, "stable"),
        (0.0999, "stable"),
        (0.10, "moderate"),
        (0.25, "moderate"),
        (0.2501, "significant"),
        (3.0, "significant"),
    ],
)
def test_thresholds_follow_siddiqi(value, status):
    assert drift.psi_status(value) == status


def test_numeric_bins_are_reference_deciles_with_open_ends_and_a_missing_bin():
    reference = pl.Series("x", np.arange(1000, dtype=float))
    current = pl.Series("x", [-50.0, 5000.0, None, 500.0])
    ref_counts, cur_counts = drift.numeric_bin_counts(reference, current)
    assert ref_counts.tolist() == [100] * 10 + [0]  # 10 equal-share bins, nothing missing
    assert cur_counts.tolist() == [1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1]  # below, middle, above the range; missing


def test_a_column_with_few_values_is_binned_by_value():
    reference = pl.Series("weekday", [1, 2, 3, 4, 5, 6, 7] * 10)
    current = pl.Series("weekday", [1, 1, 8])
    ref_counts, cur_counts = drift.numeric_bin_counts(reference, current)
    assert ref_counts.tolist() == [10] * 7 + [0, 0]  # values 1..7, the unseen 8, missing
    assert cur_counts.tolist() == [2, 0, 0, 0, 0, 0, 0, 1, 0]


def test_same_distribution_is_stable_and_a_shift_is_significant():
    rng = np.random.default_rng(7)
    ref = pl.Series("t", rng.normal(10, 5, 50_000))
    same = drift.column_drift(ref, pl.Series("t", rng.normal(10, 5, 20_000)), categorical=False)
    shifted = drift.column_drift(ref, pl.Series("t", rng.normal(20, 5, 20_000)), categorical=False)
    assert same["status"] == "stable" and same["psi"] < 0.01
    assert shifted["status"] == "significant" and shifted["psi"] > 1.0
    assert shifted["bins"] == 11  # 10 quantile bins + missing
    # the second opinion: KS statistic (scipy's) and Wasserstein distance, in the column's unit
    cur = rng.normal(20, 5, 20_000)
    again = drift.column_drift(ref, pl.Series("t", cur), categorical=False)
    assert again["test_statistic"] == pytest.approx(stats.ks_2samp(ref.to_numpy(), cur).statistic)
    assert shifted["test"] == "ks" and shifted["test_pvalue"] < 1e-12 and shifted["test_statistic"] > 0.5
    assert shifted["wasserstein"] == pytest.approx(10, abs=0.3)
    assert shifted["current_mean"] - shifted["reference_mean"] == pytest.approx(10, abs=0.3)


def test_missing_values_are_a_bin_of_their_own():
    ref = pl.Series("wind_gust", np.arange(1000, dtype=float))
    cur = pl.Series("wind_gust", [None] * 500 + list(np.arange(0, 1000, 2, dtype=float)), dtype=pl.Float64)
    row = drift.column_drift(ref, cur, categorical=False)
    assert row["current_missing_share"] == 0.5 and row["reference_missing_share"] == 0.0
    assert row["status"] == "significant"


def test_categorical_psi_counts_new_categories_and_uses_chi_square():
    ref = pl.Series("carrier", ["UA"] * 500 + ["AA"] * 500)
    assert drift.column_drift(ref, pl.Series("carrier", ["UA", "AA"] * 200), categorical=True)["psi"] < 1e-12
    row = drift.column_drift(ref, pl.Series("carrier", ["UA"] * 450 + ["AA"] * 450 + ["NK"] * 100), True)
    assert row["dtype"] == "categorical" and row["bins"] == 3 and row["test"] == "chi2"
    assert row["status"] == "significant" and np.isfinite(row["psi"])
    assert row["test_pvalue"] < 1e-10 and row["wasserstein"] is None


def test_drift_report_covers_every_column_sorted_by_psi_with_exemptions():
    rng = np.random.default_rng(1)
    n = 5000
    ref = pl.DataFrame(
        {
            "month": [1] * n,
            "temp": rng.normal(0, 1, n),
            "carrier": ["UA", "AA"] * (n // 2),
            "is_late": rng.integers(0, 2, n),
            "prediction": rng.uniform(0, 1, n),
        }
    )
    cur = pl.DataFrame(
        {
            "month": [7] * n,
            "temp": rng.normal(3, 1, n),
            "carrier": ["UA", "AA"] * (n // 2),
            "is_late": rng.integers(0, 2, n),
            "prediction": rng.uniform(0, 1, n),
        }
    )
    report = drift.drift_report(
        ref,
        cur,
        numeric=["month", "temp", "prediction"],
        categorical=["carrier", "is_late"],
        kinds={"is_late": "label", "prediction": "prediction"},
        exempt=["month"],
    )
    assert report.schema == pl.Schema(drift.REPORT_SCHEMA)
    assert set(report.get_column("column")) == {"month", "temp", "carrier", "is_late", "prediction"}
    assert report.get_column("psi").is_sorted(descending=True)
    by = {r["column"]: r for r in report.iter_rows(named=True)}
    assert by["month"]["status"] == "significant" and not by["month"]["monitored"]
    assert by["temp"]["status"] == "significant" and by["temp"]["monitored"]
    assert by["carrier"]["status"] == by["is_late"]["status"] == by["prediction"]["status"] == "stable"
    assert (by["is_late"]["kind"], by["prediction"]["kind"], by["temp"]["kind"]) == ("label", "prediction", "feature")


def test_plots_are_png_and_embed_as_markdown():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 400)
    p = np.clip(y * 0.3 + rng.uniform(0, 0.7, 400), 0, 1)
    report = drift.drift_report(
        pl.DataFrame({"a": rng.normal(0, 1, 300)}),
        pl.DataFrame({"a": rng.normal(1, 1, 300)}),
        numeric=["a"],
        categorical=[],
    )
    for png in (
        plots.roc_curves(y, {"challenger": p, "champion": 1 - p}, "ROC"),
        plots.calibration_curves(y, {"challenger": p}, "calibration"),
        plots.psi_bars(report, drift.PSI_MODERATE, drift.PSI_SIGNIFICANT, "PSI"),
    ):
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and 2_000 < len(png) < 200_000
    assert plots.markdown_image(b"\x89PNG", "x").startswith("![x](data:image/png;base64,iVBORw")


def test_promotion_rule_allows_a_drop_within_the_margin_only():
    assert training.decide_promotion(0.70, None).outcome == "first_champion"
    assert training.decide_promotion(0.746, 0.750, max_drop=0.005).promote  # within noise
    assert training.decide_promotion(0.760, 0.750).outcome == "promoted"
    refused = training.decide_promotion(0.744, 0.750, max_drop=0.005)
    assert not refused.promote and refused.outcome == "refused"
    assert refused.difference == pytest.approx(-0.006)
    assert "refused" in refused.describe() and "0.7440" in refused.describe()
    # the margin is about sampling noise: ~0.0035 standard error of ROC-AUC on a month of real flights
    assert 0.002 < training.auc_standard_error(0.75, 8_000, 19_000) < 0.005


def test_sample_rows_is_bounded_deterministic_and_keeps_row_order():
    frame = pl.DataFrame({"i": range(10_000), "x": np.random.default_rng(1).normal(size=10_000)})
    assert drift.sample_rows(frame, max_rows=10_000) is frame  # small enough: untouched
    a = drift.sample_rows(frame, max_rows=1_000)
    b = drift.sample_rows(frame, max_rows=1_000)
    assert a.height == 1_000 and a.equals(b)
    assert a.get_column("i").is_sorted() and a.get_column("i").n_unique() == 1_000
    assert not a.equals(drift.sample_rows(frame, max_rows=1_000, seed=7))


def test_sampled_psi_stays_far_below_the_moderate_threshold_for_one_distribution():
    rng = np.random.default_rng(3)
    frame = pl.DataFrame({"x": rng.gamma(2.0, 10.0, size=400_000)})
    reference = drift.sample_rows(frame.head(300_000), max_rows=100_000)
    current = frame.tail(100_000)
    row = drift.column_drift(reference.get_column("x"), current.get_column("x"), categorical=False)
    assert reference.height == 100_000
    assert row["psi"] < drift.PSI_MODERATE / 20
