"""Table maintenance on real tables: compaction, VACUUM that keeps what registered models were trained on, the
Dagster job with its pools and metadata.

* many small files (a real bronze table fed by 120 small appends, a real silver table by 40 small MERGEs) are
  compacted to a handful, with the same rows, the same exactly-once progress, and the figures reported;
* maintenance commits change no row, so gold does not rebuild after silver was compacted;
* after a model is trained and gold is rewritten again, VACUUM with retention 0 deletes the files of the old
  unprotected versions but keeps those of the version the model was trained on: ``reproduce()`` still gives the
  run's metrics;
* the job ``lake_maintenance`` runs through Dagster on a real instance, each op in its writer's pool, and records
  the before/after figures as asset observations.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import mlflow
import polars as pl
import pytest
from deltalake import DeltaTable
from mlflow.tracking import MlflowClient

from lakehouse import storage
from lakehouse.definitions import defs
from lakehouse.landing import land
from lakehouse.maintenance.housekeeping import DEFAULT_RETENTION_HOURS, footprint, maintain, maintain_lake
from lakehouse.maintenance.jobs import MAINTENANCE_OPS, WRITERS, lake_maintenance, maintenance_pool
from lakehouse.ml.registry import CHAMPION, reproduce, trained_versions
from lakehouse.resources import build_resources
from lakehouse.settings import Settings
from lakehouse.silver.conform import conform
from lakehouse.sources import SOURCES
from lakehouse.tables import ALL_TABLES, BRONZE, FLIGHT_FEATURES, SILVER, Lake
from lakehouse_tests.helpers import bronze_of, lake, materialize_all

MODEL_NAME = "flight_delay_lgbm"


def sorted_rows(frame: pl.DataFrame, *by: str) -> pl.DataFrame:
    return frame.select(sorted(frame.columns)).sort(*by)


@pytest.fixture(scope="module")
def first_days(raw_flights) -> pl.DataFrame:
    """Real flights of January-March 2013, days 1-2 (about 5,000 rows)."""
    return raw_flights.filter(pl.col("month").is_in(["1", "2", "3"]) & pl.col("day").is_in(["1", "2"]))


def test_many_small_appends_are_compacted_to_one_file_with_the_same_rows(tmp_path, first_days):
    lk = Lake(str(tmp_path / "lake"))
    table = BRONZE["flights"]
    for seq, chunk in enumerate(first_days.head(2400).iter_slices(20), start=1):  # 120 small landed files
        lk.append(table, bronze_of("flights", chunk, file=f"f{seq}.csv", seq=seq), progress=seq)
    rows = sorted_rows(lk.read(table), "_content_hash", "_row_number")
    version = lk.version(table)

    report = maintain(lk, table)
    assert (report.before.files, report.files_compacted) == (120, 120)
    assert report.after.files == report.files_written == 1
    assert report.after.bytes < report.before.bytes  # one file compresses better than 120
    assert sorted_rows(lk.read(table), "_content_hash", "_row_number").equals(rows)
    assert lk.consumed_version(table) == 120  # exactly-once progress survives compaction
    # default retention (7 days): the compacted files stay on disk, the old version is still readable
    assert report.files_vacuumed == 0 and report.after.disk_files == 121
    assert pl.read_delta(lk.location(table), version=version).height == rows.height
    # retention 0: they go
    again = maintain(lk, table, retention_hours=0)
    assert (again.files_compacted, again.files_vacuumed, again.after.disk_files) == (0, 120, 1)
    assert sorted_rows(lk.read(table), "_content_hash", "_row_number").equals(rows)


def test_small_merges_are_compacted_per_partition_and_gold_does_not_rebuild_for_it(tmp_path, first_days):
    lk = Lake(str(tmp_path / "lake"))
    table = SILVER["flights"]
    valid = conform(bronze_of("flights", first_days), SOURCES["flights"]).valid
    for seq, chunk in enumerate(valid.sample(fraction=1.0, shuffle=True, seed=1).head(1600).iter_slices(40), start=1):
        lk.merge(table, chunk, progress=seq)  # 40 MERGEs, each touching the three month partitions
    lk.merge(table, valid.head(50).with_columns(pl.lit(1, dtype=pl.Int32).alias("dep_delay")), progress=41)
    rows = sorted_rows(lk.read(table), "flight_id")
    inputs = lk.input_versions([table])
    version = lk.version(table)

    report = maintain(lk, table, retention_hours=0)
    assert report.before.files >= 100
    assert report.after.files == 3  # one per (year, month) partition
    assert report.files_vacuumed >= report.before.files
    assert report.after.disk_files == 3
    assert sorted_rows(lk.read(table), "flight_id").equals(rows)
    assert lk.consumed_version(table) == 41
    assert lk.version(table) > version  # OPTIMIZE and VACUUM committed...
    assert lk.input_versions([table]) == inputs  # ...but changed no row: gold's built_from still matches


def test_overwritten_tables_are_vacuumed_never_compacted(tmp_path, first_days):
    lk = Lake(str(tmp_path / "lake"))
    frame = (
        conform(bronze_of("flights", first_days), SOURCES["flights"])
        .valid.select("flight_id", "sched_dep_utc", "month", "carrier", "origin", "dest", "distance")
        .with_columns(pl.lit(date(2013, 1, 1)).alias("flight_month"))
    )  # gold's partition column (one month here)
    for i in range(4):
        lk.overwrite(FLIGHT_FEATURES, frame.with_columns(pl.lit(i).alias("run")), inputs={"silver/flights": i})
    report = maintain(lk, FLIGHT_FEATURES, retention_hours=0)
    assert report.files_compacted == 0 and report.files_vacuumed == 3
    assert (report.after.files, report.after.disk_files) == (1, 1)
    assert lk.built_from(FLIGHT_FEATURES) == {"silver/flights": 3}  # VACUUM commits are looked through
    with pytest.raises(ValueError, match="retention_hours"):
        maintain(lk, FLIGHT_FEATURES, retention_hours=-1)


def test_every_table_is_maintained_once_in_its_writers_pool():
    assert sorted(t.path for tables in WRITERS.values() for t in tables) == sorted(t.path for t in ALL_TABLES)
    graph = defs.resolve_asset_graph()
    job = defs.resolve_job_def("lake_maintenance")
    for writer, op in MAINTENANCE_OPS.items():
        pools = set(graph.get(writer).pools or [])
        assert job.graph.node_named(op.name).definition.pool == maintenance_pool(writer)
        if pools:  # the writer's own pool (dagster.yaml: one slot), read from the asset graph
            assert pools == {op.pool}
    # every writer declares a pool (gold's two share gold_months), so maintenance never races a writer
    assert sorted(w.to_user_string() for w in WRITERS if not graph.get(w).pools) == []
    schedule = defs.resolve_schedule_def("lake_maintenance_daily")
    assert schedule.job_name == "lake_maintenance"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING


# --- with a registered model --------------------------------------------------------------------------------------


@dataclass
class Trained:
    settings: Settings
    instance: dg.DagsterInstance
    run_id: str  # the champion's MLflow run
    features_version: int  # gold/flight_features version it was trained on


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Iterator[Trained]:
    settings = Settings.from_env(tmp_path_factory.mktemp("maintenance"))
    land(settings.landing_dir, months=[1, 2, 3], max_day=2)
    with dg.instance_for_test() as instance:
        assert materialize_all(settings, instance).success
        mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
        mv = MlflowClient().get_model_version_by_alias(MODEL_NAME, CHAMPION)
        run = MlflowClient().get_run(mv.run_id)
        yield Trained(settings, instance, str(mv.run_id), int(run.data.params["gold_flight_features_version"]))


def rewrite_gold(lk: Lake, times: int) -> list[int]:
    """Overwrite gold/flight_features ``times`` times (labels flipped, then back); the versions written."""
    path = lk.location(FLIGHT_FEATURES)
    latest = pl.read_delta(path)
    versions = []
    for i in range(times):
        flipped = i % 2 == 0 and i < times - 1
        frame = latest.with_columns((1 - pl.col("is_late")).cast(pl.Int8).alias("is_late")) if flipped else latest
        storage.overwrite(path, frame, partition_by=FLIGHT_FEATURES.partition_by)
        versions.append(lk.version(FLIGHT_FEATURES))
    return versions


def test_vacuum_keeps_the_version_a_registered_model_was_trained_on(trained, tmp_path):
    s = trained
    registry = build_resources(s.settings)["registry"]
    copy = Lake(str(tmp_path / "lake"))
    shutil.copytree(s.settings.lake_dir, copy.root)  # this test's own lake; the registry is shared (read only)
    unprotected = rewrite_gold(copy, 3)

    protected = trained_versions(registry)
    assert s.features_version in protected[FLIGHT_FEATURES.path]
    assert set(protected) >= {FLIGHT_FEATURES.path, "silver/flights", "silver/weather", "silver/planes"}
    reports = {r.path: r for r in maintain_lake(copy, protected=protected, retention_hours=0)}

    gold = reports[FLIGHT_FEATURES.path]
    assert s.features_version in gold.versions_kept and gold.files_vacuumed >= 2
    assert copy.damage(FLIGHT_FEATURES, version=s.features_version) == []  # its files survived
    assert copy.damage(FLIGHT_FEATURES, version=unprotected[0])  # an unprotected old version's files are gone
    run = MlflowClient(s.settings.mlflow_tracking_uri).get_run(s.run_id)
    logged = {k: v for k, v in run.data.metrics.items() if k.startswith(("valid_", "test_"))}
    _, metrics = reproduce(copy, registry, s.run_id)
    assert logged and {k: metrics[k] for k in logged} == logged
    # the other tables were maintained too, and nothing is left to vacuum
    assert {r.path for r in reports.values() if r.skipped is None} >= {"bronze/flights", "silver/flights"}
    second = maintain_lake(copy, protected=protected, retention_hours=0)
    assert [(r.path, r.files_compacted, r.files_vacuumed) for r in second if r.files_vacuumed] == []


def test_the_maintenance_job_runs_in_dagster_and_records_its_figures(trained):
    s = trained
    lk = lake(s.settings)
    rewrite_gold(lk, 2)
    before = footprint(lk.location(FLIGHT_FEATURES))
    result = lake_maintenance.execute_in_process(
        resources=build_resources(s.settings),
        instance=s.instance,
        run_config={"ops": {"plan_maintenance": {"config": {"retention_hours": 0}}}},
    )
    assert result.success
    assert result.output_for_node("plan_maintenance")["retention_hours"] == 0
    after = footprint(lk.location(FLIGHT_FEATURES))
    assert after.disk_files < before.disk_files
    assert lk.damage(FLIGHT_FEATURES, version=s.features_version) == []  # the trained-on version is kept

    records = s.instance.fetch_observations(dg.AssetKey(["gold", "flight_features"]), limit=1).records
    meta = {k: v.value for k, v in records[0].asset_observation.metadata.items()}
    assert meta["disk_files_before"] == before.disk_files and meta["disk_files_after"] == after.disk_files
    assert meta["files_vacuumed"] == before.disk_files - after.disk_files >= 1
    assert s.features_version in meta["versions_kept"]
    kept = {*DeltaTable(lk.location(FLIGHT_FEATURES), version=s.features_version).file_uris()}
    assert after.disk_files == len(kept | {*DeltaTable(lk.location(FLIGHT_FEATURES)).file_uris()})  # those two only
    assert meta["retention_hours"] == 0
    bronze = s.instance.fetch_observations(dg.AssetKey(["bronze", "flights"]), limit=1).records[0]
    bronze_meta = {k: v.value for k, v in bronze.asset_observation.metadata.items()}
    assert {"files_before", "files_after", "flights_ingest_log.files_after", "tables"} <= set(bronze_meta)
    rows = result.output_for_node("maintain__silver__flights")
    assert [r["table"] for r in rows] == ["silver/flights", "silver/flights_quarantine"]
    assert DEFAULT_RETENTION_HOURS == 168
    assert Path(lk.location(FLIGHT_FEATURES)).exists()
