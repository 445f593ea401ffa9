"""Distribution drift between a model's training data and the newest data, as plain polars/numpy/scipy functions.

Two statistics per column, because they answer different questions:

* **PSI** (population stability index) is the *decision* statistic: how far the newest data's distribution moved
  from the reference, on a scale that does not grow with sample size.
  ``PSI = sum over bins of (a_i - e_i) * ln(a_i / e_i)``, with ``e_i``/``a_i`` the reference/current share of
  rows in bin ``i``.

  - Numeric columns: **10 quantile bins fitted on the reference** (interior edges at the 10 %, 20 %, ..., 90 %
    reference quantiles; the outer bins are open, so current values beyond the reference range land in them).
    Tied quantiles collapse, so a column whose reference has at most 10 distinct values is binned **by value**
    instead (each value its own bin; e.g. ``weekday``, ``engines``).
  - Categorical columns (and the binary label): one bin per category seen in either sample.
  - Missing values are always a bin of their own, so a column that starts arriving empty drifts too.
  - Empty bins: shares are floored at :data:`PSI_EPSILON` (1e-4) before the logarithm, so a category that never
    occurred in the reference contributes a large but finite amount.

  Thresholds (:func:`psi_status`): **PSI < 0.10 stable, 0.10–0.25 moderate shift, > 0.25 significant shift**.
  Source: N. Siddiqi, *Credit Risk Scorecards: Developing and Implementing Intelligent Credit Scoring*, Wiley,
  2006 (population stability report, ch. 8); their statistical behaviour is analysed in B. Yurdakul,
  *Statistical Properties of Population Stability Index*, PhD dissertation, Western Michigan University, 2018.

* A **two-sample test** as a second opinion: Kolmogorov–Smirnov (``scipy.stats.ks_2samp``) for numeric columns,
  with the 1-Wasserstein distance (``scipy.stats.wasserstein_distance``, in the column's own unit) beside it;
  Pearson's chi-square test of homogeneity (``scipy.stats.chi2_contingency``) for categorical columns. These are
  reported, not used to decide: with ~10^5 reference rows their p-values are ~0 for shifts of no practical size.

* **Samples, not whole tables**: each side is a uniform random sample of at most :data:`MAX_SAMPLE_ROWS`
  (100,000) rows with a fixed seed (:func:`sample_rows`), so monitoring costs the same at any table size. The
  sampling noise is far below the thresholds: for two samples of one distribution, ``E[PSI] ~ (B - 1) *
  (1/n_ref + 1/n_cur)`` (B bins; Yurdakul 2018, ch. 3), i.e. ~0.0004 for B = 10 with 100,000 and 27,000 rows,
  against a 0.10 threshold. Measured on the 10x benchmark data (2.8 M training rows), the drift step took
  40.1 s on all rows and 4.8 s on samples (BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import polars as pl
from scipy import stats

PSI_BINS = 10
PSI_EPSILON = 1e-4
PSI_MODERATE = 0.10
PSI_SIGNIFICANT = 0.25
MISSING = "<missing>"
MAX_SAMPLE_ROWS = 100_000
SAMPLE_SEED = 20130101

REPORT_SCHEMA = pl.Schema(
    {
        "column": pl.String(),  # column name
        "kind": pl.String(),  # feature | label | prediction
        "dtype": pl.String(),  # numeric | categorical
        "monitored": pl.Boolean(),  # False for columns exempt from the retraining rule (see drift_report)
        "bins": pl.Int64(),  # number of PSI bins, the missing-value bin included
        "psi": pl.Float64(),
        "status": pl.String(),  # stable | moderate | significant (psi_status)
        "test": pl.String(),  # ks | chi2
        "test_statistic": pl.Float64(),  # KS D (0..1) or chi-square statistic
        "test_pvalue": pl.Float64(),
        "wasserstein": pl.Float64(),  # numeric only, unit of the column
        "reference_rows": pl.Int64(),
        "current_rows": pl.Int64(),
        "reference_missing_share": pl.Float64(),
        "current_missing_share": pl.Float64(),
        "reference_mean": pl.Float64(),  # numeric only
        "current_mean": pl.Float64(),  # numeric only
    }
)


def sample_rows(frame: pl.DataFrame, max_rows: int = MAX_SAMPLE_ROWS, seed: int = SAMPLE_SEED) -> pl.DataFrame:
    """``frame`` itself when it has at most ``max_rows`` rows, else a uniform sample of ``max_rows`` rows without
    replacement, in the frame's row order. Deterministic for a given frame *order* and ``seed`` (sort first:
    Delta does not guarantee one)."""
    if frame.height <= max_rows:
        return frame
    return frame.with_row_index("_row").sample(max_rows, seed=seed).sort("_row").drop("_row")


def psi(expected: np.ndarray, actual: np.ndarray, epsilon: float = PSI_EPSILON) -> float:
    """PSI of two share vectors over the same bins (each summing to 1); shares are floored at ``epsilon``."""
    e = np.clip(np.asarray(expected, dtype=float), epsilon, None)
    a = np.clip(np.asarray(actual, dtype=float), epsilon, None)
    return float(np.sum((a - e) * np.log(a / e)))


def psi_status(value: float) -> str:
    """``stable`` (< 0.10), ``moderate`` (0.10–0.25) or ``significant`` (> 0.25); Siddiqi (2006)."""
    if value < PSI_MODERATE:
        return "stable"
    return "moderate" if value <= PSI_SIGNIFICANT else "significant"


def quantile_edges(reference: np.ndarray, bins: int = PSI_BINS) -> np.ndarray:
    """Interior bin edges: the ``1/bins .. (bins-1)/bins`` quantiles of ``reference`` (non-null), deduplicated."""
    if reference.size == 0:
        return np.array([], dtype=float)
    return np.unique(np.quantile(reference, np.arange(1, bins) / bins))


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else counts.astype(float)


def numeric_bin_counts(reference: pl.Series, current: pl.Series, bins: int = PSI_BINS) -> tuple[np.ndarray, np.ndarray]:
    """Row counts per bin of both samples: the bins of the module docstring, the missing bin last.

    Returns:
        ``(reference_counts, current_counts)``, two int arrays of equal length.
    """
    ref = reference.cast(pl.Float64).drop_nulls().drop_nans().to_numpy()
    cur = current.cast(pl.Float64).drop_nulls().drop_nans().to_numpy()
    ref_missing, cur_missing = len(reference) - ref.size, len(current) - cur.size
    distinct = np.unique(ref)
    if distinct.size <= bins:  # few values: one bin per reference value, plus one for values never seen
        values = np.union1d(distinct, np.unique(cur))
        ref_counts = np.array([np.count_nonzero(ref == v) for v in values])
        cur_counts = np.array([np.count_nonzero(cur == v) for v in values])
    else:
        edges = quantile_edges(ref, bins)
        n = edges.size + 1
        ref_counts = np.bincount(np.searchsorted(edges, ref, side="left"), minlength=n)
        cur_counts = np.bincount(np.searchsorted(edges, cur, side="left"), minlength=n)
    return np.append(ref_counts, ref_missing), np.append(cur_counts, cur_missing)


def categorical_bin_counts(reference: pl.Series, current: pl.Series) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Row counts per category (union of both samples, sorted; missing values as ``<missing>``).

    Returns:
        ``(reference_counts, current_counts, categories)``.
    """
    ref = reference.cast(pl.String).fill_null(MISSING).value_counts()
    cur = current.cast(pl.String).fill_null(MISSING).value_counts()
    name = reference.name
    cats = sorted(set(ref.get_column(name).to_list()) | set(cur.get_column(name).to_list()))
    ref_map = dict(ref.iter_rows())
    cur_map = dict(cur.iter_rows())
    return (np.array([ref_map.get(c, 0) for c in cats]), np.array([cur_map.get(c, 0) for c in cats]), cats)


def column_drift(reference: pl.Series, current: pl.Series, categorical: bool, bins: int = PSI_BINS) -> dict:
    """PSI, its status and the second test for one column; keys as in :data:`REPORT_SCHEMA` (minus column/kind).

    Args:
        reference: the column in the reference sample (the champion's training rows).
        current: the same column in the current sample (the newest month).
        categorical: bin by category (and use chi-square) instead of by reference quantile (and KS).
    """
    ref_missing = float(reference.null_count() / len(reference)) if len(reference) else 0.0
    cur_missing = float(current.null_count() / len(current)) if len(current) else 0.0
    row: dict = {
        "dtype": "categorical" if categorical else "numeric",
        "reference_rows": len(reference),
        "current_rows": len(current),
        "reference_missing_share": ref_missing,
        "current_missing_share": cur_missing,
        "wasserstein": None,
        "reference_mean": None,
        "current_mean": None,
        "test_statistic": None,
        "test_pvalue": None,
    }
    if categorical:
        ref_counts, cur_counts, _ = categorical_bin_counts(reference, current)
        row["test"] = "chi2"
        table = np.vstack([ref_counts, cur_counts])
        table = table[:, table.sum(axis=0) > 0]
        if table.shape[1] >= 2 and (table.sum(axis=1) > 0).all():
            chi2, p, _, _ = stats.chi2_contingency(table, correction=False)
            row["test_statistic"], row["test_pvalue"] = float(chi2), float(p)
    else:
        ref_counts, cur_counts = numeric_bin_counts(reference, current, bins)
        row["test"] = "ks"
        ref = reference.cast(pl.Float64).drop_nulls().drop_nans().to_numpy()
        cur = current.cast(pl.Float64).drop_nulls().drop_nans().to_numpy()
        if ref.size and cur.size:
            ks = stats.ks_2samp(ref, cur)
            row["test_statistic"], row["test_pvalue"] = float(ks.statistic), float(ks.pvalue)
            row["wasserstein"] = float(stats.wasserstein_distance(ref, cur))
            row["reference_mean"], row["current_mean"] = float(ref.mean()), float(cur.mean())
    value = psi(_shares(ref_counts), _shares(cur_counts))
    row.update(bins=int(ref_counts.size), psi=value, status=psi_status(value))
    return row


def drift_report(
    reference: pl.DataFrame,
    current: pl.DataFrame,
    numeric: Iterable[str],
    categorical: Iterable[str],
    kinds: Mapping[str, str] | None = None,
    exempt: Iterable[str] = (),
    bins: int = PSI_BINS,
) -> pl.DataFrame:
    """One row per column with its PSI, status and second test, sorted by PSI (largest first).

    Args:
        reference: reference sample (e.g. the champion's training rows), one row per flight.
        current: current sample (e.g. the newest month), same columns.
        numeric / categorical: the columns to compare and how to bin them.
        kinds: ``column -> feature | label | prediction`` (default ``feature``).
        exempt: columns reported but not ``monitored`` (excluded from retraining decisions), e.g. a calendar
            ``month`` column, whose newest value lies outside the reference by construction.

    Returns:
        A frame with :data:`REPORT_SCHEMA`.
    """
    kinds = dict(kinds or {})
    exempt = set(exempt)
    rows = []
    for is_cat, columns in ((False, numeric), (True, categorical)):
        for c in columns:
            row = column_drift(reference.get_column(c), current.get_column(c), is_cat, bins)
            rows.append({"column": c, "kind": kinds.get(c, "feature"), "monitored": c not in exempt, **row})
    return pl.DataFrame(rows, schema=REPORT_SCHEMA).sort("psi", "column", descending=[True, False])
