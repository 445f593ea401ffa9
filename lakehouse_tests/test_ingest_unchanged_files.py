"""A bronze run costs the new files, not the landing zone (issue #9): a file whose name and fingerprint (size and
change time) the ingest log holds is skipped unread; a file rewritten in place, even with its size and mtime kept,
is read again; a file changed just before the run is not trusted by its fingerprint until a later run reads it
again and records it."""

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from lakehouse.bronze.ingest import LOG_SCHEMA, RACY_SECONDS, ingest_source, read_log
from lakehouse.bronze.parsing import discover
from lakehouse.folders import LocalFolder
from lakehouse.landing import land
from lakehouse.settings import Settings
from lakehouse.sources import SOURCES
from lakehouse.tables import BRONZE, INGEST_LOG, Lake, Landing
from lakehouse_tests.helpers import spy_reads

SPEC = SOURCES["flights"]


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """The names of the landed files read from now on."""
    return spy_reads(monkeypatch, LocalFolder)


def later() -> datetime:
    """A run's start time once the files landed so far have settled."""
    return datetime.now(UTC) + timedelta(seconds=RACY_SECONDS + 1)


def test_logged_files_are_skipped_unread_and_a_rewritten_one_is_read_again(tmp_path, reads):
    settings = Settings.from_env(tmp_path)
    land(settings.landing_dir, months=[1, 2, 3], sources=["flights"], max_day=1)
    lake, landing = Lake(settings.lake_dir), Landing(settings.landing_dir)
    first = ingest_source(lake, landing, SPEC, "b1", now=later())
    assert first.count("ingested") == 3 and len(reads) == 3
    assert first.log.get_column("file_version").null_count() == 0

    reads.clear()
    again = ingest_source(lake, landing, SPEC, "b2", now=later())
    assert reads == [] and again.log.is_empty() and again.batch_seq == first.batch_seq

    # February corrected in place: same size, mtime set back; only its ctime (which no user can set) moved.
    path = Path(landing.source("flights").path("flights_2013_02.csv"))
    before = path.stat()
    text = path.read_text(encoding="utf-8")
    corrected = text.replace(",UA,", ",AA,", 1)
    assert corrected != text and len(corrected) == len(text)
    path.write_text(corrected, encoding="utf-8")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size and path.stat().st_mtime_ns == before.st_mtime_ns
    fixed = ingest_source(lake, landing, SPEC, "b3", now=later())
    assert reads == ["flights_2013_02.csv"]
    assert fixed.log.select("file_name", "status").rows() == [("flights_2013_02.csv", "ingested")]
    bronze = lake.read(BRONZE["flights"]).filter(pl.col("_source_file") == "flights_2013_02.csv")
    assert bronze.get_column("_content_hash").n_unique() == 2  # both versions, for silver to upsert over the old


def test_a_file_changed_just_before_the_run_is_read_once_more_then_skipped(tmp_path, reads):
    settings = Settings.from_env(tmp_path)
    land(settings.landing_dir, months=[1], sources=["flights"], max_day=1)
    lake, landing = Lake(settings.lake_dir), Landing(settings.landing_dir)
    first = ingest_source(lake, landing, SPEC, "b1", now=datetime.now(UTC))  # landed a moment ago: racy
    assert first.count("ingested") == 1 and first.log.get_column("file_version").to_list() == [None]
    again = ingest_source(lake, landing, SPEC, "b2", now=later())
    assert reads == ["flights_2013_01.csv"] * 2  # read again, and found in the log by its content
    assert again.log.is_empty() and again.batch_seq == first.batch_seq
    log = read_log(lake, SPEC)
    (entry,) = discover(landing.source("flights"))
    assert log.get_column("file_version").to_list() == [entry.fingerprint]  # now trusted: recorded on its row
    assert log.drop("file_version").rows() == first.log.drop("file_version").rows()  # and nothing else changed
    reads.clear()
    third = ingest_source(lake, landing, SPEC, "b3", now=later())
    assert reads == [] and third.log.is_empty()  # skipped from the listing from now on


def test_a_log_written_before_fingerprints_reads_them_as_null(tmp_path, reads):
    settings = Settings.from_env(tmp_path)
    land(settings.landing_dir, months=[1], sources=["flights"], max_day=1)
    lake, landing = Lake(settings.lake_dir), Landing(settings.landing_dir)
    ingest_source(lake, landing, SPEC, "b1", now=later())
    old = lake.read(INGEST_LOG["flights"]).drop("file_version")
    lake.overwrite(INGEST_LOG["flights"], old)  # the log as an older release wrote it
    assert read_log(lake, SPEC).schema == LOG_SCHEMA
    again = ingest_source(lake, landing, SPEC, "b2", now=later())
    assert again.log.is_empty() and reads == ["flights_2013_01.csv"] * 2  # hashed, not ingested twice
    assert read_log(lake, SPEC).get_column("file_version").to_list() == [None]  # no column to record it in yet
    land(settings.landing_dir, months=[2], sources=["flights"], max_day=1)
    reads.clear()
    ingest_source(lake, landing, SPEC, "b3", now=later())  # appends rows with the column to the old log
    assert sorted(reads) == ["flights_2013_01.csv", "flights_2013_02.csv"]
    versions = dict(read_log(lake, SPEC).select("file_name", "file_version").iter_rows())
    assert versions["flights_2013_01.csv"] is not None and versions["flights_2013_02.csv"] is not None
    assert read_log(lake, SPEC).height == 2
