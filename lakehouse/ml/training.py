"""Model training and evaluation as plain functions: time-based split, encoding, LightGBM, metrics.

Task: binary classification of ``is_late`` (see :mod:`lakehouse.gold.features`) from the gold feature view.

Split: by calendar month of ``flight_date``, never at random: the newest month is the **test** set, the month
before it the **validation** set (early stopping), everything earlier the **training** set. On the full year
that is train January–October, validate November, test December.

Class imbalance (about 1 flight in 4 is late): handled deliberately by *not* re-weighting. The batch
predictions are used as probabilities, and re-weighting (``is_unbalance``/``scale_pos_weight``) shifts them
away from the observed frequencies while leaving the ranking (ROC-AUC) nearly unchanged. We report the base
rate next to PR-AUC so the imbalance is visible, and calibration (Brier score, expected calibration error)
so a miscalibration would be too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import polars as pl
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from lakehouse.gold.features import ROTATION_COLUMNS, WEATHER_COLUMNS

LABEL = "is_late"
CATEGORICAL = ["carrier", "origin", "dest"]
# The feature groups (scripts/ablation.py measures what each adds, in the README's order):
# schedule facts of the flight
SCHEDULE = [*CATEGORICAL, "month", "weekday", "sched_hour", "distance"]
# origin weather, the latest hourly row complete before the scheduled departure
WEATHER = list(WEATHER_COLUMNS)
# the aircraft (FAA registry)
PLANE = ["plane_age", "seats", "engines"]
# late rates over outcomes of other flights known before the scheduled departure: 7 and 28 days by carrier and
# route, 28 days by flight number, the last 12 hours
ROLLING_RATES = [
    "carrier_late_rate_7d",
    "carrier_flights_7d",
    "carrier_late_rate_28d",
    "carrier_flights_28d",
    "route_late_rate_7d",
    "route_flights_7d",
    "route_late_rate_28d",
    "route_flights_28d",
]
FLIGHT_NUMBER_RATES = ["flight_late_rate_28d", "flight_flights_28d"]
SAME_DAY_RATES = [
    "carrier_late_rate_12h",
    "carrier_flights_12h",
    "route_late_rate_12h",
    "route_flights_12h",
    "origin_late_rate_12h",
    "origin_flights_12h",
]
# same-day state: other flights' departures before the scheduled departure (the flight itself excluded) ...
CONGESTION = ["origin_departed_2h", "origin_mean_dep_delay_2h", "carrier_departed_2h", "carrier_mean_dep_delay_2h"]
# ... at the destination too, flights still waiting at the origin, flights scheduled within the hour
FLOW = [
    "dest_departed_2h",
    "dest_mean_dep_delay_2h",
    "origin_scheduled_3h",
    "origin_waiting_3h",
    "carrier_scheduled_3h",
    "carrier_waiting_3h",
    "origin_waited_min_3h",
    "carrier_waited_min_3h",
    "origin_scheduled_pm1h",
]
# aircraft rotation: the tail's previous NYC departure, as known at the scheduled departure
ROTATION = list(ROTATION_COLUMNS)
NUMERIC = [
    *SCHEDULE[len(CATEGORICAL) :],
    *WEATHER,
    *PLANE,
    *ROLLING_RATES,
    *FLIGHT_NUMBER_RATES,
    *SAME_DAY_RATES,
    *CONGESTION,
    *FLOW,
    *ROTATION,
]
FEATURES = CATEGORICAL + NUMERIC

# learning_rate 0.1 rather than 0.05: measured on the real data (train Jan-Oct, valid Nov, test Dec) with the
# earlier feature set (which let the flight count itself in its congestion features, since fixed): early stopping
# ended at iteration 67 instead of 119, training took 3.2 s instead of 5.3 s on 2 cores, and the test ROC-AUC was
# within one standard error (~0.003) of 0.05's. Not re-measured on the current features.
DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.1,
    "num_leaves": 63,
    "min_data_in_leaf": 200,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "cat_smooth": 10.0,
    "num_threads": 2,
    "deterministic": True,
    "force_row_wise": True,
    "verbosity": -1,
}
NUM_BOOST_ROUND = 2000
EARLY_STOPPING_ROUNDS = 50
CALIBRATION_BINS = 10
_YM = pl.col("flight_date").dt.strftime("%Y-%m")


@dataclass(frozen=True)
class Split:
    train: pl.DataFrame
    valid: pl.DataFrame
    test: pl.DataFrame
    train_months: list[str]
    valid_month: str
    test_month: str


@dataclass
class TrainedModel:
    booster: lgb.Booster
    encoding: dict[str, list[str]]
    params: dict
    best_iteration: int
    metrics: dict[str, float] = field(default_factory=dict)


def window_months(months: list[str], train_window_months: int) -> list[str]:
    """The months (``YYYY-MM``, sorted) a training reads: the newest ``train_window_months`` training months plus
    the validation and test months (the two newest), or every month when ``train_window_months`` is 0.

    The cost of a training then grows with the window, not with the lake (issue: a month costs a month).

    Raises:
        ValueError: a negative window.
    """
    if train_window_months < 0:
        raise ValueError(f"train_window_months must be 0 (every month) or positive, got {train_window_months}")
    ordered = sorted(months)
    return ordered if train_window_months == 0 else ordered[-(train_window_months + 2) :]


def time_split(features: pl.DataFrame) -> Split:
    """Split the feature view by month (see module docstring).

    Raises:
        ValueError: fewer than three months of labelled flights.
    """
    months = features.select(_YM.unique().sort()).to_series().to_list()
    if len(months) < 3:
        raise ValueError(f"a time-based split needs at least 3 months of flights, got {months}")
    return split_by_months(features, months[:-2], months[-2], months[-1])


def split_by_months(features: pl.DataFrame, train_months: list[str], valid_month: str, test_month: str) -> Split:
    """The split with explicitly named months (``YYYY-MM``), e.g. the ones a past training run recorded."""
    tagged = features.with_columns(_YM.alias("_ym"))
    return Split(
        train=tagged.filter(pl.col("_ym").is_in(train_months)).drop("_ym"),
        valid=tagged.filter(pl.col("_ym") == valid_month).drop("_ym"),
        test=tagged.filter(pl.col("_ym") == test_month).drop("_ym"),
        train_months=list(train_months),
        valid_month=valid_month,
        test_month=test_month,
    )


def fit_encoding(train: pl.DataFrame) -> dict[str, list[str]]:
    """Fixed category -> integer code mapping from the training set (sorted, so reproducible)."""
    return {c: train.get_column(c).drop_nulls().unique().sort().to_list() for c in CATEGORICAL}


def design_matrix(frame: pl.DataFrame, encoding: dict[str, list[str]]) -> pl.DataFrame:
    """Model inputs: :data:`FEATURES` with categoricals as Int32 codes (unseen category -> null).

    LightGBM 4.7 aborts the process on String/Categorical/Date Arrow columns (docs/stack-notes.md, "LightGBM"), so
    every column handed to it is numeric.
    """
    codes = [
        pl.col(c).replace_strict(values, list(range(len(values))), default=None, return_dtype=pl.Int32).alias(c)
        for c, values in encoding.items()
    ]
    return frame.select(*codes, *[pl.col(c).cast(pl.Float64) for c in NUMERIC])


def train(
    split: Split,
    params: dict | None = None,
    seed: int = 42,
    num_boost_round: int = NUM_BOOST_ROUND,
    early_stopping_rounds: int = EARLY_STOPPING_ROUNDS,
) -> TrainedModel:
    """Train LightGBM on ``split.train`` with early stopping on ``split.valid`` (binary log loss).

    Deterministic for a given split, ``params`` and ``seed``: ``deterministic=True``, ``force_row_wise=True``
    and a fixed thread count are part of :data:`DEFAULT_PARAMS`, and the caller sorts rows (Delta does not
    guarantee a row order).
    """
    # data_random_seed explicitly: a Dataset built from a lightgbm.Sequence draws its bin-construction sample with
    # Dataset.get_params(), which keeps dataset parameters only and drops ``seed``, so it would sample with
    # data_random_seed's default (1) where a matrix derives it from ``seed`` (docs/stack-notes.md, "LightGBM").
    params = {**DEFAULT_PARAMS, **(params or {}), "seed": seed, "data_random_seed": seed}
    encoding = fit_encoding(split.train)
    train_set = lgb.Dataset(
        MatrixBatches(split.train, encoding),
        label=split.train.get_column(LABEL).to_numpy(),
        feature_name=FEATURES,
        categorical_feature=CATEGORICAL,
        free_raw_data=True,
    )
    valid_set = lgb.Dataset(
        MatrixBatches(split.valid, encoding),
        label=split.valid.get_column(LABEL).to_numpy(),
        feature_name=FEATURES,
        categorical_feature=CATEGORICAL,
        reference=train_set,
    )
    booster = lgb.train(
        {**params, "metric": "binary_logloss"},
        train_set,
        num_boost_round=num_boost_round,
        valid_sets=[valid_set],
        valid_names=["valid"],
        callbacks=[lgb.early_stopping(early_stopping_rounds, verbose=False)],
    )
    return TrainedModel(booster=booster, encoding=encoding, params=params, best_iteration=booster.best_iteration)


def training_matrix(frame: pl.DataFrame, encoding: dict[str, list[str]]) -> np.ndarray:
    """:func:`design_matrix` as a C-contiguous float64 NumPy array (nulls as NaN, LightGBM's missing value).

    Why not hand LightGBM the polars frame (Arrow): measured on this project, LightGBM 4.7's Arrow ingestion is
    not reproducible under CPU contention (1 of 24 identical trainings on a busy 2-core machine gave a different
    model), while the NumPy path gave the same model 36 times out of 36; reproducible retraining needs the latter.
    Row-major (C order) is the layout LightGBM's matrix interface reads directly.
    """
    return np.ascontiguousarray(design_matrix(frame, encoding).to_numpy(), dtype=np.float64)


PREDICT_BATCH_ROWS = 1_000_000


def predict(model_booster: lgb.Booster, frame: pl.DataFrame, encoding: dict[str, list[str]]) -> np.ndarray:
    """Probability of ``is_late`` per row of a feature frame (float64 array), scored :data:`PREDICT_BATCH_ROWS` rows
    at a time so that the float64 matrix of at most one batch exists at once (LightGBM scores each row on its own:
    the result does not depend on the batching)."""
    if frame.height == 0:
        return np.empty(0, dtype=np.float64)
    return np.concatenate(
        [
            np.asarray(model_booster.predict(training_matrix(batch, encoding)), dtype=np.float64)
            for batch in frame.iter_slices(PREDICT_BATCH_ROWS)
        ]
    )


class MatrixBatches(lgb.Sequence):
    """A feature frame's :func:`training_matrix` handed to LightGBM :data:`batch_size` rows at a time
    (``lightgbm.Sequence``), so that building a ``lightgbm.Dataset`` never holds a float64 copy of the whole frame:
    the Dataset keeps only its binned values (one byte or less per value), and the float64 matrix of one batch
    exists at a time.

    LightGBM (4.7, ``basic.py``: ``Dataset.__init_from_seqs``) first reads its bin-construction sample row by row
    (``seq[i]``, indices increasing; the same indices ``LGBM_DatasetCreateFromMat`` draws for a matrix), then every
    row in order by slices (``seq[a:b]``). A row access therefore converts the batch it falls in once and keeps it
    until the next batch is reached. The Dataset built is the one the whole matrix gives (a test compares the
    models).
    """

    batch_size = 65_536

    def __init__(self, frame: pl.DataFrame, encoding: dict[str, list[str]]) -> None:
        self._frame = frame
        self._encoding = encoding
        self._cached: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return self._frame.height

    def __getitem__(self, index: int | slice | list[int]) -> np.ndarray:
        if isinstance(index, list):  # part of the Sequence interface; LightGBM 4.7 does not call it
            return np.stack([self[i] for i in index]) if index else np.empty((0, len(FEATURES)))
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                raise IndexError(f"only contiguous slices are read, got step {step}")
            return training_matrix(self._frame.slice(start, max(stop - start, 0)), self._encoding)
        if not -len(self) <= index < len(self):
            raise IndexError(f"row {index} of {len(self)}")
        batch, offset = divmod(index % len(self), self.batch_size)
        if self._cached is None or self._cached[0] != batch:
            self._cached = (batch, self[batch * self.batch_size : (batch + 1) * self.batch_size])
        return self._cached[1][offset]


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """ECE with equal-width bins: sum over bins of |mean(y) - mean(p)| weighted by bin share.

    Source: Naeini, Cooper & Hauskrecht (2015), "Obtaining Well Calibrated Probabilities Using Bayesian
    Binning"; Guo et al. (2017), "On Calibration of Modern Neural Networks", eq. 3.
    """
    idx = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = idx == b
        if mask.any():
            total += mask.mean() * abs(y[mask].mean() - p[mask].mean())
    return float(total)


def evaluate(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Binary metrics: ``roc_auc, pr_auc`` (average precision), ``log_loss, brier, ece, base_rate, n``."""
    y = np.asarray(y, dtype=float)
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p),
        "base_rate": float(y.mean()),
        "n": float(len(y)),
    }


def auc_standard_error(auc: float, n_positive: int, n_negative: int) -> float:
    """Standard error of a ROC-AUC estimate (Hanley & McNeil 1982, "The meaning and use of the area under a
    receiver operating characteristic (ROC) curve", Radiology 143:29-36, eq. 1)."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_positive - 1) * (q1 - auc * auc) + (n_negative - 1) * (q2 - auc * auc)) / max(
        n_positive * n_negative, 1
    )
    return float(np.sqrt(max(var, 0.0)))


PROMOTION_METRIC = "roc_auc"
MAX_ROC_AUC_DROP = 0.005


@dataclass(frozen=True)
class PromotionDecision:
    """Outcome of champion/challenger: ``outcome`` is ``first_champion``, ``promoted`` or ``refused``."""

    promote: bool
    outcome: str
    metric: str
    challenger_score: float
    champion_score: float | None
    max_drop: float

    @property
    def difference(self) -> float | None:
        """Challenger minus champion score (positive = challenger better), None without a champion."""
        return None if self.champion_score is None else self.challenger_score - self.champion_score

    def describe(self) -> str:
        if self.champion_score is None:
            return f"no champion yet: the challenger becomes champion ({self.metric} {self.challenger_score:.4f})"
        verb = "promoted" if self.promote else "refused"
        return (
            f"{verb}: challenger {self.metric} {self.challenger_score:.4f} vs champion {self.champion_score:.4f} "
            f"(difference {self.difference:+.4f}, allowed drop {self.max_drop})"
        )


def decide_promotion(
    challenger_score: float, champion_score: float | None, max_drop: float = MAX_ROC_AUC_DROP
) -> PromotionDecision:
    """Champion/challenger rule on one holdout scored by both models: promote when the challenger is **not
    worse**, i.e. ``challenger >= champion - max_drop`` (ROC-AUC, higher is better); the first model is
    promoted because there is nothing to compare with.

    Why ``max_drop = 0.005``: on a month of real flights (~27,000, ~30 % late) the standard error of ROC-AUC
    is about 0.003 (:func:`auc_standard_error`, Hanley & McNeil 1982), so differences below 0.005 are
    sampling noise, and a retrained model that saw more recent data should not be refused for noise; a larger
    drop is a real regression. Both models score the *same* flights, so this is a paired comparison.
    """
    if champion_score is None:
        return PromotionDecision(True, "first_champion", PROMOTION_METRIC, challenger_score, None, max_drop)
    promote = challenger_score >= champion_score - max_drop
    return PromotionDecision(
        promote, "promoted" if promote else "refused", PROMOTION_METRIC, challenger_score, champion_score, max_drop
    )
