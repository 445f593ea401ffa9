"""The landing zone on object storage (``s3://bucket/landing``, a real moto server): ``lakehouse land`` writes
objects; the landing sensor lists the prefix and takes an object once unchanged since its previous look; bronze
ingests each object exactly once by content, copies a rejected object with its reason beside it, and never
deletes from the landing zone. Real flights files throughout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from lakehouse.bronze.ingest import ingest_source
from lakehouse.bronze.sensors import build_landing_sensor
from lakehouse.folders import ObjectFolder
from lakehouse.landing import land
from lakehouse.resources import LakehouseStorage
from lakehouse.sources import SOURCES
from lakehouse.tables import BRONZE, INGEST_LOG, Lake, Landing
from lakehouse_tests.helpers import spy_reads
from lakehouse_tests.object_store import S3Server, list_keys

LAKEHOUSE = str(Path(sys.executable).with_name("lakehouse"))


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> S3Server:
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # a location taken for a local path would show up here
    return s3_server


def csv_bytes(frame: pl.DataFrame) -> bytes:
    return frame.write_csv().encode()


def test_lakehouse_land_writes_objects_into_an_s3_landing_zone(s3_env, s3_bucket, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "DAGSTER_"))}
    env["LAKEHOUSE_DATA_DIR"] = str(tmp_path / "data")
    by_option = subprocess.run(
        [LAKEHOUSE, "land", "--months", "2", "--max-day", "1", "--sources", "flights,airlines", "--landing-dir",
         f"s3://{s3_bucket}/by-option"],
        env=env, capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert by_option.returncode == 0, by_option.stderr
    assert by_option.stdout.splitlines() == [
        f"landed s3://{s3_bucket}/by-option/flights/flights_2013_02.csv",
        f"landed s3://{s3_bucket}/by-option/airlines/airlines.csv",
    ]
    by_setting = subprocess.run(
        [LAKEHOUSE, "land", "--months", "2", "--max-day", "1", "--sources", "airlines"],
        env={**env, "LAKEHOUSE_LANDING_DIR": f"s3://{s3_bucket}/by-setting"},
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert by_setting.returncode == 0, by_setting.stderr
    assert list_keys(s3_env, s3_bucket) == [
        "by-option/airlines/airlines.csv",
        "by-option/flights/flights_2013_02.csv",
        "by-setting/airlines/airlines.csv",
    ]
    assert not (tmp_path / "s3:").exists()
    written = Landing(f"s3://{s3_bucket}/by-option").source("flights").read("flights_2013_02.csv")
    month = pl.read_csv(written, infer_schema=False)
    assert set(month.get_column("day")) == {"1"} and set(month.get_column("month")) == {"2"}


def tick(sensor, instance, storage, cursor=None):
    return sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources={"storage": storage}))


def files_of(result) -> list[list[str]]:
    return [r.run_config["ops"]["bronze__flights"]["config"]["files"] for r in result.run_requests]


def test_the_sensor_takes_an_object_once_it_is_unchanged_since_its_previous_look(s3_env, s3_bucket, raw_flights):
    root = f"s3://{s3_bucket}/landing"
    storage = LakehouseStorage(landing_dir=root, lake_dir=f"s3://{s3_bucket}/lake")
    folder = Landing(root).source("flights")
    for i in range(3):
        folder.write(f"part_{i}.csv", csv_bytes(raw_flights.slice(i * 20, 20)))
    folder.write("being_uploaded.csv.part", b"year,month\n2013,")
    folder.write(".hidden.csv", b"x")
    Landing(root).source("flights/sub").write("nested.csv", csv_bytes(raw_flights.head(3)))  # not directly inside
    sensor = build_landing_sensor(settle_seconds=3600.0)  # the settle time is for local files only
    with dg.instance_for_test() as instance:
        first = tick(sensor, instance, storage)
        assert not first.run_requests  # first look: seen, not yet known to be stable
        flights = json.loads(first.cursor)["flights"]
        assert flights[:2] == [0, []] and sorted(flights[2]) == ["part_0.csv", "part_1.csv", "part_2.csv"]
        second = tick(sensor, instance, storage, first.cursor)
        assert files_of(second) == [["part_0.csv", "part_1.csv", "part_2.csv"]]
        ns, _, unstable, recent = json.loads(second.cursor)["flights"]
        assert not unstable  # nothing pending; the objects taken are remembered for the late window
        assert sorted(recent) == ["part_0.csv", "part_1.csv", "part_2.csv"] and max(recent.values()) == ns
        third = tick(sensor, instance, storage, second.cursor)
        assert not third.run_requests

        folder.write("late.csv", csv_bytes(raw_flights.slice(100, 5)))
        fourth = tick(sensor, instance, storage, third.cursor)
        assert not fourth.run_requests
        folder.write("late.csv", csv_bytes(raw_flights.slice(100, 9)))  # still being rewritten: changed since
        fifth = tick(sensor, instance, storage, fourth.cursor)
        assert not fifth.run_requests
        sixth = tick(sensor, instance, storage, fifth.cursor)
        assert files_of(sixth) == [["late.csv"]]
        assert not tick(sensor, instance, storage, sixth.cursor).run_requests


def test_an_object_visible_only_after_the_cursor_passed_its_time_is_still_taken(s3_env, s3_bucket, raw_flights):
    """What a server that stamps an object with its upload's start does (module docstring of
    lakehouse.bronze.sensors): the cursor is already past ``late.csv``'s last-modified time when the sensor first
    sees it. Taken once, within the late window; an object older than the window is not offered."""
    root = f"s3://{s3_bucket}/landing"
    storage = LakehouseStorage(landing_dir=root, lake_dir=f"s3://{s3_bucket}/lake")
    folder = Landing(root).source("flights")
    folder.write("early.csv", csv_bytes(raw_flights.slice(0, 20)))
    folder.write("late.csv", csv_bytes(raw_flights.slice(20, 20)))
    times = {e.name: e.changed_ns for e in folder.entries()}
    later = max(times.values()) + 60 * 10**9  # a minute after both: what the cursor holds once newer objects passed
    past_both = json.dumps({"flights": [later, ["newer.csv"], {}, {"early.csv": times["early.csv"]}]})
    sensor = build_landing_sensor(late_window_seconds=3600.0)
    with dg.instance_for_test() as instance:
        first = tick(sensor, instance, storage, past_both)
        assert not first.run_requests  # seen late, now looked at once like any object
        second = tick(sensor, instance, storage, first.cursor)
        assert files_of(second) == [["late.csv"]]  # early.csv was handled: the cursor remembers it
        ns, names, _, recent = json.loads(second.cursor)["flights"]
        assert (ns, names) == (later, ["newer.csv"]) and set(recent) == {"early.csv", "late.csv"}
        assert not tick(sensor, instance, storage, second.cursor).run_requests  # once
        assert not tick(sensor, instance, storage, tick(sensor, instance, storage, second.cursor).cursor).run_requests

        narrow = build_landing_sensor(late_window_seconds=30.0)  # the objects are 60 s behind: outside the window
        first = tick(narrow, instance, storage, past_both)
        assert not first.run_requests and not tick(narrow, instance, storage, first.cursor).run_requests


def test_bronze_ingests_objects_exactly_once_and_copies_rejected_ones(s3_env, s3_bucket, raw_flights, monkeypatch):
    landing, lake = Landing(f"s3://{s3_bucket}/landing"), Lake(f"s3://{s3_bucket}/lake")
    spec = SOURCES["flights"]
    folder = landing.source("flights")
    good = raw_flights.slice(0, 50)
    folder.write("a.csv", csv_bytes(good))
    folder.write("same_as_a.csv", csv_bytes(good))
    bad = csv_bytes(raw_flights.slice(50, 10).drop("carrier"))  # a required column missing: the whole file
    folder.write("no_carrier.csv", bad)
    first = ingest_source(lake, landing, spec, batch_id="b1")
    assert dict(first.log.select("file_name", "status").iter_rows()) == {
        "a.csv": "ingested",
        "no_carrier.csv": "rejected",
        "same_as_a.csv": "duplicate",
    }
    assert lake.read(BRONZE["flights"]).height == 50
    versions = {e.name: e.version for e in folder.entries()}
    assert dict(first.log.select("file_name", "file_version").iter_rows()) == versions  # size and ETag
    reads = spy_reads(monkeypatch, ObjectFolder)
    again = ingest_source(lake, landing, spec, batch_id="b2")
    assert again.log.is_empty() and lake.read(BRONZE["flights"]).height == 50  # exactly once
    assert reads == []  # and from the listing alone: no object read again
    assert lake.read(INGEST_LOG["flights"]).height == 3

    rejected = landing.rejected("flights")
    assert rejected.read("no_carrier.csv") == bad  # copied intact
    reason = json.loads(rejected.read("no_carrier.csv.reason.json"))
    assert reason["file_name"] == "no_carrier.csv" and "carrier" in reason["detail"]
    keys = list_keys(s3_env, s3_bucket, "landing/")
    assert keys == [  # nothing deleted from the landing zone
        "landing/_rejected/flights/no_carrier.csv",
        "landing/_rejected/flights/no_carrier.csv.reason.json",
        "landing/flights/a.csv",
        "landing/flights/no_carrier.csv",
        "landing/flights/same_as_a.csv",
    ]


def test_land_into_s3_writes_the_same_bytes_as_into_a_folder(s3_env, s3_bucket, tmp_path):
    local = land(str(tmp_path / "landing"), months=[3], sources=["flights"], max_day=1)
    remote = land(f"s3://{s3_bucket}/landing", months=[3], sources=["flights"], max_day=1)
    assert remote == [f"s3://{s3_bucket}/landing/flights/flights_2013_03.csv"]
    local_bytes = Path(local[0]).read_bytes()
    assert Landing(f"s3://{s3_bucket}/landing").source("flights").read("flights_2013_03.csv") == local_bytes


def test_a_folder_behaves_the_same_on_disk_and_on_s3(s3_env, s3_bucket, tmp_path_factory):
    from lakehouse.folders import LocalFolder, ObjectFolder, open_folder

    local_root = str(tmp_path_factory.mktemp("zone"))
    for root in (local_root, f"s3://{s3_bucket}/zone"):
        source, copies = open_folder(f"{root}/in"), open_folder(f"{root}/out")
        assert isinstance(source, ObjectFolder if root.startswith("s3://") else LocalFolder)
        assert source.entries() == [] and not source.exists("b.csv")
        assert source.write("b.csv", b"x,y\n1,2\n") == f"{root}/in/b.csv"
        source.write("a.csv", b"x\n")
        open_folder(f"{root}/in/deeper").write("c.csv", b"x\n")  # not directly in `in`
        assert [(e.name, e.size) for e in source.entries()] == [("a.csv", 2), ("b.csv", 8)]
        assert source.exists("b.csv") and source.read("b.csv") == b"x,y\n1,2\n"
        assert copies.copy_in(source, "b.csv") == f"{root}/out/b.csv"
        assert copies.read("b.csv") == b"x,y\n1,2\n" and source.exists("b.csv")  # a copy, not a move
        with pytest.raises(FileNotFoundError):
            source.read("missing.csv")
        version = {e.name: e.version for e in source.entries()}
        source.write("a.csv", b"xy\n")  # replaced whole
        after = {e.name: e for e in source.entries()}
        assert after["a.csv"].size == 3
        if root.startswith("s3://"):
            assert after["a.csv"].version != version["a.csv"] and after["b.csv"].version == version["b.csv"]
        else:
            assert version == {"a.csv": None, "b.csv": None}
