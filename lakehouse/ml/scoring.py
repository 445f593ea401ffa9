"""Which months the champion must (re)score, read from the Delta logs alone.

``gold/flight_delay_predictions`` and the drift evaluations of ``ml/feature_drift`` are monthly partitions like
the feature view they read. A predictions month is written by one replace-where commit recording the feature
view's Delta version it read and the champion version that scored it (:meth:`lakehouse.tables.Lake.
replace_partition`, inputs :data:`FEATURES_INPUT` and :data:`CHAMPION_INPUT`). A month is **to score** when

* the feature view has the month and the predictions do not (a new month, or the first champion);
* the feature view's month was rewritten after the predictions read it (a correction, a late file);
* it is the **newest** month of the feature view and another champion scored it: a new champion re-scores the
  newest month only. Older months keep the scores of the champion of their time (``model_version`` says which),
  so a promotion costs one month, not the lake; any month can be re-scored from the UI.

Like :mod:`lakehouse.gold.months`, the answer survives killed runs and sensor cursor resets: it comes from the
lake. The scoring sensor and ``lakehouse run`` both ask it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from lakehouse.tables import FLIGHT_FEATURES, PREDICTIONS, Lake

FEATURES_INPUT = FLIGHT_FEATURES.path
CHAMPION_INPUT = "ml/champion"  # the champion's registered model version, recorded with each predictions month


def scoring_months(lake: Lake, champion_version: int | None, months: Iterable[date]) -> list[date]:
    """The months (among ``months``, the partitions the definition has) to (re)score, oldest first (module
    docstring); none without a champion or a feature view.

    Args:
        champion_version: the registered model version behind the ``champion`` alias (None: no champion yet).
        months: first days of the months of the partitions definition.
    """
    if champion_version is None:
        return []
    features = lake.partition_commits(FLIGHT_FEATURES)
    if not features:
        return []
    scored = lake.partitions_built(PREDICTIONS)
    newest = max(features)
    out = []
    for month in set(months) & features.keys():
        written, _ = features[month]
        inputs = scored.get(month)
        if (
            inputs is None
            or inputs.get(FEATURES_INPUT, -1) < written
            or (month == newest and inputs.get(CHAMPION_INPUT) != champion_version)
        ):
            out.append(month)
    return sorted(out)
