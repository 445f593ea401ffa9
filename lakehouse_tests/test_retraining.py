"""Models that keep themselves fresh, played on real data with the Python API.

The story (one module-scoped fixture, in a temporary lake, sqlite MLflow store and Dagster instance):
land January-June (days 1-3 of each month), materialize everything -> a champion exists; land July and let
bronze -> gold -> drift follow (as the landing sensor and declarative automation would); the retraining sensor
asks for retraining with a reason; the requested run trains a challenger, scores it and the champion on the same
holdout (July), the blocking gate admits or refuses it, and only ``ml/champion`` moves the alias; the scoring
sensor then asks for July's predictions and drift (the newest month) with the new champion, and nothing else.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg
import mlflow
import numpy as np
import polars as pl
import pytest
from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange
from deltalake import DeltaTable
from mlflow.tracking import MlflowClient

from lakehouse import storage
from lakehouse.automation import MODEL_FRESHNESS
from lakehouse.definitions import ALL_ASSETS, defs
from lakehouse.landing import land
from lakehouse.ml import training
from lakehouse.ml.assets import CHAMPION_KEY, MODEL_KEY, PREDICTIONS_KEY
from lakehouse.ml.monitoring import DRIFT_KEY, read_drift_history
from lakehouse.ml.registry import CHALLENGER, CHAMPION, RETRAIN_REASON_TAG, decisions, read_features, reproduce
from lakehouse.ml.sensors import (
    RETRAIN_DETAIL_TAG,
    RETRAIN_KEY_TAG,
    RETRAIN_REASONS_TAG,
    SCORING_TARGET,
    evaluate_triggers,
    retraining_sensor,
    scoring_sensor,
)
from lakehouse.pipeline import MedallionResult
from lakehouse.resources import ModelRegistry, RetrainingPolicy, build_resources
from lakehouse.settings import Settings
from lakehouse_tests.helpers import lake, location, materialize_all

pytestmark = pytest.mark.slow

MAX_DAY = 3


MODEL_NAME = ModelRegistry.model_fields["model_name"].default
POLICY = RetrainingPolicy()


def registry_of(settings: Settings, model_name: str = MODEL_NAME) -> ModelRegistry:
    return build_resources(settings, registry=None)["registry"].model_copy(update={"model_name": model_name})


def triggers(
    settings: Settings,
    instance: dg.DagsterInstance,
    now=None,
    policy: RetrainingPolicy = POLICY,
    model_name: str = MODEL_NAME,
):
    return evaluate_triggers(lake(settings), registry_of(settings, model_name), policy, instance, now)


def sensor_tick(
    settings: Settings, instance: dg.DagsterInstance, cursor: str | None = None, model_name: str = MODEL_NAME
):
    resources = {**build_resources(settings), "registry": registry_of(settings, model_name)}
    resources.pop("mlflow")
    return retraining_sensor(dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor))


def scoring_tick(settings: Settings, instance: dg.DagsterInstance):
    resources = {k: v for k, v in build_resources(settings).items() if k in ("storage", "registry")}
    return scoring_sensor(dg.build_sensor_context(instance=instance, resources=resources))


def champion_version(settings: Settings) -> int:
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    return int(MlflowClient().get_model_version_by_alias(MODEL_NAME, CHAMPION).version)


@dataclass
class Story:
    settings: Settings
    instance: dg.DagsterInstance
    first: MedallionResult
    champion_v1: int
    tick_before_july: object
    tick_after_july: dg.SensorResult
    tick_again: object
    drift_only: list
    retrain: MedallionResult
    tick_after_retrain: object
    scoring_after_retrain: object  # the scoring sensor's answer after the retraining run
    scored_after_retrain: MedallionResult  # the scoring step run after it (what the sensor's request does)
    scoring_at_rest: object  # the scoring sensor's answer once that ran
    gold_version_before_july: int
    challenger_after_retrain: int  # the challenger alias right after the retraining run
    decisions_after_retrain: pl.DataFrame


@pytest.fixture(scope="module")
def story(tmp_path_factory):
    settings = Settings.from_env(tmp_path_factory.mktemp("fresh"))
    land(settings.landing_dir, months=range(1, 7), max_day=MAX_DAY)
    with dg.instance_for_test() as instance:
        first = materialize_all(settings, instance)
        v1 = champion_version(settings)
        gold_v = DeltaTable(location(settings, "gold/flight_features")).version()
        before = sensor_tick(settings, instance)

        land(settings.landing_dir, months=[7], max_day=MAX_DAY)
        # what the landing sensor and declarative automation do: bronze -> silver -> gold, then drift and
        # predictions follow gold; the model is never automated, and the champion follows only the model
        follow = materialize_all(
            settings, instance, selection=dg.AssetSelection.all() - dg.AssetSelection.assets(MODEL_KEY, CHAMPION_KEY)
        )
        assert follow.success
        after = sensor_tick(settings, instance)
        again = sensor_tick(settings, instance, cursor=after.cursor)
        drift_only = triggers(settings, instance, policy=RetrainingPolicy(min_new_flights=10**9))

        request = after.run_requests[0]
        retrain = materialize_all(
            settings, instance, selection=request.asset_selection, tags=request.tags, raise_on_error=False
        )
        challenger = MlflowClient().get_model_version_by_alias(MODEL_NAME, CHALLENGER)
        scoring_after = scoring_tick(settings, instance)
        scored = materialize_all(settings, instance, selection=SCORING_TARGET)
        yield Story(
            settings,
            instance,
            first,
            v1,
            before,
            after,
            again,
            drift_only,
            retrain,
            sensor_tick(settings, instance, cursor=after.cursor),
            scoring_after,
            scored,
            scoring_tick(settings, instance),
            gold_v,
            int(challenger.version),
            decisions(lake(settings)),
        )


def test_first_materialization_makes_a_champion(story):
    s = story
    assert s.first.success
    mlflow.set_tracking_uri(s.settings.mlflow_tracking_uri)
    client = MlflowClient()
    assert int(client.get_model_version_by_alias(MODEL_NAME, CHALLENGER).version) >= s.champion_v1
    first = s.decisions_after_retrain.row(0, named=True)
    assert (first["outcome"], first["challenger_version"], first["champion_score"]) == (
        "first_champion",
        s.champion_v1,
        None,
    )
    assert first["holdout_month"] == "2013-06" and first["retrain_reason"] == "manual"
    checks = {e.check_name: e.passed for e in s.first.get_asset_check_evaluations() if e.asset_key == MODEL_KEY}
    assert checks["challenger_not_worse"]
    # nothing new yet: the sensor does not ask for anything
    assert isinstance(s.tick_before_july, dg.SkipReason)


def test_model_and_features_have_freshness_policies():
    graph = defs.resolve_asset_graph()
    policy = graph.get(MODEL_KEY).freshness_policy
    assert policy == MODEL_FRESHNESS
    assert policy.fail_window.to_timedelta() == timedelta(days=45)
    assert policy.warn_window.to_timedelta() == timedelta(days=35)


def test_sensor_asks_for_retraining_with_a_reason_and_never_twice(story):
    s = story
    (request,) = s.tick_after_july.run_requests
    assert request.tags[RETRAIN_REASON_TAG] == "new_labelled_data"
    assert "2013-07" in request.tags[RETRAIN_DETAIL_TAG] and "2013-06" in request.tags[RETRAIN_DETAIL_TAG]
    assert request.tags[RETRAIN_REASONS_TAG].split(",")[0] == "new_labelled_data"
    assert (
        request.run_key
        == request.tags[RETRAIN_KEY_TAG]
        == (f"retrain:new_labelled_data:champion-v{s.champion_v1}:data-through-2013-07-{MAX_DAY:02d}")
    )
    assert set(request.asset_selection) == {MODEL_KEY, CHAMPION_KEY}  # the scoring sensor follows a promotion
    # the same data never launches a second run, whatever the reason
    assert isinstance(s.tick_again, dg.SkipReason) and "already requested" in s.tick_again.skip_message
    # July's weather is far from January-April's: drift alone would have asked too
    assert [t.reason for t in s.drift_only] == ["drift"]
    assert "temp" in s.drift_only[0].detail
    assert s.drift_only[0].occurrence == f"champion-v{s.champion_v1}:data-through-2013-07-{MAX_DAY:02d}"


def test_challenger_is_scored_with_the_champion_on_the_same_holdout_and_the_decision_recorded(story):
    s = story
    mlflow.set_tracking_uri(s.settings.mlflow_tracking_uri)
    client = MlflowClient()
    name = MODEL_NAME
    challenger = client.get_model_version(name, str(s.challenger_after_retrain))
    assert s.challenger_after_retrain == s.champion_v1 + 1
    decision = s.decisions_after_retrain.filter(pl.col("challenger_version") == s.challenger_after_retrain).row(
        0, named=True
    )
    assert decision["holdout_month"] == "2013-07" and decision["retrain_reason"] == "new_labelled_data"
    assert decision["champion_version_before"] == s.champion_v1
    assert 0.5 < decision["challenger_score"] <= 1 and 0.5 < decision["champion_score"] <= 1
    assert decision["difference"] == pytest.approx(decision["challenger_score"] - decision["champion_score"])
    expected = training.decide_promotion(decision["challenger_score"], decision["champion_score"], 0.005)
    assert decision["outcome"] == expected.outcome and decision["promoted"] == expected.promote
    # the gate's verdict, then what ml/champion did with it: it ran (and promoted) only for an admitted challenger
    assert decision["champion_version_after"] == (int(challenger.version) if expected.promote else s.champion_v1)
    assert champion_version(s.settings) == decision["champion_version_after"]
    promoted = {e.asset_key for e in s.retrain.get_asset_materialization_events()} >= {CHAMPION_KEY}
    assert promoted == expected.promote
    if expected.promote:
        assert challenger.tags["lakehouse.promoted_by_dagster_run"] == s.retrain.run_id
    # both scores on the MLflow model version and its run
    assert challenger.tags["lakehouse.decision"] == decision["outcome"]
    assert float(challenger.tags["lakehouse.champion_test_roc_auc"]) == pytest.approx(decision["champion_score"])
    metrics = client.get_run(challenger.run_id).data.metrics
    assert metrics["test_roc_auc"] == pytest.approx(decision["challenger_score"])
    assert metrics["champion_test_roc_auc"] == pytest.approx(decision["champion_score"])
    # and in Dagster: the blocking check's result carries them
    (check,) = [e for e in s.retrain.get_asset_check_evaluations() if e.check_name == "challenger_not_worse"]
    assert check.passed == expected.promote and check.blocking
    assert check.metadata["champion_roc_auc"].value == pytest.approx(decision["champion_score"])
    assert s.retrain.success == expected.promote  # a refused challenger fails the blocking check
    # pictures in MLflow and in the asset metadata
    plots = {a.path for a in client.list_artifacts(challenger.run_id, "plots")}
    assert plots == {"plots/roc_holdout.png", "plots/calibration_holdout.png", "plots/feature_importance.png"}
    meta = s.retrain.asset_materializations_for_node("ml__flight_delay_model")[0].metadata
    assert meta["roc_holdout"].value.startswith("![ROC on holdout](data:image/png;base64,")
    assert meta["retrain_reason"].value == "new_labelled_data"


def test_predictions_come_from_the_champion_of_their_month(story):
    s = story
    promoted = champion_version(s.settings) != s.champion_v1
    predictions = pl.read_delta(location(s.settings, "gold/flight_delay_predictions"))
    by_month = dict(
        predictions.group_by(pl.col("flight_month").dt.strftime("%Y-%m"))
        .agg(pl.col("model_version").unique().sort())
        .iter_rows()
    )
    # January-June were scored by the first champion when it was promoted, July by it when July arrived ...
    assert sorted(by_month) == [f"2013-{m:02d}" for m in range(1, 8)]
    assert all(by_month[f"2013-{m:02d}"] == [s.champion_v1] for m in range(1, 7))
    if promoted:
        # ... and a new champion re-scores the newest month only: the scoring sensor asked for exactly July
        (request,) = s.scoring_after_retrain.run_requests
        assert set(request.asset_selection) == set(SCORING_TARGET)
        assert request.tags["dagster/asset_partition_range_start"] == "2013-07-01"
        assert request.tags["dagster/asset_partition_range_end"] == "2013-07-01"
        assert s.scored_after_retrain.scored == ["2013-07..2013-07"]
        assert by_month["2013-07"] == [champion_version(s.settings)]
    else:  # a refused challenger leaves every month as it was
        assert isinstance(s.scoring_after_retrain, dg.SkipReason)
        assert s.scored_after_retrain.scored == [] and by_month["2013-07"] == [s.champion_v1]
    # July's drift, evaluated by the champion of the time
    history = read_drift_history(lake(s.settings)).filter(pl.col("current_month") == "2013-07")
    assert set(history.get_column("champion_version")) == {s.champion_v1, champion_version(s.settings)}
    # once scored, the sensor asks for nothing; after the retraining nothing holds any more (promoted) or the same
    # data is not retried (refused)
    assert isinstance(s.scoring_at_rest, dg.SkipReason)
    assert isinstance(s.tick_after_retrain, dg.SkipReason)


def test_drift_is_recorded_over_time_with_metadata_and_plots(story):
    s = story
    history = read_drift_history(lake(s.settings)).filter(pl.col("champion_version") == s.champion_v1)
    evaluations = history.select("evaluation_id", "current_month").unique().sort("current_month")
    # one evaluation per month: January-June when the first champion was promoted, July when July arrived
    assert evaluations.get_column("current_month").to_list() == [f"2013-{m:02d}" for m in range(1, 8)]
    july = history.filter(pl.col("current_month") == "2013-07")
    mlflow.set_tracking_uri(s.settings.mlflow_tracking_uri)
    run = MlflowClient().get_run(MlflowClient().get_model_version(MODEL_NAME, str(s.champion_v1)).run_id)
    expected = set(run.data.params["features"].split(",")) | {"is_late", "prediction"}
    assert set(july.get_column("column")) == expected
    assert july.get_column("reference_months").unique().to_list() == ["2013-01,2013-02,2013-03,2013-04"]
    assert july.get_column("reference_features_version").unique().to_list() == [s.gold_version_before_july]
    by = {r["column"]: r for r in july.iter_rows(named=True)}
    assert by["temp"]["status"] == "significant" and by["temp"]["psi"] > 1  # January-April vs July
    assert not by["month"]["monitored"]
    assert by["is_late"]["kind"] == "label" and by["prediction"]["kind"] == "prediction"
    assert (july.get_column("psi") >= 0).all()
    drift_meta = [
        e.materialization.metadata
        for e in s.instance.fetch_materializations(DRIFT_KEY, limit=10).records
        for e in [e.event_log_entry.dagster_event.event_specific_data]
    ]
    assert drift_meta and all(
        m["psi_by_column"].value.startswith("![PSI by column](data:image/png;base64,") for m in drift_meta
    )
    assert any(m["max_psi"].value > 0.25 for m in drift_meta)
    drift_pngs = [a.path for a in MlflowClient().list_artifacts(run.info.run_id, "drift")]
    assert any(p.startswith("drift/psi_by_column_2013-07") for p in drift_pngs)


def test_freshness_and_missing_champion_are_reasons_too(story):
    s = story
    later = datetime.now(UTC)
    assert "freshness" not in [t.reason for t in triggers(s.settings, s.instance, later + timedelta(days=40))]
    stale = triggers(s.settings, s.instance, later + timedelta(days=46))
    assert [t.reason for t in stale][-1] == "freshness" and "fail window 45 days" in stale[-1].detail
    assert stale[-1].run_key.startswith(f"retrain:freshness:champion-v{champion_version(s.settings)}:stale-since-")
    # under `dagster dev` the FreshnessDaemon records the state; a FAIL newer than the last materialization counts
    s.instance._report_runless_asset_event(
        FreshnessStateChange(  # what the daemon does (dagster/_daemon/freshness.py)
            key=MODEL_KEY,
            new_state=FreshnessState.FAIL,
            previous_state=FreshnessState.PASS,
            state_change_timestamp=later.timestamp(),
        )
    )
    (daemon,) = [t for t in triggers(s.settings, s.instance, later) if t.reason == "freshness"]
    assert "FreshnessDaemon state FAIL" in daemon.detail
    (bootstrap,) = triggers(s.settings, s.instance, model_name="never_trained")
    assert bootstrap.reason == "no_champion"
    assert bootstrap.run_key == f"retrain:no_champion:data-through-2013-07-{MAX_DAY:02d}"


def test_sensor_waits_while_a_run_is_in_progress(story):
    s = story
    run = s.instance.add_run(dg.DagsterRun(job_name="busy", status=dg.DagsterRunStatus.STARTED))
    try:
        tick = sensor_tick(s.settings, s.instance, model_name="never_trained")
        assert isinstance(tick, dg.SkipReason) and "in progress" in tick.skip_message
    finally:
        s.instance.delete_run(run.run_id)


def test_retraining_from_the_recorded_versions_reproduces_the_metrics(story):
    s = story
    mlflow.set_tracking_uri(s.settings.mlflow_tracking_uri)
    client = MlflowClient()
    original = client.get_model_version(MODEL_NAME, str(s.champion_v1))
    run = client.get_run(original.run_id)
    recorded = int(run.data.params["gold_flight_features_version"])
    assert recorded == s.gold_version_before_july
    assert DeltaTable(location(s.settings, "gold/flight_features")).version() > recorded  # July was added since
    assert {"seed", "features", "train_months", "silver_flights_version", "code_version"} <= set(run.data.params)

    # Rewrite gold with every label flipped (a different world): retraining must not notice, because it reads
    # the version the run recorded, not the latest one.
    path = location(s.settings, "gold/flight_features")
    latest = pl.read_delta(path)
    storage.overwrite(path, latest.with_columns((1 - pl.col("is_late")).cast(pl.Int8).alias("is_late")))
    try:
        model, metrics = reproduce(lake(s.settings), registry_of(s.settings), original.run_id)
    finally:
        storage.overwrite(path, latest)
    logged = {k: v for k, v in run.data.metrics.items() if k.startswith(("valid_", "test_"))}
    assert logged and {k: metrics[k] for k in logged} == logged  # exactly the same numbers
    assert model.best_iteration == int(run.data.params["best_iteration"])
    holdout = read_features(lake(s.settings), version=recorded)[0].filter(
        pl.col("flight_date").dt.strftime("%Y-%m") == run.data.params["test_month"]
    )
    # the registered pyfunc, on the holdout's gold rows as pandas, scores exactly like the retrained booster
    registered = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/{s.champion_v1}")
    assert np.array_equal(
        training.predict(model.booster, holdout, model.encoding),
        registered.predict(holdout.to_pandas())["probability"].to_numpy(),
    )


def test_a_worse_challenger_is_refused_and_the_alias_and_predictions_stay_untouched(story):
    s = story
    champion_before = champion_version(s.settings)
    predictions_path = location(s.settings, "gold/flight_delay_predictions")
    predictions_before = (DeltaTable(predictions_path).version(), pl.read_delta(predictions_path))
    promotions_before = s.instance.get_latest_materialization_event(CHAMPION_KEY)
    # beat the champion by 1.0 AUC; force: the data may be the champion's own (then nothing would be trained)
    strict = {"ops": {"ml__flight_delay_model": {"config": {"max_roc_auc_drop": -1.0, "force_retrain": True}}}}
    result = dg.materialize(
        ALL_ASSETS,
        selection=[MODEL_KEY, CHAMPION_KEY, PREDICTIONS_KEY, DRIFT_KEY],
        partition_key="2013-07-01",  # the newest month, as the scoring sensor would ask after a promotion
        run_config=strict,
        tags={RETRAIN_REASON_TAG: "drift"},
        resources=build_resources(s.settings),
        instance=s.instance,
        raise_on_error=False,
    )
    assert not result.success  # the blocking check failed ...
    (check,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "challenger_not_worse"]
    assert not check.passed and check.metadata["outcome"].value == "refused"
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert materialized == {MODEL_KEY}  # ... so the promotion, predictions and drift did not run ...
    latest_promotion = s.instance.get_latest_materialization_event(CHAMPION_KEY)
    assert latest_promotion is not None and promotions_before is not None
    assert latest_promotion.run_id == promotions_before.run_id
    assert champion_version(s.settings) == champion_before  # ... the alias stayed ...
    assert DeltaTable(predictions_path).version() == predictions_before[0]  # ... and the predictions too
    assert pl.read_delta(predictions_path).equals(predictions_before[1])
    refused = decisions(lake(s.settings)).row(-1, named=True)
    assert refused["outcome"] == "refused" and not refused["promoted"]
    assert refused["champion_version_after"] == refused["champion_version_before"] == champion_before
    assert refused["retrain_reason"] == "drift" and refused["champion_score"] is not None
    client = MlflowClient()
    challenger = client.get_model_version_by_alias(MODEL_NAME, CHALLENGER)
    assert challenger.tags["lakehouse.decision"] == "refused" and "lakehouse.promoted_at" not in challenger.tags
    assert int(challenger.version) == refused["challenger_version"]
    # materializing ml/champion by hand does not promote a refused challenger either
    again = dg.materialize(
        ALL_ASSETS, selection=[CHAMPION_KEY], resources=build_resources(s.settings), instance=s.instance
    )
    meta = again.asset_materializations_for_node("ml__champion")[0].metadata
    assert meta["action"].value == "kept" and champion_version(s.settings) == champion_before
