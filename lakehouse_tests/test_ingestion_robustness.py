"""Messy landing zones converge: every row accounted for, nothing counted twice, crashes survived."""

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from lakehouse import storage
from lakehouse.landing import land
from lakehouse.settings import Settings
from lakehouse_tests.helpers import landing_folder, location, materialize_all, rejected_folder

pytestmark = pytest.mark.slow

FLIGHTS_LAYERS = [dg.AssetKey(["bronze", "flights"]), dg.AssetKey(["silver", "flights"])]


def run_flights(settings: Settings, instance: dg.DagsterInstance, **kw) -> dg.ExecuteInProcessResult:
    return materialize_all(settings, instance, selection=FLIGHTS_LAYERS, **kw)


def checks_of(result, asset: str) -> dict[str, dict]:
    return {
        e.check_name: {"passed": e.passed, **{k: v.value for k, v in e.metadata.items()}}
        for e in result.get_asset_check_evaluations()
        if e.asset_key.to_user_string() == asset
    }


def test_a_mixed_folder_converges(tmp_path, raw_flights):
    settings = Settings.from_env(tmp_path)
    folder = landing_folder(settings, "flights")
    folder.mkdir(parents=True)
    jan = raw_flights.filter(pl.col("month") == "1")
    good = {  # file name -> rows that must all reach silver
        "plain.csv": jan.slice(0, 100),
        "with_bom.csv": jan.slice(100, 100),
        "reordered_extra.csv": jan.slice(200, 100)
        .with_columns(pl.lit("x").alias("note"))
        .select(["note", *reversed(jan.columns)]),
        "compressed.csv.gz": jan.slice(300, 100),
        "columnar.parquet": jan.slice(400, 100),
        "lines.ndjson": jan.slice(500, 100),
    }
    good["plain.csv"].write_csv(folder / "plain.csv")
    (folder / "with_bom.csv").write_bytes(b"\xef\xbb\xbf" + good["with_bom.csv"].write_csv().encode())
    good["reordered_extra.csv"].write_csv(folder / "reordered_extra.csv")
    (folder / "compressed.csv.gz").write_bytes(gzip.compress(good["compressed.csv.gz"].write_csv().encode()))
    good["columnar.parquet"].write_parquet(folder / "columnar.parquet")
    good["lines.ndjson"].write_ndjson(folder / "lines.ndjson")
    # Same bytes as plain.csv under a new name: a duplicate, never ingested twice.
    (folder / "plain_copy.csv").write_bytes((folder / "plain.csv").read_bytes())
    # Bad values quarantine their rows, not the file.
    typed_bad = jan.slice(600, 10).with_columns(
        pl.when(pl.int_range(pl.len()) < 3).then(pl.lit("soon")).otherwise(pl.col("dep_delay")).alias("dep_delay")
    )
    typed_bad.write_csv(folder / "typed_bad.csv")
    # A file cut off mid-row keeps its good rows; only the cut line is quarantined, with its line number.
    # Files rejected whole: corrupt gzip, Latin-1, a required column missing.
    full = jan.slice(700, 50).write_csv().encode()
    (folder / "truncated.csv").write_bytes(full[: len(full) // 2])
    (folder / "corrupt.csv.gz").write_bytes(gzip.compress(full)[:200])
    latin = jan.slice(750, 5).with_columns(pl.lit("N\u00e9W").alias("tailnum")).write_csv().encode("latin-1")
    (folder / "latin1.csv").write_bytes(latin)
    jan.slice(800, 5).drop("carrier").write_csv(folder / "no_carrier.csv")
    rejected_names = {"corrupt.csv.gz", "latin1.csv", "no_carrier.csv"}

    with dg.instance_for_test() as instance:
        result = run_flights(settings, instance, raise_on_error=False)
        silver = pl.read_delta(location(settings, "silver/flights"))
        quarantine = pl.read_delta(location(settings, "silver/flights_quarantine"))
        log = pl.read_delta(location(settings, "bronze/flights_ingest_log"))
        status = dict(log.select("file_name", "status").iter_rows())

        for name, rows in good.items():
            assert status[name] == "ingested"
            assert silver.filter(pl.col("_source_file") == name).height == rows.height, name
        assert status["plain_copy.csv"] == "duplicate"
        assert silver.filter(pl.col("_source_file") == "typed_bad.csv").height == 7
        typed_q = quarantine.filter(pl.col("_source_file") == "typed_bad.csv")
        assert typed_q.get_column("_row_number").sort().to_list() == [1, 2, 3]
        assert all("dep_delay is not a valid value: soon" in r for r in typed_q["reason"])
        assert status["truncated.csv"] == "ingested"
        assert silver.filter(pl.col("_source_file") == "truncated.csv").height == 24
        cut = quarantine.filter(pl.col("_source_file") == "truncated.csv")
        assert cut.select("_row_number", "failed_checks").rows() == [(25, "parse:truncated")]
        assert "line 26" in cut["reason"][0] and "cut off" in cut["reason"][0]
        assert {n for n, s in status.items() if s == "rejected"} == rejected_names
        rejected_dir = rejected_folder(settings, "flights")
        for name in rejected_names:
            assert (rejected_dir / name).read_bytes() == (folder / name).read_bytes()  # kept intact
            assert (folder / name).exists()  # and never removed from the landing zone
            reason = json.loads((rejected_dir / f"{name}.reason.json").read_text())
            assert reason["reason"] in {"truncated", "unreadable", "encoding", "missing_columns"}
        assert json.loads((rejected_dir / "latin1.csv.reason.json").read_text())["reason"] == "encoding"
        assert checks_of(result, "silver/flights")["row_accounting"]["passed"]
        assert not checks_of(result, "bronze/flights")["no_rejected_files"]["passed"]

        # Landing the same folder again changes nothing.
        silver_version = storage.consumed_version(location(settings, "silver/flights"), "silver.flights")
        run_flights(settings, instance, raise_on_error=False)
        assert pl.read_delta(location(settings, "bronze/flights_ingest_log")).height == log.height
        assert storage.consumed_version(location(settings, "silver/flights"), "silver.flights") == silver_version


def test_a_crash_between_bronze_commit_and_ingest_log_does_not_double_count(tmp_path, monkeypatch):
    settings = Settings.from_env(tmp_path)
    land(settings.landing_dir, months=[1, 2], sources=["flights"], max_day=2)
    original_append = storage.append

    def crash_on_log(path, frame, **kw):
        if path.endswith("_ingest_log"):
            raise SystemExit("simulated crash after the bronze commit")
        return original_append(path, frame, **kw)

    with dg.instance_for_test() as instance:
        monkeypatch.setattr(storage, "append", crash_on_log)
        with pytest.raises(BaseException, match="simulated crash"):
            run_flights(settings, instance)
        monkeypatch.setattr(storage, "append", original_append)
        assert not storage.table_exists(location(settings, "bronze/flights_ingest_log"))
        result = run_flights(settings, instance)
        bronze = pl.read_delta(location(settings, "bronze/flights"))
        landed = sum(
            pl.read_csv(p, infer_schema=False).height for p in landing_folder(settings, "flights").glob("*.csv")
        )
        assert bronze.height == landed
        log = pl.read_delta(location(settings, "bronze/flights_ingest_log"))
        assert log.height == 2 and set(log["reason"]) == {"recovered from bronze after an interrupted run"}
        assert checks_of(result, "silver/flights")["row_accounting"]["passed"]


KILLABLE_RUN = """
import sys, dagster as dg
from lakehouse.definitions import ALL_ASSETS, ALL_CHECKS
from lakehouse.resources import build_resources
from lakehouse.settings import Settings
settings = Settings.from_env(sys.argv[1])
keys = [dg.AssetKey(["bronze", "flights"]), dg.AssetKey(["silver", "flights"])]
dg.materialize([*ALL_ASSETS, *ALL_CHECKS], selection=keys, resources=build_resources(settings),
               instance=dg.DagsterInstance.ephemeral())
"""


def final_state(settings: Settings) -> tuple:
    silver = pl.read_delta(location(settings, "silver/flights"))
    bronze = pl.read_delta(location(settings, "bronze/flights"))
    return bronze.height, silver.height, silver.get_column("flight_id").sort().to_list()


@pytest.mark.parametrize("kill_when", ["bronze_written", "silver_written"])
def test_kill_9_mid_run_converges_to_the_uninterrupted_state(tmp_path, kill_when):
    reference = Settings.from_env(tmp_path / "reference")
    crashed = Settings.from_env(tmp_path / "crashed")
    for s in (reference, crashed):
        land(s.landing_dir, months=[1, 2, 3], sources=["flights"])
    with dg.instance_for_test() as instance:
        run_flights(reference, instance)
    expected = final_state(reference)

    watch = Path(location(crashed, "bronze/flights" if kill_when == "bronze_written" else "silver/flights"))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLABLE_RUN, str(crashed.landing_dir).rsplit("/", 1)[0]],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if watch.exists() and any(watch.glob("**/*.parquet")):  # data files are being written
            break
        time.sleep(0.005)
    killed = proc.poll() is None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert killed, "the run finished before it could be killed"

    for layer in ("bronze", "silver"):  # every table is readable right after the crash
        path = location(crashed, f"{layer}/flights")
        if storage.table_exists(path):
            pl.read_delta(path)
    with dg.instance_for_test() as instance:
        result = run_flights(crashed, instance)
    assert final_state(crashed) == expected
    assert checks_of(result, "silver/flights")["row_accounting"]["passed"]
