"""Training functions: time-based split, encoding, metrics."""

import lightgbm as lgb
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


def synthetic_features(n: int, seed: int) -> pl.DataFrame:
    """``n`` rows with every model feature (nulls included), a learnable label and a month column."""
    from datetime import date, timedelta

    rng = np.random.default_rng(seed)
    numeric = {c: rng.normal(size=n) for c in training.NUMERIC}
    signal = numeric[training.NUMERIC[0]] + 0.5 * numeric[training.NUMERIC[5]]
    return pl.DataFrame(
        {
            "flight_date": [date(2013, 1, 1) + timedelta(days=int(d)) for d in rng.integers(0, 28, n)],
            **{c: rng.choice(["AA", "B6", "DL", "UA", None], n).tolist() for c in training.CATEGORICAL},
            **numeric,
            training.LABEL: (signal + rng.normal(size=n) > 0.8).astype(np.int8),
        }
    ).with_columns(
        *[pl.when(pl.int_range(pl.len()) % 11 == 0).then(None).otherwise(pl.col(c)).alias(c) for c in training.NUMERIC]
    )


def test_the_dataset_built_by_batches_trains_the_model_of_the_whole_matrix(monkeypatch):
    """Training hands LightGBM the design matrix batch by batch (no float64 copy of the whole frame); the model is
    the one the whole matrix gives, tree for tree. Scaled down (batches of 4,096 rows, a bin-construction sample of
    20,000 rows, where the defaults are 65,536 and 200,000) so that 50,000 rows make the same case: more rows than
    the sample (the sampled rows are read one by one across batches) and several batches."""
    monkeypatch.setattr(training.MatrixBatches, "batch_size", 4_096)
    train_frame, valid_frame = synthetic_features(50_000, 1), synthetic_features(10_000, 2)
    split = training.Split(train_frame, valid_frame, valid_frame, ["2013-01"], "2013-02", "2013-03")
    params = {"num_threads": 1, "bin_construct_sample_cnt": 20_000}
    batched = training.train(split, params=params, num_boost_round=15)

    encoding = training.fit_encoding(train_frame)
    train_set = lgb.Dataset(
        training.training_matrix(train_frame, encoding),
        label=train_frame.get_column(training.LABEL).to_numpy(),
        feature_name=training.FEATURES,
        categorical_feature=training.CATEGORICAL,
    )
    valid_set = lgb.Dataset(
        training.training_matrix(valid_frame, encoding),
        label=valid_frame.get_column(training.LABEL).to_numpy(),
        reference=train_set,
    )
    whole = lgb.train(
        {**batched.params, "metric": "binary_logloss"},
        train_set,
        num_boost_round=15,
        valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(training.EARLY_STOPPING_ROUNDS, verbose=False)],
    )
    assert batched.booster.num_trees() == whole.num_trees() == 15
    assert batched.booster.model_to_string() == whole.model_to_string()


def test_batches_return_the_rows_of_the_whole_matrix():
    frame = synthetic_features(1_000, 3)
    encoding = training.fit_encoding(frame)
    batches = training.MatrixBatches(frame, encoding)
    batches.batch_size = 128
    whole = training.training_matrix(frame, encoding)
    assert len(batches) == 1_000
    assert np.array_equal(batches[10:900], whole[10:900], equal_nan=True)
    for i in (0, 127, 128, 999, -1):
        assert np.array_equal(batches[i], whole[i], equal_nan=True)
    assert np.array_equal(batches[[3, 200, 999]], whole[[3, 200, 999]], equal_nan=True)
    with pytest.raises(IndexError):
        batches[1_000]


def test_prediction_by_batches_equals_one_call(monkeypatch):
    frame = synthetic_features(5_000, 4)
    split = training.Split(frame, frame, frame, ["2013-01"], "2013-02", "2013-03")
    model = training.train(split, params={"num_threads": 1}, num_boost_round=5)
    one_call = model.booster.predict(training.training_matrix(frame, model.encoding))
    monkeypatch.setattr(training, "PREDICT_BATCH_ROWS", 777)
    assert np.array_equal(training.predict(model.booster, frame, model.encoding), one_call)
