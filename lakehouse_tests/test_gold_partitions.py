"""Monthly gold partitions driven by the lake: the first run builds every landed month, a new month requests that
month only, a correction of an old month requests that month and the next one its windows reach, and a run with
nothing new requests nothing. Real flights (days 1-2 of each month), a real Dagster instance and Delta tables."""

from __future__ import annotations

import dagster as dg
import polars as pl
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from lakehouse.definitions import build_definitions
from lakehouse.gold.assets import route_daily_delays
from lakehouse.gold.sensors import GOLD_KEYS, gold_months_sensor
from lakehouse.landing import land
from lakehouse.resources import build_resources
from lakehouse.settings import Settings
from lakehouse.tables import FLIGHT_FEATURES, ROUTE_DAILY_DELAYS
from lakehouse_tests.helpers import lake, landing_folder, materialize_all

UPSTREAM = dg.AssetSelection.groups("bronze", "silver")
NO_ML = dg.AssetSelection.groups("bronze", "silver", "gold")
FEATURES_KEY = dg.AssetKey(list(FLIGHT_FEATURES.key))


def tick(settings: Settings, instance: dg.DagsterInstance):
    resources = {"storage": build_resources(settings)["storage"]}
    return gold_months_sensor(dg.build_sensor_context(instance=instance, resources=resources))


def requested(result) -> list[tuple[str, str]]:
    return [
        (r.tags[ASSET_PARTITION_RANGE_START_TAG], r.tags[ASSET_PARTITION_RANGE_END_TAG]) for r in result.run_requests
    ]


def run_request(settings: Settings, instance: dg.DagsterInstance, request: dg.RunRequest):
    """Execute a sensor's request as the daemon would: the gold job, the request's assets and tags."""
    job = build_definitions(settings).resolve_job_def("gold_months")
    return job.execute_in_process(instance=instance, tags=request.tags, asset_selection=request.asset_selection)


def partitions_written(result) -> set[str]:
    return {e.partition for e in result.get_asset_materialization_events() if e.asset_key == FEATURES_KEY}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """January-June landed and built once. The first run's outcome is captured here: the tests below land more
    (in any order), so they must not read the lake's state as the first run left it."""
    settings = Settings.from_env(tmp_path_factory.mktemp("months"))
    land(settings.landing_dir, months=range(1, 7), max_day=2)
    with dg.instance_for_test() as instance:
        first = materialize_all(settings, instance, selection=NO_ML)
        after_first = {
            "materialized": sorted(instance.get_materialized_partitions(FEATURES_KEY)),
            "rows_by_month": {
                table.path: dict(
                    lake(settings)
                    .read(table, columns=["flight_month"])
                    .group_by(pl.col("flight_month").cast(pl.String))
                    .len()
                    .iter_rows()
                )
                for table in (FLIGHT_FEATURES, ROUTE_DAILY_DELAYS)
            },
            "tick": tick(settings, instance),
            "versions": {table.path: lake(settings).version(table) for table in (FLIGHT_FEATURES, ROUTE_DAILY_DELAYS)},
            **{
                table.path: [
                    str(m) for m in lake(settings).read(table, columns=["flight_month"])["flight_month"].unique().sort()
                ]
                for table in (FLIGHT_FEATURES, ROUTE_DAILY_DELAYS)
            },
        }
        yield settings, instance, first, after_first


def test_the_first_run_builds_every_landed_month_in_one_run(built):
    _, _, first, after_first = built
    assert first.success and first.months == ["2013-01..2013-06"]
    keys = [f"2013-{m:02d}-01" for m in range(1, 7)]
    assert after_first["materialized"] == keys
    assert after_first[FLIGHT_FEATURES.path] == after_first[ROUTE_DAILY_DELAYS.path] == keys
    assert isinstance(after_first["tick"], dg.SkipReason)  # nothing is stale


def test_each_month_of_a_single_run_backfill_reports_its_own_row_count(built):
    _, _, first, after_first = built
    for table in (FLIGHT_FEATURES, ROUTE_DAILY_DELAYS):
        events = [
            e.materialization
            for e in first.get_asset_materialization_events()
            if e.asset_key == dg.AssetKey(list(table.key))
        ]
        reported = {e.partition: e.metadata["dagster/row_count"].value for e in events}
        by_month = after_first["rows_by_month"][table.path]
        assert reported == by_month, table.path  # each month its own rows, not the run's total
        assert len(set(reported.values())) > 1
        assert {e.metadata["run_rows"].value for e in events} == {sum(by_month.values())}


def test_each_run_reports_the_delta_version_of_its_last_commit(built):
    _, _, first, after_first = built
    for table in (FLIGHT_FEATURES, ROUTE_DAILY_DELAYS):
        reported = {
            e.materialization.metadata["delta_version"].value
            for e in first.get_asset_materialization_events()
            if e.asset_key == dg.AssetKey(list(table.key))
        }
        assert reported == {after_first["versions"][table.path]}, table.path  # the version holding all 6 months


def test_months_without_flights_on_a_lake_without_the_gold_table_write_nothing(tmp_path):
    settings = Settings.from_env(tmp_path)
    land(settings.landing_dir, months=[1], max_day=1)
    with dg.instance_for_test() as instance:
        assert materialize_all(settings, instance, selection=UPSTREAM).success
        result = dg.materialize(
            [route_daily_delays],
            partition_key="2013-12-01",
            instance=instance,
            resources={"storage": build_resources(settings)["storage"]},
        )
    assert result.success
    (event,) = result.get_asset_materialization_events()
    assert event.materialization.metadata["dagster/row_count"].value == 0
    assert event.materialization.metadata["delta_version"] == dg.MetadataValue.null()
    assert not lake(settings).exists(ROUTE_DAILY_DELAYS)


def test_a_new_month_requests_that_month_only_and_then_nothing(built):
    settings, instance, _, _ = built
    land(settings.landing_dir, months=[7], max_day=2)
    assert materialize_all(settings, instance, selection=UPSTREAM).success
    result = tick(settings, instance)
    assert requested(result) == [("2013-07-01", "2013-07-01")]
    (request,) = result.run_requests
    assert set(request.asset_selection) == set(GOLD_KEYS)
    assert partitions_written(run_request(settings, instance, request)) == {"2013-07-01"}
    assert isinstance(tick(settings, instance), dg.SkipReason)
    again = materialize_all(settings, instance, selection=NO_ML)  # a plain run with nothing new: no gold run
    assert again.success and again.months == []


def test_a_correction_requests_its_month_and_the_month_its_windows_reach(built):
    settings, instance, _, _ = built
    (march,) = landing_folder(settings, "flights").glob("*2013*03*")
    raw = pl.read_csv(march, infer_schema=False)
    raw.with_columns(
        pl.when(pl.int_range(pl.len()) < 50).then(pl.lit("300")).otherwise("dep_delay").alias("dep_delay")
    ).write_csv(march)
    assert materialize_all(settings, instance, selection=UPSTREAM).success
    result = tick(settings, instance)
    assert requested(result) == [("2013-03-01", "2013-04-01")]  # 28-day windows of early April see March
    before = lake(settings).read(FLIGHT_FEATURES).filter(pl.col("flight_month").dt.month() == 1)
    assert partitions_written(run_request(settings, instance, result.run_requests[0])) == {"2013-03-01", "2013-04-01"}
    after = lake(settings).read(FLIGHT_FEATURES).filter(pl.col("flight_month").dt.month() == 1)
    assert after.equals(before)  # January was not rewritten
    assert isinstance(tick(settings, instance), dg.SkipReason)
