"""Training on a Dask cluster with ``lightgbm.dask`` (LightGBM's own distributed, data-parallel training), selected by
the environment; the in-process :func:`lakehouse.ml.training.train` stays the default.

| ``LAKEHOUSE_TRAINING`` | training |
|---|---|
| unset or ``local`` | :func:`lakehouse.ml.training.train` in the step's process (early stopping, validation month) |
| ``dask`` | :func:`train_on_dask` on the Dask scheduler ``LAKEHOUSE_DASK_SCHEDULER`` (``tcp://host:port``) |

How it differs from the local training (read in ``lightgbm/dask.py``, LightGBM 4.7):

* **No early stopping.** Each worker trains on its own chunks and its own share of an ``eval_set`` (LightGBM warns
  when a worker got none, and callbacks are "not tested" with Dask), so the number of rounds is given:
  ``num_boost_round``, e.g. the best iteration of a previous local training on a sample, or a fixed budget.
* The rows are split into one chunk per worker (``chunks``) and scattered; LightGBM opens its own TCP ports between
  the workers (``local_listen_port``/machines are found by ``lightgbm.dask``), so the workers must reach each
  other on arbitrary ports.
* The result is the same :class:`~lakehouse.ml.training.TrainedModel` (a plain ``lgb.Booster``, ``.booster_`` of the
  fitted estimator), so logging and serving do not change.

The model asset (``lakehouse/ml/assets.py``) trains with :func:`train_from_env` and records the mode in the MLflow
param ``training``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from lakehouse.ml import training

TRAINING_VARIABLE = "LAKEHOUSE_TRAINING"
SCHEDULER_VARIABLE = "LAKEHOUSE_DASK_SCHEDULER"
SUPPORTED = ("local", "dask")


class TrainingConfigError(ValueError):
    """``LAKEHOUSE_TRAINING`` names no supported training, or ``dask`` lacks its scheduler address."""


def train_on_dask(
    split: training.Split,
    client: Any,
    num_boost_round: int,
    params: dict | None = None,
    seed: int = 42,
) -> training.TrainedModel:
    """Train LightGBM on ``split.train`` with ``lightgbm.dask`` on the cluster of ``client`` (a
    ``distributed.Client``), ``num_boost_round`` rounds, no early stopping (module docstring).

    Inputs are those of :func:`lakehouse.ml.training.train`: the same encoding (fitted on ``split.train``), the same
    float64 design matrix, the same categorical features, :data:`~lakehouse.ml.training.DEFAULT_PARAMS` updated
    with ``params`` and ``seed``, except ``num_threads``: each worker trains with its Dask thread count
    (``lightgbm/dask.py`` overrides it). The training matrix travels in the task graph (dask warns above ~10 MiB).

    Returns:
        The model, ``best_iteration`` = ``num_boost_round``.

    Raises:
        ValueError: ``split.train`` is empty or ``num_boost_round`` < 1.
    """
    import dask.array as da
    from lightgbm.dask import DaskLGBMClassifier

    if split.train.is_empty() or num_boost_round < 1:
        raise ValueError(f"need training rows and at least one round, got {split.train.height} rows, {num_boost_round}")
    encoding = training.fit_encoding(split.train)
    matrix = training.training_matrix(split.train, encoding)
    label = split.train.get_column(training.LABEL).to_numpy().astype(np.float64)
    workers = max(len(client.scheduler_info(n_workers=-1)["workers"]), 1)
    rows = -(-matrix.shape[0] // workers)  # one chunk per worker
    X = da.from_array(matrix, chunks=(rows, matrix.shape[1]))
    y = da.from_array(label, chunks=(rows,))
    merged = {**training.DEFAULT_PARAMS, **(params or {}), "seed": seed}
    # lightgbm.dask sets num_threads to each worker's Dask thread count (and warns that a given one is ignored)
    merged.pop("num_threads", None)
    model = DaskLGBMClassifier(client=client, n_estimators=num_boost_round, **merged)
    model.fit(X, y, feature_name=training.FEATURES, categorical_feature=training.CATEGORICAL)
    booster = model.booster_
    return training.TrainedModel(booster=booster, encoding=encoding, params=merged, best_iteration=num_boost_round)


def train_from_env(
    split: training.Split,
    num_boost_round: int = training.NUM_BOOST_ROUND,
    params: dict | None = None,
    seed: int = 42,
    early_stopping_rounds: int = training.EARLY_STOPPING_ROUNDS,
    environ: Mapping[str, str] | None = None,
) -> training.TrainedModel:
    """Train as ``LAKEHOUSE_TRAINING`` says (module docstring): locally with early stopping (``num_boost_round`` is
    the upper bound), or on Dask for exactly ``num_boost_round`` rounds.

    Raises:
        TrainingConfigError: an unsupported ``LAKEHOUSE_TRAINING``, or ``dask`` without ``LAKEHOUSE_DASK_SCHEDULER``
            (a one-line message naming the variable).
    """
    env = os.environ if environ is None else environ
    mode = env.get(TRAINING_VARIABLE, "").strip() or "local"
    if mode == "local":
        return training.train(split, params, seed, num_boost_round, early_stopping_rounds)
    if mode != "dask":
        raise TrainingConfigError(f"{TRAINING_VARIABLE}={mode!r} is not supported: use one of {', '.join(SUPPORTED)}")
    address = env.get(SCHEDULER_VARIABLE, "").strip()
    if not address.startswith(("tcp://", "tls://")):
        raise TrainingConfigError(f"{TRAINING_VARIABLE}=dask needs {SCHEDULER_VARIABLE}=tcp://<host>:<port>")
    from distributed import Client

    with Client(address) as client:
        return train_on_dask(split, client, num_boost_round, params, seed)
