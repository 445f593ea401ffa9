"""A silver run costs its batch, not the lake (issue #9): its checks read the bronze files of the batches it consumed
and the silver partitions it wrote. Proved by removing the data files of everything else: a run that opened them
would fail."""

from pathlib import Path

import dagster as dg
import polars as pl
from deltalake import DeltaTable

from lakehouse.landing import land
from lakehouse.settings import Settings
from lakehouse_tests.helpers import location, materialize_all

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
