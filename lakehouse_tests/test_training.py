"""Training functions: time-based split, encoding, metrics."""

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score

from lakehouse.ml import training


def months_frame(months: list[int]) -> pl.DataFrame:
    from datetime import date

    return pl.DataFrame({"flight_date": [date(2013, m, 1) for m in months], "is_late": [0] * len(months)})


def test_time_split_is_by_month_never_random():
    split = training.time_split(months_frame([1, 2, 3, 3, 4, 5, 5]))
    assert split.train_months == ["2013-01", "2013-02", "2013-03"]
    assert (split.valid_month, split.test_month) == ("2013-04", "2013-05")
    assert split.train.height == 4 and split.valid.height == 1 and split.test.height == 2
    assert split.train["flight_date"].max() < split.valid["flight_date"].min() <= split.test["flight_date"].min()


def test_time_split_needs_three_months():
    with pytest.raises(ValueError, match="at least 3 months"):
        training.time_split(months_frame([1, 2]))


def test_design_matrix_is_numeric_with_unseen_categories_missing():
    frame = pl.DataFrame(
        {c: [1.0, 2.0] for c in training.NUMERIC}
        | {"carrier": ["AA", "ZZ"], "origin": ["EWR", "JFK"], "dest": ["IAH", "IAH"]}
    )
    enc = {"carrier": ["AA", "UA"], "origin": ["EWR", "JFK"], "dest": ["IAH"]}
    X = training.design_matrix(frame, enc)
    assert X.columns == training.FEATURES
    assert all(dt.is_numeric() for dt in X.dtypes)  # LightGBM aborts on String/Categorical columns
    assert X.get_column("carrier").to_list() == [0, None]


def test_evaluate_agrees_with_sklearn_and_ece_detects_miscalibration():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=5000)
    y = (rng.uniform(size=5000) < p).astype(int)
    m = training.evaluate(y, p)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["ece"] < 0.03
    assert training.evaluate(y, p**3)["ece"] > 0.1
