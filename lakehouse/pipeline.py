"""The whole medallion in-process, in four steps: what ``lakehouse run``, the tests and the scripts execute.

A single Dagster run cannot hold both the unpartitioned assets and a range of monthly partitions whose extent is
only known once the step before has written, so the graph runs as four jobs against one instance (the same jobs
the sensors request, :data:`STEPS`):

1. **ingest**: bronze and silver (with their checks), for whatever has landed;
2. **gold_months**: the stale months of the gold tables (:func:`lakehouse.gold.sensors.stale`), one single-run
   backfill per contiguous range; nothing when no month is stale;
3. **ml**: the model (challenger, gate) and the champion;
4. **scoring**: predictions and drift of the months to score (:func:`lakehouse.ml.sensors.to_score`: new or
   rewritten months, the newest month after a change of champion), one single-run backfill per range.

A step that fails stops the ones after it. With ``selection``, each step runs the part of the selection in its
layers only.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from lakehouse.gold.months import contiguous
from lakehouse.gold.sensors import stale
from lakehouse.ml.assets import CHAMPION_KEY, MODEL_KEY, PREDICTIONS_KEY
from lakehouse.ml.monitoring import DRIFT_KEY
from lakehouse.ml.sensors import to_score
from lakehouse.partitions import MONTHS_TAG, range_tags
from lakehouse.resources import ModelRegistry
from lakehouse.tables import Lake

STEPS: tuple[tuple[str, dg.AssetSelection, str], ...] = (
    ("ingest", dg.AssetSelection.groups("bronze", "silver"), "Landing -> bronze -> silver, for whatever has landed."),
    (
        "gold_months",
        dg.AssetSelection.groups("gold"),
        "The gold feature view and route aggregate of the months chosen in the Launchpad (partitioned).",
    ),
    ("ml", dg.AssetSelection.assets(MODEL_KEY, CHAMPION_KEY), "Model (challenger and gate) and champion."),
    (
        "scoring",
        dg.AssetSelection.assets(PREDICTIONS_KEY, DRIFT_KEY),
        "The champion's predictions and drift of the months chosen in the Launchpad (partitioned).",
    ),
)
"""``(job name, selection, description)`` of each step, in order; :mod:`lakehouse.definitions` makes the jobs."""


def step_ranges(step: str, lake: Lake, registry: ModelRegistry) -> list[dict[str, str]]:
    """The runs of ``step`` for the lake's current state: one ``{}`` (unpartitioned), or the partition range tags
    of each contiguous range of months to (re)build (gold) or (re)score (scoring); none when there are none."""
    if step == "gold_months":
        return [range_tags(first, last) for first, last in contiguous(stale(lake))]
    if step == "scoring":
        return [range_tags(first, last) for first, last in contiguous(to_score(lake, registry)[0])]
    return [{}]


@dataclass
class MedallionResult:
    """The runs of one :func:`materialize_medallion`, with the accessors of ``ExecuteInProcessResult`` the callers
    use, over all of them."""

    results: list[dg.ExecuteInProcessResult] = field(default_factory=list)
    months: list[str] = field(default_factory=list)  # gold ranges built (``2013-01..2013-06``)
    scored: list[str] = field(default_factory=list)  # ranges of months scored (predictions and drift)

    @property
    def success(self) -> bool:
        return all(r.success for r in self.results)

    @property
    def run_ids(self) -> list[str]:
        return [r.run_id for r in self.results]

    @property
    def run_id(self) -> str:
        """The id of the last run (the only one when the selection lies in one step)."""
        return self.results[-1].run_id

    def _each(self, method: str, *args: Any) -> Iterator[Any]:
        for r in self.results:
            yield from getattr(r, method)(*args)

    def get_asset_materialization_events(self) -> list[dg.DagsterEvent]:
        return list(self._each("get_asset_materialization_events"))

    def get_step_failure_events(self) -> list[dg.DagsterEvent]:
        return list(self._each("get_step_failure_events"))

    def get_asset_check_evaluations(self) -> list[dg.AssetCheckEvaluation]:
        return list(self._each("get_asset_check_evaluations"))

    def asset_materializations_for_node(self, node_name: str) -> list[dg.AssetMaterialization]:
        out: list[dg.AssetMaterialization] = []
        for r in self.results:
            if any(node.name == node_name for node in r.job_def.nodes_in_topological_order):
                out.extend(r.asset_materializations_for_node(node_name))
        return out

    @property
    def all_events(self) -> list[dg.DagsterEvent]:
        return [e for r in self.results for e in r.all_events]


def materialize_medallion(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    lake: Lake,
    *,
    selection: Any = None,
    run_config: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    raise_on_error: bool = False,
    watch: Callable[[dg.JobDefinition, str], AbstractContextManager[None]] | None = None,
) -> MedallionResult:
    """Execute the jobs ``ingest``, ``gold_months`` (per range of stale months), ``ml`` and ``scoring`` (per range
    of months to score) of ``defs`` in-process on ``instance`` (module docstring).

    Args:
        lake: the lake the resources of ``defs`` write (asked which gold months are stale after ingestion).
        selection: an asset selection (anything ``dg.AssetSelection.from_coercible`` accepts); default all.
        run_config: run config; each job gets the ``ops`` entries of its own assets (and the rest, e.g. loggers).
        watch: entered around each run with the job and the run's id, known before it starts (the CLI's progress
            lines subscribe to the run's events with it).

    Returns:
        The runs executed; ``months`` names the gold ranges materialized (``2013-01..2013-06``), ``scored`` the
        ranges of months scored.
    """
    graph = defs.resolve_asset_graph()
    wanted = dg.AssetSelection.all() if selection is None else dg.AssetSelection.from_coercible(selection)
    registry = (defs.resources or {})["registry"]
    out = MedallionResult()
    for job_name, step_selection, _ in STEPS:
        keys = (wanted & step_selection).resolve(graph)
        if not keys:
            continue
        config = dict(run_config or {})
        if "ops" in config:
            names = {defs.resolve_assets_def(k).node_def.name for k in keys}
            config["ops"] = {k: v for k, v in config["ops"].items() if k in names}
        ranges = step_ranges(job_name, lake, registry)
        job = defs.resolve_job_def(job_name)
        for extra in ranges:
            run_id = str(uuid.uuid4())
            with watch(job, run_id) if watch is not None else nullcontext():
                result = job.execute_in_process(
                    instance=instance,
                    run_config=config,
                    tags={**(tags or {}), **extra},
                    raise_on_error=raise_on_error,
                    asset_selection=sorted(keys, key=lambda k: k.to_user_string()),
                    run_id=run_id,
                )
            out.results.append(result)
            if extra:
                (out.months if job_name == "gold_months" else out.scored).append(extra[MONTHS_TAG])
            if not result.success:
                return out
    return out
