"""Damage is named and repairable, through the ``lakehouse`` command's entry point (``lakehouse.cli.main``).

A truncated Delta data file is named (table and file) by ``summary`` and ``run`` instead of a Rust panic, and
``lakehouse repair`` moves the damaged tables aside so that the next run rebuilds them from the landing zone to the
same rows. A deleted MLflow database is not silently recreated: ``run`` refuses, and ``repair --forget-models``
restarts the model history so that the decisions table never contradicts the registry.
"""

from __future__ import annotations

import glob
import subprocess
import sys
from pathlib import Path

import pytest

from lakehouse.cli import main
from lakehouse.landing import land
from lakehouse.repair import find_damage
from lakehouse.settings import Settings
from lakehouse.tables import BRONZE, MODEL_DECISIONS, SILVER, Lake

pytestmark = pytest.mark.slow


def cli(*args: str) -> subprocess.CompletedProcess:
    """The console script in a process of its own (the database is deleted between commands, as a user would)."""
    return subprocess.run(
        [str(Path(sys.executable).with_name("lakehouse")), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture
def lakehouse_env(tmp_path, monkeypatch) -> Settings:
    """A data folder with a small real slice landed and run once through ``lakehouse run``."""
    data = tmp_path / "data"
    monkeypatch.setenv("LAKEHOUSE_DATA_DIR", str(data))
    monkeypatch.setenv("DAGSTER_HOME", str(data / "dagster"))
    for name in ("LAKEHOUSE_LANDING_DIR", "LAKEHOUSE_LAKE_DIR", "LAKEHOUSE_MLFLOW_URI", "LAKEHOUSE_MLFLOW_ARTIFACTS"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings.from_env()
    land(settings.landing_dir, months=[1, 2, 3], max_day=2)
    first = cli("run", "--months", "1-3")  # in a process of its own: no MLflow connection left open in this one
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    return settings


def test_a_truncated_file_is_named_and_the_next_run_rebuilds_it(lakehouse_env, capsys):
    settings = lakehouse_env
    lake = Lake(settings.lake_dir)
    silver_before = lake.read(SILVER["flights"]).drop("_ingested_at", "_updated_at").sort("flight_id")
    victim = sorted(Path(lake.location(BRONZE["flights"])).glob("*.parquet"))[0]
    victim.write_bytes(victim.read_bytes()[:1000])
    capsys.readouterr()

    (damage,) = find_damage(lake)
    assert damage.table == BRONZE["flights"] and victim.name in damage.problems[0]
    assert main(["summary"]) == 1
    out = capsys.readouterr()
    assert "bronze/flights" in out.out and "DAMAGED" in out.out and victim.name in out.out
    assert main(["run", "--months", "1-3"]) == 1
    err = capsys.readouterr().err
    assert f"bronze/flights is damaged: {victim}" in err and "lakehouse repair" in err and "Traceback" not in err

    assert main(["repair"]) == 0
    moved = capsys.readouterr().out
    assert "bronze/flights: moved to" in moved and "silver/flights: moved to" in moved
    assert glob.glob(lake.damaged_location(BRONZE["flights"], "*") + "/*.parquet")  # kept, not deleted
    assert main(["run", "--months", "1-3"]) == 0
    assert not find_damage(lake)
    rebuilt = lake.read(SILVER["flights"]).drop("_ingested_at", "_updated_at").sort("flight_id")
    assert rebuilt.drop("_batch_seq").equals(silver_before.drop("_batch_seq"))


def test_a_deleted_tracking_store_is_refused_not_recreated(lakehouse_env):
    settings = lakehouse_env
    db = Path(settings.mlflow_tracking_uri.removeprefix("sqlite:///"))
    db.unlink()
    refused = cli("run", "--months", "1-3")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "is missing but ml/model_decisions records 1 decision(s)" in refused.stderr
    assert not db.exists()  # nothing recreated behind the user's back

    assert cli("repair", "--forget-models").returncode == 0
    rerun = cli("run", "--months", "1-3")
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    decisions = Lake(settings.lake_dir).read(MODEL_DECISIONS)
    assert decisions.select("challenger_version", "outcome").rows() == [(1, "first_champion")]  # one history
    assert decisions.get_column("challenger_version").n_unique() == decisions.height
    assert not find_damage(Lake(settings.lake_dir), settings.mlflow_tracking_uri)
