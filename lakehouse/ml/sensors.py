"""When to retrain: the ``retraining_sensor`` and the rules it applies.

The model asset (``ml/flight_delay_model``) has no automation condition of its own: this sensor decides. Each
tick (every 60 s, RUNNING by default) it reads the champion's training record from MLflow, the gold feature view,
the latest drift evaluation (``ml/feature_drift``) and the model's freshness, and requests one run of
``ml/flight_delay_model`` + ``ml/champion`` (:data:`RETRAIN_TARGET`: train and gate, promote) when one of these
holds (listed by priority; the first that holds is the run's reason). A promotion is then followed by the
``scoring_sensor`` (below), which re-scores the newest month and re-evaluates its drift with the new champion.

=====================  ====================================================================================
reason                 rule
=====================  ====================================================================================
``no_champion``        there is no ``champion`` yet and gold holds the 3 months a time split needs (bootstrap:
                       declarative ``eager()`` never requests a never-materialized asset; docs/stack-notes.md,
                       "Declarative automation").
``new_labelled_data``  a calendar month **after the champion's holdout month** holds at least
                       ``RetrainingPolicy.min_new_flights`` (1,000) labelled flights. The champion's training
                       run saw every month up to its holdout month, so this is the first data it never saw, and
                       a new month is what the time split needs to give the challenger a fresh holdout.
``drift``              the latest drift evaluation **for the current champion**, on a month after its holdout
                       month, has a monitored column (a model feature or the label) with PSI >
                       ``RetrainingPolicy.drift_psi`` (0.25: "significant shift", Siddiqi 2006). It fires with
                       less new data than ``new_labelled_data`` needs (e.g. the first days of a month).
``freshness``          the model asset fails its freshness policy (:data:`~lakehouse.automation.MODEL_FRESHNESS`,
                       45 days): the FreshnessDaemon's latest state is ``FAIL`` (read with
                       ``instance.get_freshness_state_records``, available in OSS), or, where no daemon runs,
                       the last materialization is older than the policy's ``fail_window``.
=====================  ====================================================================================

Each request carries tags ``lakehouse/retrain_reason`` (the reason), ``lakehouse/retrain_reasons`` (all that
held), ``lakehouse/retrain_detail`` (the numbers) and a **run key** ``retrain:<reason>:<occurrence>``, where the
occurrence names the data: ``champion-v<N>:data-through-<newest flight date>`` (for freshness
``champion-v<N>:stale-since-<last materialization>``). ``<N>`` is the version behind the ``champion`` alias, which
only ``ml/champion`` moves, after the gate admitted a challenger: a refused challenger leaves it, so the same
data is not retried. Dagster never launches two runs with one run key of a sensor, and the cursor remembers recent
occurrences, so new data that is also drifted launches one run, not two. A requested run whose data, code and
settings are those of the champion trains nothing (the model step records ``unchanged``); for ``freshness`` that
still refreshes the model asset. The sensor also waits while any run is in progress, so retraining reads settled
tables and never races the automation's writes.

The ``scoring_sensor`` (every 30 s, RUNNING by default) requests the monthly partitions of
``gold/flight_delay_predictions`` and ``ml/feature_drift`` that :func:`lakehouse.ml.scoring.scoring_months` names
(new or rewritten months of the feature view, and the newest month after a change of champion), one single-run
backfill per contiguous range, with a run key naming the range, the feature view's version and the champion
version (one state of the lake is requested once). It too waits while a run is in progress.
"""

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime

import dagster as dg
import polars as pl

from lakehouse.automation import MODEL_FRESHNESS
from lakehouse.gold.months import contiguous
from lakehouse.ml.assets import CHAMPION_KEY, MODEL_KEY, PREDICTIONS_KEY
from lakehouse.ml.monitoring import DRIFT_KEY, read_drift_history
from lakehouse.ml.registry import CHAMPION, RETRAIN_REASON_TAG, get_alias_version
from lakehouse.ml.scoring import scoring_months
from lakehouse.partitions import MONTHS, month_of_key, range_tags
from lakehouse.resources import LakehouseStorage, ModelRegistry, RetrainingPolicy
from lakehouse.tables import FLIGHT_FEATURES, Lake

RETRAIN_REASONS_TAG = "lakehouse/retrain_reasons"
RETRAIN_DETAIL_TAG = "lakehouse/retrain_detail"
RETRAIN_KEY_TAG = "lakehouse/retrain_key"
RETRAIN_TARGET = [MODEL_KEY, CHAMPION_KEY]
SCORING_TARGET = [PREDICTIONS_KEY, DRIFT_KEY]
CURSOR_MEMORY = 50
IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
_YM = pl.col("flight_date").dt.strftime("%Y-%m")


def run_in_progress(instance: dg.DagsterInstance) -> str | None:
    """The id of a queued or running run, None when there is none (both sensors then wait for settled tables)."""
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=IN_PROGRESS), limit=1)
    return runs[0].run_id if runs else None


@dataclass(frozen=True)
class Champion:
    """What the champion's training run recorded (MLflow params), enough to judge whether it is outdated."""

    version: int
    run_id: str
    test_month: str  # its holdout month: the newest month its training run read


@dataclass(frozen=True)
class Trigger:
    """One retraining condition that holds: ``reason`` (see the module docstring), human ``detail`` and the
    ``occurrence`` that identifies this instance of the condition."""

    reason: str
    detail: str
    occurrence: str

    @property
    def run_key(self) -> str:
        return f"retrain:{self.reason}:{self.occurrence}"


def current_champion(registry: ModelRegistry) -> Champion | None:
    """The ``champion`` alias and its training record, without loading the model (None without a champion)."""
    client = registry.client()
    mv = get_alias_version(client, registry.model_name, CHAMPION)
    if mv is None:
        return None
    params = client.get_run(mv.run_id).data.params
    return Champion(version=int(mv.version), run_id=mv.run_id, test_month=params["test_month"])


def labelled_flights_by_month(lake: Lake) -> pl.DataFrame:
    """``month`` (YYYY-MM) and ``labelled`` (flights with a non-null ``is_late``) of the current gold features,
    plus ``data_through`` (newest flight date, Date), one row per month, sorted."""
    return (
        lake.scan(FLIGHT_FEATURES)
        .group_by(_YM.alias("month"))
        .agg(pl.col("is_late").is_not_null().sum().alias("labelled"), pl.col("flight_date").max().alias("data_through"))
        .sort("month")
        .collect()
    )


def model_freshness_failed(instance: dg.DagsterInstance, now: datetime) -> tuple[bool, str, float | None]:
    """Whether ``ml/flight_delay_model`` fails :data:`MODEL_FRESHNESS`; returns ``(failed, detail, last
    materialization timestamp)``. A never-materialized model is not stale (that is ``no_champion``'s case)."""
    event = instance.get_latest_materialization_event(MODEL_KEY)
    if event is None:
        return False, "never materialized", None
    last = event.timestamp
    age = now.timestamp() - last
    fail_after = MODEL_FRESHNESS.fail_window.to_timedelta().total_seconds()
    record = instance.get_freshness_state_records([MODEL_KEY]).get(MODEL_KEY)
    daemon_fail = (
        record is not None
        and record.freshness_state == "FAIL"  # a str Enum
        and record.updated_at.timestamp() >= last
    )
    failed = daemon_fail or age > fail_after
    source = "FreshnessDaemon state FAIL" if daemon_fail else "last materialization age"
    return (
        failed,
        f"model last materialized {age / 86400:.1f} days ago (fail window {fail_after / 86400:.0f} days; {source})",
        last,
    )


def evaluate_triggers(
    lake: Lake,
    registry: ModelRegistry,
    policy: RetrainingPolicy,
    instance: dg.DagsterInstance,
    now: datetime | None = None,
) -> list[Trigger]:
    """Every retraining condition of the module docstring that holds now, in priority order (maybe none)."""
    now = now or datetime.now(UTC)
    if not lake.exists(FLIGHT_FEATURES):
        return []
    months = labelled_flights_by_month(lake)
    if months.is_empty():
        return []
    data_through = str(months.select(pl.col("data_through").max()).item())  # YYYY-MM-DD
    champion = current_champion(registry)
    if champion is None:
        if months.height < 3:
            return []
        return [
            Trigger(
                "no_champion",
                f"no {CHAMPION} yet; gold holds {months.height} months through {data_through}",
                f"data-through-{data_through}",
            )
        ]

    triggers: list[Trigger] = []
    occurrence = f"champion-v{champion.version}:data-through-{data_through}"
    new = months.filter(pl.col("month") > champion.test_month)
    enough = new.filter(pl.col("labelled") >= policy.min_new_flights)
    if not enough.is_empty():
        listing = ", ".join(f"{m}: {n:,}" for m, n in enough.select("month", "labelled").iter_rows())
        triggers.append(
            Trigger(
                "new_labelled_data",
                f"labelled flights after champion v{champion.version}'s holdout month {champion.test_month}: {listing} "
                f"(rule: a new month with >= {policy.min_new_flights:,})",
                occurrence,
            )
        )

    history = read_drift_history(lake).filter(
        (pl.col("model_name") == registry.model_name) & (pl.col("champion_version") == champion.version)
    )
    if not history.is_empty():
        latest = history.filter(pl.col("evaluated_at") == pl.col("evaluated_at").max())
        drifted = latest.filter(
            pl.col("monitored") & (pl.col("psi") > policy.drift_psi) & (pl.col("current_month") > champion.test_month)
        ).sort("psi", descending=True)
        if not drifted.is_empty():
            listing = ", ".join(f"{c} {p:.2f}" for c, p in drifted.select("column", "psi").head(5).iter_rows())
            triggers.append(
                Trigger(
                    "drift",
                    f"PSI > {policy.drift_psi} in {drifted.get_column('current_month')[0]} vs champion "
                    f"v{champion.version}'s training months on {drifted.height} column(s): {listing}",
                    occurrence,
                )
            )

    stale, detail, last = model_freshness_failed(instance, now)
    if stale and last is not None:
        stamp = datetime.fromtimestamp(last, UTC).strftime("%Y%m%dT%H%M%SZ")
        triggers.append(Trigger("freshness", detail, f"champion-v{champion.version}:stale-since-{stamp}"))
    return triggers


def run_request(trigger: Trigger, holding: list[Trigger]) -> dg.RunRequest:
    """The run request for ``trigger`` (``holding``: every trigger that held, for the tags)."""
    return dg.RunRequest(
        run_key=trigger.run_key,
        asset_selection=RETRAIN_TARGET,
        tags={
            RETRAIN_REASON_TAG: trigger.reason,
            RETRAIN_REASONS_TAG: ",".join(t.reason for t in holding),
            RETRAIN_DETAIL_TAG: trigger.detail[:1000],
            RETRAIN_KEY_TAG: trigger.run_key,
        },
    )


@dg.sensor(
    name="retraining_sensor",
    target=RETRAIN_TARGET,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description="Requests retraining of ml/flight_delay_model (with ml/champion) on new "
    "labelled data, drift or a failed freshness policy; the reason is in the run's lakehouse/retrain_reason tag. "
    "See lakehouse/ml/sensors.py.",
)
def retraining_sensor(
    context: dg.SensorEvaluationContext,
    storage: LakehouseStorage,
    registry: ModelRegistry,
    retraining_policy: RetrainingPolicy,
) -> dg.SensorResult | dg.SkipReason:
    seen: list[str] = json.loads(context.cursor) if context.cursor else []
    busy = run_in_progress(context.instance)
    if busy:
        return dg.SkipReason(f"run {busy} is in progress; retraining waits for settled tables")
    triggers = evaluate_triggers(storage.lake, registry, retraining_policy, context.instance)
    if not triggers:
        return dg.SkipReason("no retraining condition holds")
    fresh = [t for t in triggers if t.occurrence not in seen]
    if not fresh:
        reasons = ", ".join(t.reason for t in triggers)
        return dg.SkipReason(f"already requested for {triggers[0].occurrence} ({reasons})")
    trigger = fresh[0]
    context.log.info(f"retraining: {trigger.reason}: {trigger.detail}")
    return dg.SensorResult(
        run_requests=[run_request(trigger, triggers)], cursor=json.dumps([*seen, trigger.occurrence][-CURSOR_MEMORY:])
    )


def champion_version(registry: ModelRegistry) -> int | None:
    """The registered model version behind the ``champion`` alias (None without one)."""
    mv = get_alias_version(registry.client(), registry.model_name, CHAMPION)
    return None if mv is None else int(mv.version)


def to_score(lake: Lake, registry: ModelRegistry) -> tuple[list[date], int | None]:
    """The months of the partitions definition to (re)score now (:func:`lakehouse.ml.scoring.scoring_months`), and
    the champion version that rule was applied with."""
    version = champion_version(registry)
    months = [month_of_key(k) for k in MONTHS.get_partition_keys()]
    return scoring_months(lake, version, months), version


def scoring_requests(lake: Lake, registry: ModelRegistry) -> list[dg.RunRequest]:
    """One run request of :data:`SCORING_TARGET` per contiguous range of months to score."""
    months, version = to_score(lake, registry)
    if not months:
        return []
    features = lake.version(FLIGHT_FEATURES)
    return [
        dg.RunRequest(
            run_key=f"score:{first:%Y-%m}..{last:%Y-%m}:features-v{features}:champion-v{version}",
            asset_selection=SCORING_TARGET,
            tags=range_tags(first, last),
        )
        for first, last in contiguous(months)
    ]


@dg.sensor(
    name="scoring_sensor",
    asset_selection=SCORING_TARGET,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Requests the months of predictions and drift to (re)score: new or rewritten months of the feature "
    "view, and the newest month after a change of champion (lakehouse/ml/scoring.py).",
)
def scoring_sensor(
    context: dg.SensorEvaluationContext, storage: LakehouseStorage, registry: ModelRegistry
) -> dg.SensorResult | dg.SkipReason:
    busy = run_in_progress(context.instance)
    if busy:
        return dg.SkipReason(f"run {busy} is in progress; scoring waits for settled tables")
    requests = scoring_requests(storage.lake, registry)
    if not requests:
        return dg.SkipReason("no month to score (every month of the feature view is scored by the current champion)")
    return dg.SensorResult(run_requests=requests)
