"""A silver run costs its batch, not the lake (issue #9): its checks read the bronze files of the batches it consumed
and the silver partitions it wrote. Proved by removing the data files of everything else: a run that opened them
would fail. And its memory is bounded by a group of batches: bronze commits one batch per ``max_batch_rows``,
silver MERGEs at most ``max_rows_per_merge`` rows at a time, with the same result as one MERGE."""

from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError

from lakehouse import storage
from lakehouse.bronze.ingest import ingest_source
from lakehouse.landing import land
from lakehouse.settings import Settings
from lakehouse.silver.conform import batch_groups, conform
from lakehouse.sources import SOURCES
from lakehouse.tables import BRONZE, CHANGED_KEY, SILVER, Lake, Landing
from lakehouse_tests.helpers import bronze_of, location, materialize_all, read_table

SELECTION = [dg.AssetKey(["bronze", "flights"]), dg.AssetKey(["silver", "flights"])]


def data_files(table_location: str) -> list[Path]:
    actions = pl.DataFrame(DeltaTable(table_location).get_add_actions(flatten=True))
    return [Path(table_location) / p for p in actions.get_column("path")]


def test_the_second_months_run_reads_neither_the_first_months_bronze_nor_its_silver(tmp_path):
    settings = Settings.from_env(tmp_path / "data")
    land(settings.landing_dir, months=[1], sources=["flights"], max_day=2)
    with dg.instance_for_test() as instance:
        assert materialize_all(settings, instance, selection=SELECTION).success
        bronze, silver = location(settings, "bronze/flights"), location(settings, "silver/flights")
        january = data_files(bronze) + data_files(silver)
        assert january and all("month=1/" in str(p) or "silver" not in str(p) for p in january)
        for path in january:  # January's files are gone: reading them now would fail
            path.rename(path.with_name(path.name + ".aside"))
        land(settings.landing_dir, months=[2], sources=["flights"], max_day=2)
        second = materialize_all(settings, instance, selection=SELECTION)
        for path in january:
            path.with_name(path.name + ".aside").rename(path)
    assert second.success
    checks = {
        e.check_name: (e.passed, {k: v.value for k, v in e.metadata.items()})
        for e in second.get_asset_check_evaluations()
        if e.asset_key == SELECTION[1]
    }
    assert checks["row_accounting"][0] and checks["surrogate_key_unique"][0]
    accounting = checks["row_accounting"][1]
    first, last = accounting["batches_checked"].split("..")
    assert accounting["files_checked"] == 1 and first == last  # February's file, the one new batch, only
    assert accounting["rows_in_silver"] == accounting["rows_read"] > 0
    assert pl.read_delta(silver).height > accounting["rows_read"]  # and January is still there


def test_batch_groups_bound_the_rows_per_merge_and_keep_the_batch_order():
    sizes = pl.DataFrame({"_batch_seq": [4, 2, 3, 5, 6], "rows": [10, 30, 50, 200, 5]})
    assert batch_groups(sizes, 100) == [(2, 4), (5, 5), (6, 6)]  # 90 rows; 200 alone (one file); then 5
    assert batch_groups(sizes, 1) == [(2, 2), (3, 3), (4, 4), (5, 5), (6, 6)]
    assert batch_groups(sizes, 10**9) == [(2, 6)]
    assert batch_groups(sizes.clear(), 100) == []


def ingest_months_as_batches(settings: Settings) -> None:
    """Flights of January to March (day 1) ingested into bronze as three batches, one per file."""
    land(settings.landing_dir, months=[1, 2, 3], sources=["flights"], max_day=1)
    lake = Lake(settings.lake_dir)
    report = ingest_source(lake, Landing(settings.landing_dir), SOURCES["flights"], "b", max_batch_rows=1)
    assert report.batch_seq == 3
    assert dict(report.log.select("file_name", "batch_seq").iter_rows()) == {
        "flights_2013_01.csv": 1,
        "flights_2013_02.csv": 2,
        "flights_2013_03.csv": 3,
    }
    by_file = lake.read(BRONZE["flights"]).group_by("_source_file").agg(pl.col("_batch_seq").unique())
    assert sorted(by_file.rows()) == [(f"flights_2013_0{m}.csv", [m]) for m in (1, 2, 3)]


def test_silver_merges_batches_in_bounded_groups_with_the_result_of_one_merge(tmp_path):
    results = {}
    for cap in (1, 1_000_000):  # one MERGE per batch, or one for all three
        settings = Settings.from_env(tmp_path / str(cap))
        ingest_months_as_batches(settings)
        config = {"ops": {"silver__flights": {"config": {"max_rows_per_merge": cap}}}}
        with dg.instance_for_test() as instance:
            result = materialize_all(settings, instance, selection=SELECTION[1:], run_config=config)
        (materialization,) = [
            e.materialization for e in result.get_asset_materialization_events() if e.asset_key == SELECTION[1]
        ]
        checks = {
            e.check_name: (e.passed, {k: v.value for k, v in e.metadata.items()})
            for e in result.get_asset_check_evaluations()
        }
        history = DeltaTable(location(settings, "silver/flights")).history()
        merges = [h for h in history if CHANGED_KEY in h]  # the commits of Lake.merge (the first creates the table)
        results[cap] = (read_table(settings, "silver/flights"), materialization.metadata, checks, len(merges))
    (bounded, meta_b, checks_b, merges_b), (single, meta_s, checks_s, merges_s) = results[1], results[1_000_000]
    assert (merges_b, merges_s) == (3, 1), "one commit per group of batches"
    assert meta_b["merges"].value == 3 and meta_s["merges"].value == 1
    assert meta_b["consumed_batch_seq"].value == meta_s["consumed_batch_seq"].value == 3
    assert meta_b["rows_inserted"].value == meta_s["rows_inserted"].value == bounded.height > 2000
    assert all(passed for passed, _ in checks_b.values()) and checks_b.keys() == checks_s.keys()
    # the table-wide checks are evaluated after each MERGE, on the partitions it wrote, and their sums reported:
    # one evaluation per group tells the same as one for the whole run
    for name in ("row_accounting", "surrogate_key_unique"):
        assert checks_b[name][1] == checks_s[name][1], name
    assert checks_b["row_accounting"][1]["files_checked"] == 3
    assert checks_b["row_accounting"][1]["rows_in_silver"] == bounded.height
    ignore = ["_updated_at", "_ingested_at"]  # when each lake was written
    assert bounded.drop(ignore).sort("flight_id").equals(single.drop(ignore).sort("flight_id"))


def test_a_month_silver_does_not_hold_yet_is_appended_and_a_held_month_is_merged(tmp_path, raw_flights):
    """A flight's natural key fixes its (year, month) partition, so rows of a month the table does not hold cannot
    match any row: they are appended (one WRITE commit with the progress), which is cheaper than a MERGE; a group
    touching a held month is MERGEd. The rows are those MERGEs would give."""
    spec, table = SOURCES["flights"], SILVER["flights"]

    def rows(month: int, day: int) -> pl.DataFrame:
        day_rows = raw_flights.filter((pl.col("month") == str(month)) & (pl.col("day") == str(day)))
        return conform(bronze_of("flights", day_rows), spec).valid

    jan1, jan2, feb1, mar1 = rows(1, 1), rows(1, 2), rows(2, 1), rows(3, 1)
    lake = Lake(str(tmp_path / "lake"))

    def last_operation() -> str:
        return DeltaTable(lake.location(table)).history(1)[0]["operation"]

    lake.merge(table, jan1, progress=1)
    metrics = lake.merge(table, feb1, progress=2)  # February is new: appended
    assert last_operation() == "WRITE"
    assert (metrics["num_target_rows_inserted"], metrics["num_target_rows_updated"]) == (feb1.height, 0)
    assert lake.consumed_version(table) == 2

    corrected = jan1.head(3).with_columns(pl.lit(42, dtype=pl.Int32).alias("dep_delay"))
    metrics = lake.merge(table, pl.concat([corrected, jan2]), progress=3)  # January is held: MERGE
    assert last_operation() == "MERGE"
    assert (metrics["num_target_rows_inserted"], metrics["num_target_rows_updated"]) == (jan2.height, 3)

    february_again = feb1.head(2).with_columns(pl.lit(7, dtype=pl.Int32).alias("dep_delay"))
    metrics = lake.merge(table, pl.concat([february_again, mar1]), progress=4)  # one held month: MERGE
    assert last_operation() == "MERGE"
    assert (metrics["num_target_rows_inserted"], metrics["num_target_rows_updated"]) == (mar1.height, 2)

    silver = lake.read(table)
    assert silver.height == jan1.height + jan2.height + feb1.height + mar1.height
    assert silver.get_column(spec.surrogate_key).n_unique() == silver.height
    key = spec.surrogate_key
    assert silver.join(corrected.select(key), on=key).get_column("dep_delay").to_list() == [42, 42, 42]
    assert silver.join(february_again.select(key), on=key).get_column("dep_delay").to_list() == [7, 7]
    assert lake.consumed_version(table) == 4


def test_a_writer_that_decided_to_append_a_month_another_writer_added_meanwhile_is_refused(
    tmp_path, raw_flights, monkeypatch
):
    """Two silver writers both find February missing and append it: the second commit, decided on the version
    before the first, carries the same application id as the first and is refused; February is held once."""
    spec, table = SOURCES["flights"], SILVER["flights"]
    jan1, feb1 = (
        conform(bronze_of("flights", raw_flights.filter((pl.col("month") == m) & (pl.col("day") == "1"))), spec).valid
        for m in ("1", "2")
    )
    lake = Lake(str(tmp_path / "lake"))
    lake.merge(table, jan1, progress=1)
    before = storage.open_table(lake.location(table))  # what the second writer read: no February yet
    lake.merge(table, feb1, progress=2)  # the first writer appends February
    monkeypatch.setattr(storage, "open_existing", lambda path: before)
    with pytest.raises(CommitFailedError, match="Concurrent transaction"):
        lake.merge(table, feb1, progress=2)
    monkeypatch.undo()
    assert lake.read(table).height == jan1.height + feb1.height
    assert lake.consumed_version(table) == 2


def test_materialization_metadata_describes_the_table_as_written(tmp_path):
    settings = Settings.from_env(tmp_path / "data")
    land(settings.landing_dir, months=[1], sources=["flights"], max_day=1)
    with dg.instance_for_test() as instance:
        result = materialize_all(settings, instance, selection=SELECTION)
    assert result.success
    lake = Lake(settings.lake_dir)
    spec = SOURCES["flights"]
    for table in (BRONZE["flights"], SILVER["flights"]):
        [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.path == list(table.key)]
        metadata = {k: v.value for k, v in event.materialization.metadata.items()}
        frame, dt = lake.read(table), DeltaTable(lake.location(table))
        assert metadata["dagster/row_count"] == frame.height > 0
        assert metadata["delta_version"] == dt.version()
        columns = metadata["dagster/column_schema"].columns
        assert [(c.name, c.type) for c in columns] == [(n, str(t)) for n, t in frame.schema.items()]
    described = {c.name: c.description for c in columns}  # silver's: its contract describes each column
    assert described["dep_delay"] and "minutes" in described["dep_delay"].lower()
    assert spec.surrogate_key in described and "UUID v5" in described[spec.surrogate_key]
