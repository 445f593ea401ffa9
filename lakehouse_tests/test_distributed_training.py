"""Training on a Dask cluster (``lightgbm.dask``, :mod:`lakehouse.ml.dask_training`) reaches the single-process test
ROC-AUC within one standard error (is not worse by more than one), on a 2-worker local cluster and four real
months."""

import dagster as dg
import numpy as np
import polars as pl
import pytest
from distributed import Client, LocalCluster

from lakehouse.landing import land
from lakehouse.ml import training
from lakehouse.ml.dask_training import TrainingConfigError, train_from_env, train_on_dask
from lakehouse.ml.registry import read_features
from lakehouse.settings import Settings
from lakehouse.tables import Lake
from lakehouse_tests.helpers import materialize_all

SEEDS = (1, 7, 42)


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> training.Split:
    """Gold features of January-April 2013 (every day): train Jan-Feb, validate March, test April."""
    settings = Settings.from_env(tmp_path_factory.mktemp("dask-training") / "data")
    land(settings.landing_dir, months=[1, 2, 3, 4])
    result = materialize_all(
        settings, dg.DagsterInstance.ephemeral(), selection=dg.AssetSelection.groups("bronze", "silver", "gold")
    )
    assert result.success
    features, _ = read_features(Lake(settings.lake_dir))
    return training.time_split(features)


def holdout_auc(split: training.Split, model: training.TrainedModel) -> float:
    scores = training.predict(model.booster, split.test, model.encoding)
    return training.evaluate(split.test.get_column(training.LABEL).to_numpy(), scores)["roc_auc"]


@pytest.mark.slow
def test_dask_training_reaches_the_single_process_auc_within_one_standard_error(split: training.Split):
    """Per seed, the single-process model (early stopping on March) and a Dask model trained for its best number of
    rounds (lightgbm.dask has no early stopping); compared on the mean over three seeds, since either training alone
    varies with the seed by about one standard error on this month (measured in docs/distributed.md)."""
    y = split.test.get_column(training.LABEL).to_numpy()
    local, distributed = [], []
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1"
        ) as cluster,
        Client(cluster) as client,
    ):
        assert len(client.scheduler_info()["workers"]) == 2
        for seed in SEEDS:
            reference = training.train(split, seed=seed)
            local.append(holdout_auc(split, reference))
            model = train_on_dask(split, client, num_boost_round=max(reference.best_iteration, 1), seed=seed)
            assert model.booster.num_trees() == max(reference.best_iteration, 1)
            assert model.booster.feature_name() == training.FEATURES
            distributed.append(holdout_auc(split, model))
    reference_auc = float(np.mean(local))
    se = training.auc_standard_error(reference_auc, int(y.sum()), int((1 - y).sum()))
    # "reaches": not worse than the single-process AUC by more than one standard error (better is fine: CI once
    # measured the Dask mean 0.7665 against 0.7632, se 0.0033)
    assert float(np.mean(distributed)) >= reference_auc - se, (local, distributed, se)
    assert all(0.5 < auc < 1 for auc in distributed)


def test_local_is_the_default_and_other_values_are_refused():
    tiny = training.Split(pl.DataFrame(), pl.DataFrame(), pl.DataFrame(), [], "", "")
    with pytest.raises(TrainingConfigError, match="LAKEHOUSE_TRAINING='spark' is not supported"):
        train_from_env(tiny, environ={"LAKEHOUSE_TRAINING": "spark"})
    with pytest.raises(TrainingConfigError, match="LAKEHOUSE_DASK_SCHEDULER"):
        train_from_env(tiny, environ={"LAKEHOUSE_TRAINING": "dask"})
