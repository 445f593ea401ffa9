"""The whole asset graph on a small real slice, in a temporary lake, MLflow store and Dagster instance."""

import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import mlflow
import numpy as np
import polars as pl
import pytest
from deltalake import DeltaTable
from mlflow.tracking import MlflowClient

from lakehouse.definitions import ALL_ASSETS, build_definitions
from lakehouse.landing import land
from lakehouse.ml.monitoring import reference_sample
from lakehouse.ml.registry import PREDICTION, load_champion, load_drift_reference
from lakehouse.resources import ModelRegistry, build_resources
from lakehouse.settings import Settings
from lakehouse.silver.checks import row_accounting
from lakehouse.sources import SOURCES
from lakehouse.tables import ALL_TABLES, Lake
from lakehouse_tests.helpers import landing_folder, location, materialize_all, read_table, rejected_folder

pytestmark = pytest.mark.slow
MODEL_NAME = ModelRegistry.model_fields["model_name"].default


def rows(settings: Settings, layer: str, table: str) -> pl.DataFrame:
    return read_table(settings, f"{layer}/{table}")


def landed_rows(settings: Settings, source: str) -> int:
    return sum(pl.read_csv(p, infer_schema=False).height for p in landing_folder(settings, source).glob("*.csv"))


@pytest.fixture(scope="module")
def small_lake(tmp_path_factory) -> Iterator[tuple[Settings, dg.DagsterInstance, dg.ExecuteInProcessResult]]:
    """Months 1-3 of 2013, days 1-4 of each, landed and materialized once into a temporary lake.

    Read-only: tests that change the lake work on their own copy (:func:`own_copy`).
    """
    settings = Settings.from_env(tmp_path_factory.mktemp("lake"))
    land(settings.landing_dir, months=[1, 2, 3], max_day=4)
    with dg.instance_for_test() as instance:
        yield settings, instance, materialize_all(settings, instance)


def own_copy(small_lake, tmp_path) -> tuple[Settings, dg.DagsterInstance]:
    """A private copy of the small lake's data folder (landing zone, lake, MLflow store) and a fresh instance."""
    settings, _, _ = small_lake
    source = Path(settings.lake_dir).parent
    shutil.copytree(source, tmp_path / "data")
    return Settings.from_env(tmp_path / "data"), dg.DagsterInstance.ephemeral()


def test_every_landed_row_reaches_bronze_and_silver(small_lake):
    settings, _, result = small_lake
    assert result.success
    for source in ("flights", "weather", "planes", "airports", "airlines"):
        bronze = rows(settings, "bronze", source)
        silver = rows(settings, "silver", source)
        quarantine = rows(settings, "silver", f"{source}_quarantine")
        assert bronze.height == landed_rows(settings, source) > 0
        assert silver.height + quarantine.height == bronze.height, source
        key = {
            "flights": "flight_id",
            "weather": "weather_id",
            "planes": "plane_id",
            "airports": "airport_id",
            "airlines": "airline_id",
        }[source]
        assert silver.get_column(key).n_unique() == silver.height
    assert rows(settings, "silver", "flights").schema["sched_dep_utc"] == pl.Datetime("us", "UTC")


def test_checks_ran_and_passed(small_lake):
    _, _, result = small_lake
    evaluations = {(e.asset_key.to_user_string(), e.check_name): e.passed for e in result.get_asset_check_evaluations()}
    assert evaluations[("silver/flights", "quarantine_share")]
    assert evaluations[("silver/flights", "surrogate_key_unique")]
    assert evaluations[("gold/flight_features", "one_row_per_flight")]
    for source in ("flights", "weather", "planes", "airports", "airlines"):
        assert evaluations[(f"silver/{source}", "row_accounting")], source


def check_metadata(result, asset: str, check: str) -> dict:
    (evaluation,) = [
        e
        for e in result.get_asset_check_evaluations()
        if e.asset_key.to_user_string() == asset and e.check_name == check
    ]
    return {"passed": evaluation.passed, **{k: v.value for k, v in evaluation.metadata.items()}}


def test_model_is_registered_and_predictions_name_its_version(small_lake):
    settings, _, result = small_lake
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    champion = MlflowClient().get_model_version_by_alias(MODEL_NAME, "champion")
    run = MlflowClient().get_run(champion.run_id)
    assert run.info.status == "FINISHED"
    assert {"test_roc_auc", "test_pr_auc", "test_log_loss", "test_brier", "test_ece"} <= set(run.data.metrics)
    assert run.data.params["train_months"] == "2013-01" and run.data.params["test_month"] == "2013-03"
    assert run.info.artifact_uri.startswith(f"file://{settings.mlflow_artifact_location}")
    model_meta = result.asset_materializations_for_node("ml__flight_delay_model")[0].metadata
    assert 0.5 < model_meta["test_roc_auc"].value <= 1.0
    predictions = rows(settings, "gold", "flight_delay_predictions")
    features = rows(settings, "gold", "flight_features")
    # every flight of every month is scored, those the champion trained on flagged as in-sample
    assert predictions.height == features.height > 0
    assert predictions.join(features, on="flight_id").height == features.height
    trained_on = predictions.filter(pl.col("flight_date").dt.month() == 1).get_column("in_training_window")
    later = predictions.filter(pl.col("flight_date").dt.month() > 1).get_column("in_training_window")
    assert trained_on.all() and not later.any()
    assert predictions.get_column("model_version").unique().to_list() == [int(champion.version)]
    assert predictions.select(pl.col("probability").is_between(0, 1).all()).item()
    # one run scored the three months: each month's materialization reports its own rows and its own drift
    by_month = dict(predictions.group_by(pl.col("flight_month").cast(pl.String)).len().iter_rows())
    events: dict[str, dict] = {}
    for e in result.get_asset_materialization_events():
        metadata = {k: v.value for k, v in e.materialization.metadata.items()}
        events.setdefault(e.asset_key.to_user_string(), {})[e.partition] = metadata
    scored = events["gold/flight_delay_predictions"]
    assert {month: meta["dagster/row_count"] for month, meta in scored.items()} == by_month
    assert len(set(by_month.values())) == 3
    drift = events["ml/feature_drift"]
    assert sorted(drift) == sorted(by_month)
    assert all(meta["evaluated_month"] == month[:7] for month, meta in drift.items())
    assert len({meta["max_psi"] for meta in drift.values()}) == 3  # each month its own figure


def test_rerun_is_idempotent_and_new_files_are_picked_up(small_lake, tmp_path):
    settings, instance = own_copy(small_lake, tmp_path)
    before = {s: rows(settings, "silver", s).height for s in ("flights", "weather")}
    bronze_versions = DeltaTable(location(settings, "bronze/flights")).version()
    again = dg.materialize(
        [a for a in ALL_ASSETS if a.key.path[0] in ("bronze", "silver")],
        resources=build_definitions(settings).resources,
        instance=instance,
    )
    assert again.success
    assert {s: rows(settings, "silver", s).height for s in before} == before
    assert DeltaTable(location(settings, "bronze/flights")).version() == bronze_versions  # nothing appended

    # A renamed copy of a landed file is a duplicate: logged, not ingested again.
    src = next((landing_folder(settings, "flights")).glob("flights_2013_01.csv"))
    shutil.copy(src, src.with_name("flights_2013_01_copy.csv"))
    # A corrected version of a landed file upserts: one arrival delay changes, no row is added.
    jan = pl.read_csv(src, infer_schema=False)
    jan = jan.with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("777")).otherwise(pl.col("arr_delay")).alias("arr_delay")
    )
    jan.write_csv(src)
    third = materialize_all(
        settings, instance, selection=[a.key for a in ALL_ASSETS if a.key.path[0] in ("bronze", "silver")]
    )
    assert third.success
    log = rows(settings, "bronze", "flights_ingest_log")
    assert log.filter(pl.col("file_name") == "flights_2013_01_copy.csv").get_column("status").to_list() == ["duplicate"]
    silver = rows(settings, "silver", "flights")
    assert silver.height == before["flights"]
    assert silver.filter(pl.col("arr_delay") == 777).height == 1
    # The run's check proves the batch it consumed (the corrected file) ...
    accounting = check_metadata(third, "silver/flights", "row_accounting")
    assert accounting["passed"] and accounting["rows_unaccounted"] == 0 and accounting["files_checked"] == 1
    assert accounting["rows_read"] == accounting["rows_in_silver"] == jan.height
    # ... and the whole lake still balances: the old version's rows are all superseded by the correction.
    whole = row_accounting(Lake(settings.lake_dir), SOURCES["flights"])
    assert whole.passed and whole.metadata["rows_unaccounted"].value == 0
    assert whole.metadata["rows_superseded"].value == jan.height
    assert whole.metadata["files_checked"].value == accounting["files_checked"] + 3  # the three landed months


def test_bad_rows_are_quarantined_and_bad_files_rejected(tmp_path):
    settings = Settings.from_env(tmp_path)
    land(settings.landing_dir, months=[1], sources=["airlines", "weather"], max_day=2)
    folder = landing_folder(settings, "weather")
    weather = pl.read_csv(folder / "weather_2013_01.csv", infer_schema=False)
    weather.head(3).with_columns(pl.lit("warm").alias("temp"), pl.lit("x").alias("extra")).write_csv(
        folder / "weather_bad.csv"
    )
    weather.drop("temp").head(2).write_csv(folder / "weather_no_temp.csv")
    (folder / "weather_latin1.csv").write_bytes("origin,temp\nEWR,Fröst\n".encode("latin-1"))
    selection = [a.key for a in ALL_ASSETS if a.key.path[-1] in ("airlines", "weather")]
    with dg.instance_for_test() as instance:
        result = materialize_all(settings, instance, selection=selection, raise_on_error=False)
    checks = {
        e.check_name: e.passed
        for e in result.get_asset_check_evaluations()
        if e.asset_key.to_user_string() == "silver/weather"
    }
    assert checks["surrogate_key_unique"] and checks["row_accounting"]
    assert check_metadata(result, "silver/weather", "row_accounting")["rows_quarantined"] == 3
    assert not check_metadata(result, "bronze/weather", "no_rejected_files")["passed"]
    quarantine = rows(settings, "silver", "weather_quarantine")
    assert quarantine.get_column("_source_file").to_list() == ["weather_bad.csv"] * 3
    assert quarantine.get_column("_row_number").sort().to_list() == [1, 2, 3]
    assert all("temp is not a valid value: warm" in r for r in quarantine["reason"])
    bronze = rows(settings, "bronze", "weather")
    assert (
        bronze.filter(pl.col("_source_file") == "weather_bad.csv").get_column("_rescued_data").to_list()
        == ['{"extra":"x"}'] * 3
    )
    rejected = rejected_folder(settings, "weather")
    assert sorted(p.name for p in rejected.iterdir()) == [
        "weather_latin1.csv",
        "weather_latin1.csv.reason.json",
        "weather_no_temp.csv",
        "weather_no_temp.csv.reason.json",
    ]
    assert (rejected / "weather_latin1.csv").read_bytes() == (folder / "weather_latin1.csv").read_bytes()
    log = rows(settings, "bronze", "weather_ingest_log")
    assert dict(log.select("file_name", "status").iter_rows())["weather_no_temp.csv"] == "rejected"


def test_a_run_with_nothing_new_changes_no_table_and_registers_nothing(small_lake, tmp_path):
    settings, instance = own_copy(small_lake, tmp_path)
    lake = Lake(settings.lake_dir)
    before = {t.path: lake.version(t) for t in ALL_TABLES if lake.exists(t)}
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    versions_before = len(MlflowClient().search_model_versions(f"name='{MODEL_NAME}'"))
    again = materialize_all(settings, instance)
    assert again.success
    after = {t.path: lake.version(t) for t in ALL_TABLES if lake.exists(t)}
    changed = {path for path in before if after[path] != before[path]}
    # gold is not rewritten (its inputs are at the same versions), so no new model version, nothing re-scored and
    # no drift rows
    assert not changed, changed
    assert len(MlflowClient().search_model_versions(f"name='{MODEL_NAME}'")) == versions_before
    assert again.months == [] and again.scored == []  # nothing stale, nothing to score: no partitioned run at all


def test_drift_reads_the_sample_the_training_run_logged_not_the_training_months(small_lake, tmp_path, monkeypatch):
    settings, _, _ = small_lake
    registry = build_resources(settings)["registry"]
    champion = load_champion(registry)
    assert champion is not None
    logged = load_drift_reference(registry.client(), champion.run_id)
    assert logged is not None
    sample, window = reference_sample(Lake(str(tmp_path / "no-lake-here")), champion, registry)  # lake not opened
    # what drift reads for a model without the logged sample: the training months at the recorded version
    monkeypatch.setattr("lakehouse.ml.monitoring.load_drift_reference", lambda client, run_id: None)
    read, read_window = reference_sample(Lake(settings.lake_dir), champion, registry)
    assert read_window["reference_source"] == "training months" and window["reference_source"] == "logged sample"
    assert sample.height == read.height > 1000
    columns = [c for c in sample.columns if c != PREDICTION]
    assert sample.select(columns).equals(read.select(columns))  # the same rows, in the same order
    np.testing.assert_allclose(sample[PREDICTION].to_numpy(), read[PREDICTION].to_numpy(), rtol=0, atol=1e-12)
    for key in ("reference_start", "reference_end", "reference_window_rows"):
        assert window[key] == read_window[key], key
