"""The distributed profile's Dagster instance: ``docker/dagster.yaml`` loaded as is, on a real PostgreSQL server
(:mod:`lakehouse_tests.servers`), records the runs and materializations of a small real slice in Postgres."""

import shutil
from pathlib import Path

import dagster as dg
import pytest
from dagster._serdes import serialize_value
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from lakehouse.landing import land
from lakehouse.settings import Settings
from lakehouse_tests.helpers import materialize_all
from lakehouse_tests.servers import PG_PASSWORD, PostgresServer

DISTRIBUTED_YAML = Path(__file__).resolve().parents[1] / "docker" / "dagster.yaml"
BRONZE_SILVER = dg.AssetSelection.groups("bronze", "silver")


def dagster_home(tmp_path: Path) -> Path:
    """A ``$DAGSTER_HOME`` holding a byte-for-byte copy of ``docker/dagster.yaml``."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(DISTRIBUTED_YAML, home / "dagster.yaml")
    return home


def test_the_yaml_holds_no_credential():
    text = DISTRIBUTED_YAML.read_text()
    assert "{env: DAGSTER_PG_PASSWORD}" in text
    assert PG_PASSWORD not in text
    assert "password: {env:" in text


def test_runs_and_materializations_are_recorded_in_postgres(
    postgres_server: PostgresServer, postgres_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    for name, value in postgres_server.dagster_env(postgres_db).items():
        monkeypatch.setenv(name, value)
    home = dagster_home(tmp_path)
    settings = Settings.from_env(tmp_path / "data")
    land(settings.landing_dir, months=[1], max_day=1)

    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert instance.is_persistent
        # The ref is what other processes (run workers, Dask workers) get: it names the variables, never the value.
        assert PG_PASSWORD not in serialize_value(instance.get_ref())
        result = materialize_all(settings, instance, selection=BRONZE_SILVER)
    assert result.success
    run_id = result.run_id
    materialized = {e.asset_key for e in result.get_asset_materialization_events() if e.asset_key is not None}
    assert len(materialized) == 10  # bronze and silver of the five sources

    # In Postgres itself ...
    assert postgres_server.query(postgres_db, "SELECT status FROM runs WHERE run_id = %s", run_id) == [("SUCCESS",)]
    rows = postgres_server.query(
        postgres_db,
        "SELECT DISTINCT asset_key FROM event_logs WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'",
        run_id,
    )
    assert {dg.AssetKey.from_db_string(key) for (key,) in rows} == materialized
    leaked = postgres_server.query(
        postgres_db, "SELECT count(*) FROM event_logs WHERE strpos(event, %s) > 0", PG_PASSWORD
    )
    assert leaked == [(0,)]

    # ... and read back by another instance loaded from the same file (what the webserver and daemon do).
    with dg.DagsterInstance.from_config(str(home)) as fresh:
        run = fresh.get_run_by_id(run_id)
        assert run is not None
        assert run.status == dg.DagsterRunStatus.SUCCESS
        for key in materialized:
            event = fresh.get_latest_materialization_event(key)
            assert event is not None
            assert event.run_id == run_id


def test_a_missing_variable_is_named(postgres_server: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for name, value in postgres_server.dagster_env("postgres").items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DAGSTER_PG_PASSWORD")
    with pytest.raises(Exception, match="DAGSTER_PG_PASSWORD"):
        dg.DagsterInstance.from_config(str(dagster_home(tmp_path)))
