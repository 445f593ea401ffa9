"""A data folder that was moved keeps working (``lakehouse/relocation.py``).

* Through the real ``lakehouse`` command: a small real lake with a registered champion is copied elsewhere and the
  original renamed away (so a stale absolute path fails loudly instead of being used); from the copy, ``lakehouse
  summary`` names the move, ``lakehouse run`` on a newly landed month says what it updated, loads the champion,
  scores it on the new holdout, registers the challenger and records the decision as usual; no location in the
  MLflow store points at the old folder, which nothing recreated.
* On a real MLflow store (no pipeline): the rewrite is one transaction (a store it cannot fully rewrite is left
  untouched), only whole path components under the old folder move, and artifacts configured outside the data
  folder are refused in one line instead of guessed.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import mlflow
import polars as pl
import pytest
from mlflow.data.delta_dataset_source import DeltaDatasetSource
from mlflow.tracking import MlflowClient

from lakehouse.relocation import LOCATIONS, Move, RelocationProblem, find_move, moved, relocate_if_moved
from lakehouse.resources import ensure_experiment
from lakehouse.settings import Settings
from lakehouse.tables import BY_PATH, MODEL_DECISIONS, Lake
from lakehouse_tests.cli_slice import CliSlice

LAKEHOUSE = str(Path(sys.executable).with_name("lakehouse"))
MODEL = "flight_delay_lgbm"


def lakehouse(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "DAGSTER_"))}
    env.update(LAKEHOUSE_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
    done = subprocess.run([LAKEHOUSE, *args], env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"lakehouse {' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def stored_locations(db: Path) -> list[str]:
    """Every value of the location columns of the MLflow store."""
    with sqlite3.connect(db) as con:
        return [
            str(value)
            for table, _, column, _ in LOCATIONS
            for (value,) in con.execute(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL")
        ]


def test_a_moved_data_folder_runs_through_the_cli_with_its_champion(tmp_path, cli_slice: CliSlice):
    original = cli_slice.data_dir  # landed and run once by the CLI (shared, so it is put back at the end)
    assert cli_slice.run.returncode == 0, cli_slice.run.stdout[-3000:] + cli_slice.run.stderr[-3000:]

    data = tmp_path / "elsewhere" / "deeper" / "data-copy"
    shutil.copytree(original, data, symlinks=True)
    gone = original.with_name("data.gone")
    original.rename(gone)  # a stale path now points at nothing
    try:
        moved_copy_runs(original, data)
    finally:
        gone.rename(original)


def moved_copy_runs(original: Path, data: Path) -> None:
    """What a person sees running a copy of ``original`` (renamed away) from ``data``."""
    summary = lakehouse(data, "summary")
    assert f"The data folder moved from {original}" in summary.stdout
    assert f"Champion model: {MODEL} v1" in summary.stdout

    lakehouse(data, "land", "--months", "4", "--max-day", "2")
    run = lakehouse(data, "run", "--months", "1-4")
    assert f"the data folder moved from {original} to {data}: updated" in run.stdout
    assert "Run " in run.stdout and " succeeded" in run.stdout

    settings = Settings.from_env(data)
    lake = Lake(settings.lake_dir)
    latest = lake.read(MODEL_DECISIONS).sort("decided_at").row(-1, named=True)
    assert latest["holdout_month"] == "2013-04" and latest["challenger_version"] == 2
    assert latest["champion_version_before"] == 1 and latest["champion_score"] is not None  # champion loaded, scored
    assert latest["outcome"] in ("promoted", "refused")
    predictions = lake.read(BY_PATH["gold/flight_delay_predictions"])
    champion = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri).get_model_version_by_alias(
        MODEL, "champion"
    )
    april = predictions.filter(pl.col("flight_month").dt.month() == 4)  # the new month, scored by the champion
    assert april.height > 0 and april.get_column("model_version").unique().to_list() == [int(champion.version)]

    db = Path(settings.mlflow_tracking_uri.removeprefix("sqlite:///"))
    locations = stored_locations(db)
    assert not [v for v in locations if str(original) in v or original.as_uri() in v]
    assert any(data.as_uri() in v for v in locations)
    assert not original.exists()  # nothing was written to the old place
    assert "moved from" not in lakehouse(data, "summary").stdout  # said once, done

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)  # any MLflow client loads the champion from the copy
    try:
        model = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
    finally:
        mlflow.set_tracking_uri(None)
    assert model.metadata.get_input_schema() is not None


@pytest.fixture
def small_store(tmp_path) -> tuple[Settings, str]:
    """A real MLflow store in a data folder: the lakehouse experiment, one run with an artifact and a dataset."""
    settings = Settings.from_env(tmp_path / "data")
    ensure_experiment(settings.mlflow_tracking_uri, "lakehouse_flights", settings.mlflow_artifact_location)
    client = MlflowClient(settings.mlflow_tracking_uri)
    experiment = client.get_experiment_by_name("lakehouse_flights")
    run = client.create_run(experiment.experiment_id)
    note = tmp_path / "note.txt"
    note.write_text("kept")
    client.log_artifact(run.info.run_id, str(note))
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    try:
        with mlflow.start_run(run_id=run.info.run_id):
            frame = pl.DataFrame({"a": [1.0, 2.0]}).to_pandas()
            source = DeltaDatasetSource(
                path=str(Path(settings.lake_dir) / "gold" / "flight_features"), delta_table_version=1
            )
            mlflow.log_input(mlflow.data.from_pandas(frame, source=source, name="features"), context="training")
    finally:
        mlflow.set_tracking_uri(None)
    return settings, run.info.run_id


def test_the_rewrite_is_one_transaction_and_reads_artifacts_from_the_new_folder(small_store, tmp_path):
    _, run_id = small_store
    new_data = tmp_path / "moved" / "data"
    shutil.copytree(tmp_path / "data", new_data)
    shutil.rmtree(tmp_path / "data")
    moved_settings = Settings.from_env(new_data)
    db = Path(moved_settings.mlflow_tracking_uri.removeprefix("sqlite:///"))
    before = stored_locations(db)

    with sqlite3.connect(db) as con:  # a schema the rewrite does not know: it must change nothing at all
        con.execute("ALTER TABLE datasets RENAME TO datasets_elsewhere")
    with pytest.raises(RelocationProblem, match=r"has no datasets\.dataset_source"):
        relocate_if_moved(new_data, moved_settings.mlflow_tracking_uri, moved_settings.mlflow_artifact_location)
    with sqlite3.connect(db) as con:
        con.execute("ALTER TABLE datasets_elsewhere RENAME TO datasets")
    assert stored_locations(db) == before  # the experiment and runs rows, rewritten first, were rolled back

    done = relocate_if_moved(new_data, moved_settings.mlflow_tracking_uri, moved_settings.mlflow_artifact_location)
    assert done is not None and done.move == Move(old=(tmp_path / "data").resolve(), new=new_data.resolve())
    assert done.counts["experiments.artifact_location"] == 1 and done.counts["runs.artifact_uri"] == 1
    assert done.counts["datasets.dataset_source"] == 1
    old, new = (tmp_path / "data").resolve(), new_data.resolve()
    after = stored_locations(db)
    assert not [v for v in after if str(old) in v or old.as_uri() in v]
    assert len([v for v in after if str(new) in v or new.as_uri() in v]) == 3  # experiment, run, dataset
    client = MlflowClient(moved_settings.mlflow_tracking_uri)
    path = client.download_artifacts(run_id, "note.txt", str(tmp_path))
    assert Path(path).read_text() == "kept"
    assert (
        relocate_if_moved(new_data, moved_settings.mlflow_tracking_uri, moved_settings.mlflow_artifact_location) is None
    )


def test_only_whole_path_components_under_the_old_folder_move():
    move = Move(old=Path("/srv/data"), new=Path("/mnt/new data"))
    assert moved("file:///srv/data/mlflow/artifacts/1", move) == "file:///mnt/new%20data/mlflow/artifacts/1"
    assert moved("/srv/data/lake/gold/x", move) == "/mnt/new data/lake/gold/x"
    assert moved("file:///srv/data", move) == "file:///mnt/new%20data"
    assert moved("file:///srv/data2/mlflow", move) is None  # another folder that starts alike
    assert moved("models:/m-123", move) is None
    assert moved("s3://bucket/srv/data/x", move) is None


def test_artifacts_configured_outside_the_data_folder_are_refused_not_guessed(small_store, tmp_path):
    settings, _ = small_store
    elsewhere = tmp_path / "artifacts-elsewhere"
    with pytest.raises(RelocationProblem, match="LAKEHOUSE_MLFLOW_ARTIFACTS="):
        find_move(tmp_path / "data", settings.mlflow_tracking_uri, str(elsewhere))
    assert find_move(tmp_path / "data", settings.mlflow_tracking_uri, settings.mlflow_artifact_location) is None
