"""The distributed profile's Dagster instance: ``docker/dagster.yaml`` loaded as is on a real PostgreSQL server
(:mod:`lakehouse_tests.servers`) gives Postgres run, event-log and schedule storage whose ref (what run workers and
Dask workers receive) names the password's variable, never its value. That the daemon's runs of the whole graph
are recorded there is test_distributed_topology.py."""

import shutil
from pathlib import Path

import dagster as dg
import pytest
from dagster._serdes import serialize_value
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

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


def test_the_instance_is_on_postgres_and_its_ref_holds_no_password(
    postgres_server: PostgresServer, postgres_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    for name, value in postgres_server.dagster_env(postgres_db).items():
        monkeypatch.setenv(name, value)
    with dg.DagsterInstance.from_config(str(dagster_home(tmp_path))) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert instance.is_persistent
        assert PG_PASSWORD not in serialize_value(instance.get_ref())
    tables = {t for (t,) in postgres_server.query(postgres_db, "SELECT tablename FROM pg_tables")}
    assert {"runs", "event_logs", "jobs"} <= tables  # the schema was created in that database


def test_a_missing_variable_is_named(postgres_server: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for name, value in postgres_server.dagster_env("postgres").items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DAGSTER_PG_PASSWORD")
    with pytest.raises(Exception, match="DAGSTER_PG_PASSWORD"):
        dg.DagsterInstance.from_config(str(dagster_home(tmp_path)))
