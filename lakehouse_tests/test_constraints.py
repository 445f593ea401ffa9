"""Delta CHECK constraints on silver and gold: the last line of defence behind Pandera.

The constraints are derived from the Pandera contracts (one declaration); the tables carry them from creation on,
and an existing table that lacks them gets them on its next write. A writer that bypasses Pandera (a direct
``Lake.merge``/``Lake.append``/``Lake.overwrite`` or even a bare ``write_deltalake``) is refused by the table
itself, on append, overwrite and MERGE (insert and update); through the lake's writes the error names the
constraint. Real flights rows throughout.
"""

from __future__ import annotations

import polars as pl
import pytest
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import DeltaError

from lakehouse import storage
from lakehouse.contracts import CONTRACTS, check_constraints, untranslated_checks
from lakehouse.silver.conform import conform
from lakehouse.sources import SOURCES
from lakehouse.storage import ConstraintViolation
from lakehouse.tables import FLIGHT_FEATURES, ROUTE_DAILY_DELAYS, SILVER, Lake
from lakehouse_tests.helpers import bronze_of

FLIGHTS = SILVER["flights"]


@pytest.fixture(scope="module")
def silver_rows(raw_flights) -> pl.DataFrame:
    """Valid silver flights rows of 2013-01-01 and 2013-02-01 (real, conformed by silver)."""
    day = raw_flights.filter((pl.col("day") == "1") & pl.col("month").is_in(["1", "2"]))
    batch = conform(bronze_of("flights", day), SOURCES["flights"])
    assert batch.quarantine.is_empty()
    return batch.valid


def flat(contract_name: str) -> dict[str, str]:
    return {k: v for checks in check_constraints(CONTRACTS[contract_name]).values() for k, v in checks.items()}


def test_constraints_are_derived_from_every_declarative_check_of_the_contracts():
    flights = check_constraints(CONTRACTS["flights"])
    assert flights["month"] == {
        "month_not_null": '"month" IS NOT NULL',
        "month_in_range_1_12": '"month" >= 1 AND "month" <= 12',
    }
    # a nullable column's bound lets nulls through, as Pandera does (a CHECK refuses a NULL result)
    assert flights["dep_delay"] == {
        "dep_delay_in_range_m60_1440": '"dep_delay" IS NULL OR ("dep_delay" >= -60 AND "dep_delay" <= 1440)'
    }
    assert flights["origin"]["origin_isin_ewr_jfk_lga"] == "\"origin\" IN ('EWR', 'JFK', 'LGA')"
    assert flights["carrier"]["carrier_str_length_2_2"] == "\"carrier\" ~ '(?s)^.{2,2}$'"
    assert flights["distance"]["distance_gt_0"] == '"distance" > 0'
    # every check of every contract has a SQL form, except the one custom check
    assert {name: untranslated_checks(c) for name, c in CONTRACTS.items()} == {
        "flights": ["sched_dep_time:minutes_below_60"],
        "weather": [],
        "planes": [],
        "airports": [],
        "airlines": [],
    }
    # one constraint per non-nullable column and per translated check
    for name, contract in CONTRACTS.items():
        schema = contract.to_schema()
        expected = sum(not c.nullable for c in schema.columns.values()) + sum(
            len(c.checks) for c in schema.columns.values()
        )
        assert len(flat(name)) == expected - len(untranslated_checks(contract))
    # gold: the columns it carries over, not-null only from the driving table (weather/planes are left-joined)
    gold = FLIGHT_FEATURES.check_constraints(["flight_id", "month", "carrier", "temp", "seats", "plane_age"])
    assert "carrier_not_null" in gold and "temp_in_range_m80_135" in gold and "seats_in_range_1_1000" in gold
    assert gold["temp_in_range_m80_135"].startswith('"temp" IS NULL OR')
    assert not any(k.startswith(("plane_age", "flight_id")) for k in gold)


def test_a_silver_table_is_created_with_its_constraints_and_real_rows_pass(tmp_path, silver_rows):
    lake = Lake(str(tmp_path / "lake"))
    lake.merge(FLIGHTS, silver_rows, progress=1)
    assert set(lake.constraints(FLIGHTS)) == set(flat("flights"))
    assert lake.read(FLIGHTS).height == silver_rows.height
    assert lake.consumed_version(FLIGHTS) == 1
    # the table was created empty with its constraints: the first rows were checked too
    operations = [h["operation"] for h in reversed(DeltaTable(lake.location(FLIGHTS)).history())]
    assert operations[:3] == ["WRITE", "ADD CONSTRAINT", "WRITE"]
    # a valid correction still merges (update), and a second write adds no constraint again
    version = lake.version(FLIGHTS)
    corrected = silver_rows.head(3).with_columns(pl.lit(42, dtype=pl.Int32).alias("dep_delay"))
    lake.merge(FLIGHTS, corrected, progress=2)
    assert lake.version(FLIGHTS) == version + 1
    assert lake.read(FLIGHTS).filter(pl.col("dep_delay") == 42).height >= 3


@pytest.mark.parametrize(
    ("column", "value", "constraint"),
    [
        ("month", 13, "month_in_range_1_12"),
        ("origin", "XXX", "origin_isin_ewr_jfk_lga"),
        ("carrier", "aa", "carrier_str_matches_"),
        ("carrier", None, "carrier_not_null"),
        ("dep_delay", 5000, "dep_delay_in_range_m60_1440"),
    ],
)
def test_a_writer_bypassing_pandera_is_refused_by_the_table_naming_the_constraint(
    tmp_path, silver_rows, column, value, constraint
):
    lake = Lake(str(tmp_path / "lake"))
    lake.merge(FLIGHTS, silver_rows, progress=1)
    before = lake.read(FLIGHTS).sort("flight_id")
    version = lake.version(FLIGHTS)
    dtype = silver_rows.schema[column]
    bad_update = silver_rows.head(1).with_columns(pl.lit(value, dtype=dtype).alias(column))  # MERGE: matched row
    bad_insert = bad_update.with_columns(pl.lit("new-flight-id").alias("flight_id"))  # MERGE: inserted row
    for frame in (bad_update, bad_insert):
        with pytest.raises(ConstraintViolation, match=constraint) as refused:
            lake.merge(FLIGHTS, frame, progress=2)
        assert any(name.startswith(constraint) for name in refused.value.violated)
        assert isinstance(refused.value.__cause__, DeltaError)
    with pytest.raises(ConstraintViolation, match=constraint):
        lake.append(FLIGHTS, bad_insert)
    # a bare write_deltalake, outside the lake's code, is refused too (delta-rs does not name the constraint)
    with pytest.raises(DeltaError, match="Invalid data found"):
        write_deltalake(lake.location(FLIGHTS), bad_insert, mode="append")
    # nothing was committed, progress included
    assert lake.version(FLIGHTS) == version and lake.consumed_version(FLIGHTS) == 1
    assert lake.read(FLIGHTS).sort("flight_id").equals(before)


def test_an_existing_table_without_constraints_gets_them_idempotently(tmp_path, silver_rows):
    lake = Lake(str(tmp_path / "lake"))
    location = lake.location(FLIGHTS)
    storage.append(location, silver_rows, partition_by=FLIGHTS.partition_by)  # as written before constraints
    assert lake.constraints(FLIGHTS) == {}
    more = silver_rows.head(5)
    lake.merge(FLIGHTS, more)  # the next write through the lake adds them first
    assert set(lake.constraints(FLIGHTS)) == set(flat("flights"))
    assert storage.ensure_constraints(location, FLIGHTS.check_constraints(silver_rows.columns)) == {
        "added": [],
        "dropped": [],
    }
    # a constraint no longer declared (e.g. an old bound) is dropped, a new one added: names carry the bounds
    DeltaTable(location).alter.add_constraint({"month_in_range_1_6": '"month" >= 1 AND "month" <= 6'})
    assert storage.ensure_constraints(location, FLIGHTS.check_constraints(silver_rows.columns)) == {
        "added": [],
        "dropped": ["month_in_range_1_6"],
    }


def test_existing_rows_that_violate_a_new_constraint_are_named_and_nothing_changes(tmp_path, silver_rows):
    lake = Lake(str(tmp_path / "lake"))
    location = lake.location(FLIGHTS)
    bad = silver_rows.head(2).with_columns(pl.lit(0, dtype=pl.Int32).alias("distance"))
    storage.append(location, pl.concat([silver_rows, bad.with_columns(pl.lit("x").alias("flight_id"))]))
    with pytest.raises(ConstraintViolation, match="distance_gt_0") as refused:
        lake.merge(FLIGHTS, silver_rows.head(1))
    assert refused.value.violated == {"distance_gt_0": 2}
    assert lake.constraints(FLIGHTS) == {}


def test_gold_tables_refuse_rows_that_break_the_contracts_of_the_columns_they_carry(tmp_path, silver_rows):
    lake = Lake(str(tmp_path / "lake"))
    # a gold-shaped frame with the carried columns (real values) and a derived one
    gold = silver_rows.select(
        "flight_id", "flight_date", "sched_dep_utc", "month", "carrier", "origin", "dest", "distance"
    ).with_columns(
        pl.col("flight_date").dt.truncate("1mo").alias("flight_month"),  # the Delta partition column
        pl.lit(None, dtype=pl.Float64).alias("temp"),
        pl.lit(1, dtype=pl.Int8).alias("is_late"),
    )
    lake.overwrite(FLIGHT_FEATURES, gold, inputs={"silver/flights": 0})
    assert "temp_in_range_m80_135" in lake.constraints(FLIGHT_FEATURES)  # null temp (no weather row) passes
    with pytest.raises(ConstraintViolation, match="temp_in_range_m80_135"):
        lake.overwrite(FLIGHT_FEATURES, gold.with_columns(pl.lit(1000.0).alias("temp")), inputs={"silver/flights": 0})
    assert lake.read(FLIGHT_FEATURES).height == gold.height and lake.built_from(FLIGHT_FEATURES) == {
        "silver/flights": 0
    }
    routes = (
        gold.group_by("flight_date", "flight_month", "origin", "dest").len().with_columns(pl.col("len").cast(pl.Int32))
    )
    lake.overwrite(ROUTE_DAILY_DELAYS, routes)
    with pytest.raises(ConstraintViolation, match="origin_isin"):
        lake.overwrite(ROUTE_DAILY_DELAYS, routes.with_columns(pl.lit("BOS").alias("origin")))
