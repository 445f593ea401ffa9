"""Pictures of the model and its drift, as PNG bytes: for MLflow artifacts and for Dagster asset metadata.

Figures are built with matplotlib's object API on a plain :class:`~matplotlib.figure.Figure` (Agg canvas), never
through ``pyplot``: no global state, no display needed, safe in Dagster's worker processes.

Size: 8 x 5 in at :data:`DPI` 110, i.e. about 880 x 550 px, with 11-14 pt text (:data:`FONT`), so a plot is legible
at its natural size in the Dagster UI's dialog and on a laptop screen; a PNG is 30-80 kB (Dagster keeps metadata in
its event log, so they are not made larger). :func:`markdown_image` embeds one as a ``data:`` URI in Markdown.

Where a user sees them (dagster-webserver 1.13, checked with lakehouse_tests/test_ui_browser.py): the UI renders a
Markdown metadata value inline only when it is shorter than 1,000 characters, so an embedded PNG always appears
as a ``[Show Markdown]`` link in the asset's *Metadata* table (Overview, and Events per materialization); clicking
it opens a dialog showing the image at its natural size (the UI's Markdown sanitizer allows ``data:`` image
sources). docs/stack-notes.md, "Images in Dagster metadata", says what else was considered.

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
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 110
SIZE = (8.0, 5.0)  # inches: 880 x 550 px at DPI
FONT = {"title": 14, "label": 12, "tick": 11, "legend": 11, "bar_label": 10}  # points
STATUS_COLOURS = {"stable": "#4c9f70", "moderate": "#e0a526", "significant": "#c8463d"}


def new_figure(figsize: tuple[float, float] = SIZE) -> Figure:
    """A :class:`~matplotlib.figure.Figure` on the Agg canvas (no pyplot, no display)."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, dpi=DPI)


def style(ax: Axes, title: str, xlabel: str = "", ylabel: str = "") -> None:
    """Title, axis labels and tick labels at the :data:`FONT` sizes, with a light grid."""
    ax.set_title(title, fontsize=FONT["title"])
    ax.set_xlabel(xlabel, fontsize=FONT["label"])
    ax.set_ylabel(ylabel, fontsize=FONT["label"])
    ax.tick_params(labelsize=FONT["tick"])
    ax.grid(True, alpha=0.3, lw=0.6)


def to_png(fig: Figure) -> bytes:
    """Render ``fig`` as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return buf.getvalue()


def markdown_image(png: bytes, alt: str) -> str:
    """``![alt](data:image/png;base64,...)``: Markdown embedding ``png``, for ``dg.MetadataValue.md``. Dagster's UI
    shows it as a ``[Show Markdown]`` link that opens the image in a dialog (module docstring)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"


def roc_curves(y: np.ndarray, scores: Mapping[str, np.ndarray], title: str) -> bytes:
    """ROC curves of one or more models on the same labels ``y`` (0/1), AUC in the legend."""
    fig = new_figure(SIZE)
    ax = fig.add_subplot()
    for label, p in scores.items():
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, lw=2, label=f"{label} (AUC {roc_auc_score(y, p):.3f})")
    ax.plot([0, 1], [0, 1], ls=":", c="grey", lw=1, label="chance (AUC 0.5)")
    ax.set(xlim=(0, 1), ylim=(0, 1))
    style(ax, f"{title} (n={len(y):,})", "false positive rate", "true positive rate")
    ax.legend(loc="lower right", fontsize=FONT["legend"])
    return to_png(fig)


def calibration_curves(y: np.ndarray, scores: Mapping[str, np.ndarray], title: str, bins: int = 10) -> bytes:
    """Reliability diagram (quantile bins): mean predicted probability vs observed late share."""
    fig = new_figure(SIZE)
    ax = fig.add_subplot()
    for label, p in scores.items():
        frac, mean = calibration_curve(y, p, n_bins=bins, strategy="quantile")
        ax.plot(mean, frac, marker="o", ms=5, lw=2, label=label)
    ax.plot([0, 1], [0, 1], ls=":", c="grey", lw=1, label="perfect calibration")
    ax.set(xlim=(0, 1), ylim=(0, 1))
    style(ax, f"{title} ({bins} quantile bins)", "mean predicted P(late)", "observed late share")
    ax.legend(loc="upper left", fontsize=FONT["legend"])
    return to_png(fig)


def feature_importance(booster: lgb.Booster, top: int = 20) -> bytes:
    """Horizontal bars of the ``top`` features by total gain (LightGBM ``importance_type="gain"``)."""
    gain = booster.feature_importance(importance_type="gain")
    names = np.array(booster.feature_name())
    order = np.argsort(gain)[::-1][:top][::-1]
    fig = new_figure((SIZE[0], 0.3 * len(order) + 1.4))
    ax = fig.add_subplot()
    ax.barh(names[order], gain[order] / max(gain.sum(), 1e-12), color="#3b6ea5")
    style(ax, f"Feature importance (top {len(order)} of {len(names)}, by gain)", "share of total gain")
    ax.tick_params(axis="y", labelsize=FONT["bar_label"])
    ax.grid(False, axis="y")
    return to_png(fig)


def psi_bars(report: pl.DataFrame, moderate: float, significant: float, title: str, top: int = 25) -> bytes:
    """PSI of the ``top`` columns with the highest PSI (``report`` of :func:`lakehouse.ml.drift.drift_report`; every
    column is in the drift asset's ``drift`` metadata table), coloured by status, with the threshold lines; columns
    not monitored are hatched."""
    rows = report.sort("psi", descending=True).head(top).reverse()
    fig = new_figure((SIZE[0], 0.3 * rows.height + 1.6))
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
    style(ax, f"{title}\ntop {rows.height} of {report.height} columns", "PSI (log scale; hatched: not monitored)")
    ax.tick_params(axis="y", labelsize=FONT["bar_label"])
    ax.grid(False, axis="y")
    ax.legend(loc="lower right", fontsize=FONT["legend"])
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
            ms=5,
            lw=2,
            label=c,
        )
    ax.axhline(significant, ls="--", c=STATUS_COLOURS["significant"], lw=1, label=f"significant ({significant})")
    ax.set_yscale("log")
    ax.set_xticks(
        range(evaluations.height),
        [f"{m}\nv{v}" for m, v in evaluations.select("current_month", "champion_version").iter_rows()],
    )
    style(ax, title, "evaluation (newest month, champion version)", "PSI (log scale)")
    ax.legend(fontsize=FONT["bar_label"], loc="best")
    return to_png(fig)
