"""End to end on object storage: a small real slice (January 2013, days 1-3, every source) landed into an S3 landing
prefix, picked up by the landing sensor (evaluated with ``dg.build_sensor_context`` on a temporary instance), bronze
runs as the sensor asks, then silver and gold, with the lake on S3. The same slice on a local lake gives the same
silver and gold row counts; a bad file is copied with its reason; the secret key appears nowhere in the runs'
event logs (every event, metadata included) nor in the sensor's cursor."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from lakehouse.bronze.sensors import build_landing_sensor
from lakehouse.definitions import build_definitions
from lakehouse.landing import land
from lakehouse.pipeline import materialize_medallion
from lakehouse.resources import build_resources
from lakehouse.settings import Settings
from lakehouse.tables import ALL_TABLES, Lake, Landing
from lakehouse_tests.object_store import SECRET_ACCESS_KEY, S3Server, list_keys

pytestmark = pytest.mark.slow  # two small medallions (S3 and local): about a minute

SLICE = {"months": [1], "max_day": 3}
LAYERS = ("silver", "gold")


def settings_on_s3(bucket: str, tmp_path: Path) -> Settings:
    local = Settings.from_env(tmp_path / "s3-run")  # MLflow stays local (not part of this test)
    return Settings(
        landing_dir=f"s3://{bucket}/landing",
        lake_dir=f"s3://{bucket}/lake",
        mlflow_tracking_uri=local.mlflow_tracking_uri,
        mlflow_artifact_location=local.mlflow_artifact_location,
    )


def row_counts(lake: Lake) -> dict[str, int]:
    return {
        t.path: lake.scan(t).select(pl.len()).collect().item()
        for t in ALL_TABLES
        if t.layer in LAYERS and lake.exists(t)
    }


def event_log_text(instance: dg.DagsterInstance) -> str:
    """Every event of every run of ``instance``, serialized (messages, metadata, run configs, tags)."""
    runs = instance.get_runs()
    return "\n".join(
        [dg.serialize_value(run) for run in runs]
        + [dg.serialize_value(entry) for run in runs for entry in instance.all_logs(run.run_id)]
    )


def test_the_medallion_runs_on_s3_from_the_sensor_as_on_a_local_lake(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raw_flights
):
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    settings = settings_on_s3(s3_bucket, tmp_path)
    land(settings.landing_dir, **SLICE)
    bad = raw_flights.slice(0, 10).drop("carrier").write_csv().encode()  # a required column missing
    Landing(settings.landing_dir).source("flights").write("flights_broken.csv", bad)

    defs = build_definitions(settings)
    lake = Lake(settings.lake_dir)
    sensor = build_landing_sensor(settle_seconds=3600.0)
    resources = {"storage": build_resources(settings)["storage"]}
    with dg.instance_for_test() as instance:
        first = sensor(dg.build_sensor_context(instance=instance, resources=resources))
        assert not first.run_requests  # first look at the objects
        second = sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor, resources=resources))
        (request,) = second.run_requests  # one run for the five sources
        assert request.run_config["ops"]["bronze__flights"]["config"]["files"] == [
            "flights_2013_01.csv",
            "flights_broken.csv",
        ]
        bronze = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance, asset_selection=request.asset_selection, run_config=request.run_config, tags=request.tags
        )
        assert bronze.success
        rest = materialize_medallion(defs, instance, lake, selection=dg.AssetSelection.groups(*LAYERS))
        assert rest.success
        assert rest.months == ["2013-01..2013-01"]
        text = event_log_text(instance) + first.cursor + second.cursor

    assert SECRET_ACCESS_KEY not in text
    assert f"s3://{s3_bucket}/lake/silver/flights" in text  # the metadata names the tables' S3 locations
    rejected = Landing(settings.landing_dir).rejected("flights")
    assert rejected.read("flights_broken.csv") == bad
    assert "carrier" in rejected.read("flights_broken.csv.reason.json").decode()
    assert "landing/flights/flights_broken.csv" in list_keys(s3_server, s3_bucket, "landing/")  # never deleted
    assert not (tmp_path / "s3-run" / "lake").exists() and not Path("s3:").exists()

    on_s3 = row_counts(lake)
    local = Settings.from_env(tmp_path / "local")
    land(local.landing_dir, **SLICE)
    with dg.instance_for_test() as instance:
        assert materialize_medallion(
            build_definitions(local),
            instance,
            Lake(local.lake_dir),
            selection=dg.AssetSelection.groups("bronze", *LAYERS),
        ).success
    assert on_s3 == row_counts(Lake(local.lake_dir))
    assert on_s3["silver/flights"] > 2000 and on_s3["gold/flight_features"] == on_s3["silver/flights"]
