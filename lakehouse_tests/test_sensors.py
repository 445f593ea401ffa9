"""The landing sensor over several ticks: stability, cursor, batching, run keys; 500 files in a few runs."""

import json
import time

import dagster as dg
import polars as pl
import pytest

from lakehouse.bronze.assets import bronze_assets
from lakehouse.bronze.sensors import build_landing_sensor
from lakehouse.resources import build_resources
from lakehouse.settings import Settings
from lakehouse_tests.helpers import landing_folder, location


def tick(sensor, instance, settings, cursor=None):
    resources = {"storage": build_resources(settings)["storage"]}
    return sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources))


class Clock:
    """A clock the test moves by hand: the sensor's notion of "now", in seconds since the epoch."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def write_small_files(folder, raw_flights, count, rows_each=20, prefix="part"):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        raw_flights.slice(i * rows_each, rows_each).write_csv(folder / f"{prefix}_{i:04d}.csv")


def test_ticks_wait_for_stable_files_batch_them_and_keep_a_small_cursor(tmp_path, raw_flights):
    settings = Settings.from_env(tmp_path)
    clock = Clock()
    sensor = build_landing_sensor(settle_seconds=60.0, max_files_per_run=100, clock=clock)
    folder = landing_folder(settings, "flights")
    with dg.instance_for_test() as instance:
        write_small_files(folder, raw_flights, 250)
        (folder / "being_copied.csv.part").write_text("year,month\n2013,")
        (folder / ".hidden.csv").write_text("x")
        clock.now = time.time()  # the files have just landed (writing them takes far less than the settle time)
        first = tick(sensor, instance, settings)
        assert not first.run_requests  # every file is younger than the settle time
        clock.advance(61)
        second = tick(sensor, instance, settings, first.cursor)
        assert len(second.run_requests) == 3
        batches = [r.run_config["ops"]["bronze__flights"]["config"]["files"] for r in second.run_requests]
        assert [len(b) for b in batches] == [100, 100, 50]
        assert sorted(f for b in batches for f in b) == [f"part_{i:04d}.csv" for i in range(250)]
        assert len({r.run_key for r in second.run_requests}) == 3
        assert all(r.tags["lakehouse/sources"] == "flights" for r in second.run_requests)
        assert all(r.asset_selection == [dg.AssetKey(["bronze", "flights"])] for r in second.run_requests)
        # The cursor holds one timestamp and the names at that timestamp, not every name seen.
        last_ns, names = json.loads(second.cursor)["flights"]
        from lakehouse.bronze.sensors import change_time_ns

        newest = max(change_time_ns(p) for p in folder.glob("*.csv") if not p.name.startswith("."))
        assert last_ns == newest
        assert sorted(names) == sorted(p.name for p in folder.glob("part_*.csv") if change_time_ns(p) == newest)

        # A restarted daemon re-evaluating the same tick asks for the same run keys (Dagster launches once).
        again = tick(sensor, instance, settings, first.cursor)
        assert [r.run_key for r in again.run_requests] == [r.run_key for r in second.run_requests]

        third = tick(sensor, instance, settings, second.cursor)
        assert not third.run_requests and "no new stable files" in third.skip_reason.skip_message

        raw_flights.slice(9000, 5).write_csv(folder / "late_arrival.csv")
        clock.now = time.time()  # the file has just landed ...
        assert not tick(sensor, instance, settings, third.cursor).run_requests  # ... and is not stable yet
        clock.advance(61)
        fourth = tick(sensor, instance, settings, third.cursor)
        assert [r.run_config["ops"]["bronze__flights"]["config"]["files"] for r in fourth.run_requests] == [
            ["late_arrival.csv"]
        ]


def test_a_new_month_of_several_sources_is_one_run(tmp_path):
    from lakehouse.landing import land

    settings = Settings.from_env(tmp_path)
    land(settings.landing_dir, months=[7], sources=["flights", "weather"], max_day=1)
    with dg.instance_for_test() as instance:
        result = tick(build_landing_sensor(settle_seconds=0.0), instance, settings)
    (request,) = result.run_requests
    assert set(request.asset_selection) == {dg.AssetKey(["bronze", "flights"]), dg.AssetKey(["bronze", "weather"])}
    assert request.run_config["ops"]["bronze__weather"]["config"]["files"] == ["weather_2013_07.csv"]
    assert request.tags["lakehouse/files"] == "2"


@pytest.mark.slow
def test_500_small_files_ingest_in_a_handful_of_runs(tmp_path, raw_flights):
    settings = Settings.from_env(tmp_path)
    sensor = build_landing_sensor(settle_seconds=0.0, max_files_per_run=100)
    write_small_files(landing_folder(settings, "flights"), raw_flights, 500)
    bronze_flights = next(a for a in bronze_assets if a.key.path == ["bronze", "flights"])
    with dg.instance_for_test() as instance:
        result = tick(sensor, instance, settings)
        assert len(result.run_requests) == 5
        for request in result.run_requests:
            run = dg.materialize(
                [bronze_flights],
                instance=instance,
                resources=build_resources(settings),
                run_config=request.run_config,
                tags=request.tags,
            )
            assert run.success
        assert tick(sensor, instance, settings, result.cursor).run_requests == []
        log = pl.read_delta(location(settings, "bronze/flights_ingest_log"))
        assert log.height == 500 and set(log.get_column("status")) == {"ingested"}
        assert log.get_column("batch_seq").n_unique() == 5
        assert pl.read_delta(location(settings, "bronze/flights")).height == 500 * 20


def test_a_fresh_cursor_starts_nothing_for_files_already_ingested(tmp_path):
    """The first `lakehouse ui` after `lakehouse run`: the sensor has no cursor, the CLI ingested every file."""
    from lakehouse.bronze.ingest import ingest_source
    from lakehouse.landing import land
    from lakehouse.sources import SOURCES
    from lakehouse.tables import Lake, Landing

    settings = Settings.from_env(tmp_path)
    land(settings.landing_dir, months=[1, 2], sources=["flights", "airlines"], max_day=1)
    lake, landing = Lake(settings.lake_dir), Landing(settings.landing_dir)
    for source in ("flights", "airlines"):
        ingest_source(lake, landing, SOURCES[source], batch_id="cli-run")
    sensor = build_landing_sensor(settle_seconds=0.0)
    with dg.instance_for_test() as instance:
        first = tick(sensor, instance, settings)
        assert not first.run_requests
        assert set(json.loads(first.cursor)) == {"flights", "airlines"}  # the cursor moved past them
        # a corrected file (same name, new bytes) is new work
        corrected = landing_folder(settings, "flights") / "flights_2013_01.csv"
        corrected.write_text(corrected.read_text().replace(",UA,", ",AA,", 1))
        second = tick(sensor, instance, settings, first.cursor)
    (request,) = second.run_requests
    assert request.run_config["ops"]["bronze__flights"]["config"]["files"] == ["flights_2013_01.csv"]


@pytest.mark.slow
def test_the_sensor_and_automation_path_runs_the_blocking_row_accounting_check(tmp_path):
    """Files dropped in the landing zone -> landing sensor -> bronze run -> automation requests silver: the run the
    automation launches evaluates every silver check, row_accounting included (it is evaluated by the asset)."""
    from lakehouse.definitions import build_definitions
    from lakehouse.landing import land

    settings = Settings.from_env(tmp_path)
    defs = build_definitions(settings)
    land(settings.landing_dir, months=[1], sources=["airlines"])
    with dg.instance_for_test() as instance:
        (request,) = tick(build_landing_sensor(settle_seconds=0.0), instance, settings).run_requests
        job = defs.resolve_implicit_global_asset_job_def()
        bronze = job.execute_in_process(
            instance=instance, asset_selection=request.asset_selection, run_config=request.run_config, tags=request.tags
        )
        assert bronze.success
        evaluation = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        requested = [r.key for r in evaluation.results if r.true_subset.size > 0]
        assert dg.AssetKey(["silver", "airlines"]) in requested
        # as the automation sensor builds its run: the requested assets with the checks that execute with them
        # (dagster: AssetGraph.get_execution_set_asset_and_check_keys, used by automation_tick_evaluation_context)
        graph = defs.resolve_asset_graph()
        with_checks = set().union(*(graph.get_execution_set_asset_and_check_keys(k) for k in requested))
        selection = dg.AssetSelection.assets(*requested).without_checks() | dg.AssetSelection.checks(
            *[k for k in with_checks if isinstance(k, dg.AssetCheckKey)]
        )
        silver = dg.materialize(
            list(defs.assets or []), selection=selection, instance=instance, resources=build_resources(settings)
        )
    checks = {
        e.check_name: (e.passed, e.blocking)
        for e in silver.get_asset_check_evaluations()
        if e.asset_key == dg.AssetKey(["silver", "airlines"])
    }
    assert checks == {
        "quarantine_share": (True, True),
        "surrogate_key_unique": (True, True),
        "row_accounting": (True, True),
    }
