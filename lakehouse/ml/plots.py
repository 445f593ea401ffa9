"""Pictures of the model and its drift, as PNG bytes: for MLflow artifacts and for Dagster asset metadata.

Figures are built with matplotlib's object API on a plain :class:`~matplotlib.figure.Figure` (Agg canvas), never
through ``pyplot``: no global state, no display needed, safe in Dagster's worker processes. They are small
(~5x3.6 in at 80 dpi, tens of kB) because Dagster stores metadata in its event log; :func:`markdown_image`
embeds one as a ``data:`` URI so the asset page shows it inline.

matplotlib is imported on the first figure, not with this module: the code location imports every asset module,
and runs that draw nothing (bronze, silver, gold) should not pay its ~0.5 s import.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
from sklearn.calibration import calibration_curve
from sklearn.metrics import roc_auc_score, roc_curve

if TYPE_CHECKING:
    import lightgbm as lgb
    from matplotlib.figure import Figure

DPI = 80
SIZE = (5.0, 3.6)
STATUS_COLOURS = {"stable": "#4c9f70", "moderate": "#e0a526", "significant": "#c8463d"}


def new_figure(figsize: tuple[float, float] = SIZE) -> Figure:
    """A :class:`~matplotlib.figure.Figure` on the Agg canvas (no pyplot, no display)."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def to_png(fig: Figure) -> bytes:
    """Render ``fig`` as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return buf.getvalue()


def markdown_image(png: bytes, alt: str) -> str:
    """Markdown that shows ``png`` inline (``![alt](data:image/png;base64,...)``)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"


def roc_curves(y: np.ndarray, scores: Mapping[str, np.ndarray], title: str) -> bytes:
    """ROC curves of one or more models on the same labels ``y`` (0/1), AUC in the legend."""
    fig = new_figure(SIZE)
    ax = fig.add_subplot()
    for label, p in scores.items():
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=f"{label} (AUC {roc_auc_score(y, p):.3f})")
    ax.plot([0, 1], [0, 1], ls=":", c="grey", lw=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title, xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="lower right", fontsize=8)
    return to_png(fig)


def calibration_curves(y: np.ndarray, scores: Mapping[str, np.ndarray], title: str, bins: int = 10) -> bytes:
    """Reliability diagram (quantile bins): mean predicted probability vs observed late share."""
    fig = new_figure(SIZE)
    ax = fig.add_subplot()
    for label, p in scores.items():
        frac, mean = calibration_curve(y, p, n_bins=bins, strategy="quantile")
        ax.plot(mean, frac, marker="o", ms=3, label=label)
    ax.plot([0, 1], [0, 1], ls=":", c="grey", lw=1, label="perfect calibration")
    ax.set(xlabel="mean predicted P(late)", ylabel="observed late share", title=title, xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left", fontsize=8)
    return to_png(fig)


def feature_importance(booster: lgb.Booster, top: int = 20) -> bytes:
    """Horizontal bars of the ``top`` features by total gain (LightGBM ``importance_type="gain"``)."""
    gain = booster.feature_importance(importance_type="gain")
    names = np.array(booster.feature_name())
    order = np.argsort(gain)[::-1][:top][::-1]
    fig = new_figure((SIZE[0], 0.22 * len(order) + 1))
    ax = fig.add_subplot()
    ax.barh(names[order], gain[order] / max(gain.sum(), 1e-12), color="#3b6ea5")
    ax.set(xlabel="share of total gain", title=f"Feature importance (top {len(order)})")
    ax.tick_params(axis="y", labelsize=7)
    return to_png(fig)


def psi_bars(report: pl.DataFrame, moderate: float, significant: float, title: str, top: int = 40) -> bytes:
    """PSI per column (``report`` of :func:`lakehouse.ml.drift.drift_report`), coloured by status,
    with the threshold lines; columns not monitored are hatched."""
    rows = report.sort("psi", descending=True).head(top).reverse()
    fig = new_figure((SIZE[0], 0.22 * rows.height + 1.2))
    ax = fig.add_subplot()
    psi = np.maximum(rows.get_column("psi").to_numpy(), 1e-4)
    bars = ax.barh(
        rows.get_column("column").to_list(), psi, color=[STATUS_COLOURS[s] for s in rows.get_column("status")]
    )
    for bar, monitored in zip(bars, rows.get_column("monitored"), strict=True):
        if not monitored:
            bar.set_hatch("//")
    ax.axvline(moderate, ls="--", c=STATUS_COLOURS["moderate"], lw=1, label=f"moderate ({moderate})")
    ax.axvline(significant, ls="--", c=STATUS_COLOURS["significant"], lw=1, label=f"significant ({significant})")
    ax.set_xscale("log")
    ax.set(xlabel="PSI (log scale)", title=title)
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(loc="lower right", fontsize=7)
    return to_png(fig)


def psi_history(history: pl.DataFrame, columns: list[str], significant: float, title: str) -> bytes:
    """PSI over evaluations for ``columns`` of the ``ml/feature_drift`` table (needs ``evaluated_at, column, psi,
    current_month, champion_version``); one x position per evaluation, oldest first."""
    evaluations = history.select("evaluated_at", "current_month", "champion_version").unique().sort("evaluated_at")
    position = {t: i for i, t in enumerate(evaluations.get_column("evaluated_at").to_list())}
    fig = new_figure(SIZE)
    ax = fig.add_subplot()
    for c in columns:
        h = history.filter(pl.col("column") == c).sort("evaluated_at")
        ax.plot(
            [position[t] for t in h.get_column("evaluated_at")],
            np.maximum(h.get_column("psi").to_numpy(), 1e-4),
            marker="o",
            ms=3,
            label=c,
        )
    ax.axhline(significant, ls="--", c=STATUS_COLOURS["significant"], lw=1)
    ax.set_yscale("log")
    ax.set_xticks(
        range(evaluations.height),
        [f"{m}\nv{v}" for m, v in evaluations.select("current_month", "champion_version").iter_rows()],
    )
    ax.set(xlabel="evaluation (newest month, champion version)", ylabel="PSI (log)", title=title)
    ax.tick_params(axis="x", labelsize=7)
    ax.legend(fontsize=7)
    return to_png(fig)
