"""The floor: the lakehouse's work done by a bare polars + deltalake + LightGBM script, without Dagster, MLflow or
Pandera. Run by :mod:`benchmarks.run` in its own process on an empty lake::

    python -m benchmarks.floor --landing <landing dir> --lake <empty dir> --out result.json

What it does, stage by stage (each stage reads its input from the Delta tables the previous stage wrote, as the
lakehouse's assets do; every table location comes from the catalogue, :mod:`lakehouse.tables`):

* **bronze**: per source, read every landed CSV as text (``parse_file``), sha256 its bytes, stamp the lineage
  columns (``to_bronze``) and append all files in one Delta commit.
* **silver**: per source, cast to the silver dtypes (``cast_types``, ``derive_flight_times``), flag rows that
  break the source's contract (:mod:`lakehouse.contracts`) with plain polars expressions **derived from that
  contract** (:func:`contract_checks`: nullability and each Pandera check of each column; Pandera's ``validate``
  is never called), write them to ``<source>_quarantine``, keep the latest row per natural key
  (``latest_per_key``), add the UUID v5 surrogate key (``add_surrogate_key``) and write the table (partitioned and
  keyed as the catalogue declares; a MERGE if the table already exists, a create on an empty lake, which is what
  the lakehouse's upsert does too).
* **gold**: ``flight_features`` and ``route_daily_delays`` from the silver tables, each overwritten.
* **train**: read the feature view sorted by ``(sched_dep_utc, flight_id)``, split by month, train LightGBM with
  the lakehouse's parameters and early stopping, evaluate on the validation and test months, save the model file.
* **predict**: load the model file, score every flight (those of the training window flagged), rewrite the
  predictions table.
* **monitor**: drift of the newest month against the model's training rows, on fixed-seed samples of at most
  100,000 rows each (``sample_rows``; PSI and KS / chi-square per feature, label and prediction,
  ``lakehouse.ml.drift.drift_report``), appended to ``ml/feature_drift``.

It reuses the pure polars functions of the lakehouse's layers (:mod:`lakehouse.bronze.parsing`
``parse_file``/``to_bronze``/``content_hash``; :mod:`lakehouse.silver.conform` ``cast_types``/
``derive_flight_times``/``latest_per_key``/``add_surrogate_key``; all of :mod:`lakehouse.gold.features`;
:mod:`lakehouse.ml.training` ``time_split``/``train``/``predict``/``evaluate``; :mod:`lakehouse.ml.drift`
``sample_rows``/``drift_report``) because they *are* the work. It leaves out what the lakehouse adds on top: the
Dagster run and event log, the ingest log and exactly-once bookkeeping (Delta ``txn``), Pandera, the quarantine
reasons per failed value, the silver key-uniqueness and row-accounting checks, row counts, schemas and sample
tables for asset metadata, MLflow tracking, the model registry and the champion/challenger decision record, and
the plots (PNG) of the model and drift assets.

Note: :mod:`lakehouse.contracts` (read here for the checks) and :mod:`lakehouse.silver.conform` import pandera at
module level, so this process imports pandera even though it never validates with it (and
:mod:`lakehouse.ml.drift` imports scipy, which the work does use); import times are reported separately by
:mod:`benchmarks.run`.
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()

import argparse
import atexit
import gc
import json
import re
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import lightgbm as lgb
import polars as pl
from deltalake import DeltaTable, write_deltalake

from benchmarks.measure import RssSampler, StepClock, vm_hwm_bytes, write_json
from lakehouse.bronze import parsing
from lakehouse.gold import features as gold
from lakehouse.ml import drift, training
from lakehouse.silver import conform
from lakehouse.sources import SOURCES, SourceSpec
from lakehouse.tables import (
    BRONZE,
    FEATURE_DRIFT,
    FLIGHT_FEATURES,
    PREDICTIONS,
    QUARANTINE,
    ROUTE_DAILY_DELAYS,
    SILVER,
    Lake,
    Landing,
    Table,
)

IMPORT_S = time.perf_counter() - _T0

SEED = 42  # the lakehouse's training seed: the default of lakehouse.ml.assets.ModelConfig.seed (that module
# imports dagster and mlflow, which the floor must not); a different seed would show as a different best iteration


# ---------------------------------------------------------------- the contracts as polars expressions


def _in_range(col: pl.Expr, s: dict) -> pl.Expr:
    low = col.ge(s["min_value"]) if s.get("include_min", True) else col.gt(s["min_value"])
    high = col.le(s["max_value"]) if s.get("include_max", True) else col.lt(s["max_value"])
    return low & high


def _str_length(col: pl.Expr, s: dict) -> pl.Expr:
    n = col.str.len_chars()
    if s.get("exact_value") is not None:
        return n.eq(s["exact_value"])
    low = n >= s["min_value"] if s.get("min_value") is not None else pl.lit(True)
    high = n <= s["max_value"] if s.get("max_value") is not None else pl.lit(True)
    return low & high


def _str_matches(col: pl.Expr, s: dict) -> pl.Expr:
    pattern = s["pattern"].pattern if isinstance(s["pattern"], re.Pattern) else s["pattern"]
    return col.str.contains("^" + pattern.removeprefix("^"))  # anchored at the start, as Pandera's str_matches


CHECK_EXPRESSIONS: dict[str, Callable[[pl.Expr, dict], pl.Expr]] = {
    # Pandera's built-in checks (pandera.backends.polars.builtin_checks), by Check.name, from Check.statistics
    "in_range": _in_range,
    "isin": lambda col, s: col.is_in(list(s["allowed_values"])),
    "str_matches": _str_matches,
    "str_length": _str_length,
    "greater_than": lambda col, s: col.gt(s["min_value"]),
    "greater_than_or_equal_to": lambda col, s: col.ge(s["min_value"]),
    "less_than": lambda col, s: col.lt(s["max_value"]),
    "less_than_or_equal_to": lambda col, s: col.le(s["max_value"]),
    # custom checks of lakehouse.contracts, by name
    "minutes_below_60": lambda col, s: col % 100 < 60,  # SilverFlights._minutes: HHMM with valid minutes
}
"""Polars expression of each Pandera check the contracts use: ``(column expression, Check.statistics) -> Boolean
expression``. A contract check that is not here stops the floor (:func:`contract_checks`), so the floor cannot
silently check less than the contract."""


def contract_checks(spec: SourceSpec) -> dict[str, pl.Expr]:
    """The checks of ``spec.contract`` as polars expressions, ``{"<check>:<column>": expr}``, named as Pandera names
    them in the pipeline's quarantine (``not_nullable:origin``, ``in_range:dep_delay``). Each expression is True
    where the row passes (a null result is a failure: the caller fills nulls with False).

    Same semantics as Pandera's polars backend: a non-nullable column fails on null (and on NaN for floats); a
    check passes on a null value when its ``ignore_na`` is set (the default), else fails.

    Raises:
        NotImplementedError: the contract has a check :data:`CHECK_EXPRESSIONS` does not know, a dataframe-wide
            check, a uniqueness constraint or an element-wise or grouped check.
    """
    schema = spec.contract.to_schema()
    where = spec.contract.__name__
    if schema.checks or schema.unique:
        raise NotImplementedError(f"{where}: dataframe-wide checks / unique {schema.unique} are not in the floor")
    out: dict[str, pl.Expr] = {}
    for name, column in schema.columns.items():
        col = pl.col(name)
        if column.unique:
            raise NotImplementedError(f"{where}.{name}: unique columns are not in the floor")
        if not column.nullable:
            present = col.is_not_null()
            out[f"not_nullable:{name}"] = present & col.is_not_nan() if column.dtype.type.is_float() else present
        for check in column.checks:
            build = CHECK_EXPRESSIONS.get(check.name)
            if build is None or check.element_wise or check.groupby is not None:
                raise NotImplementedError(
                    f"{where}.{name}: check {check.name!r} ({check.statistics}) has no polars "
                    "expression in benchmarks.floor.CHECK_EXPRESSIONS"
                )
            passed = build(col, check.statistics)
            out[f"{check.name}:{name}"] = passed.fill_null(True) if check.ignore_na else passed
    return out


CHECKS: dict[str, dict[str, pl.Expr]] = {name: contract_checks(spec) for name, spec in SOURCES.items()}
"""Per source, :func:`contract_checks` of its contract."""


# ---------------------------------------------------------------- the stages


def write_table(lake: Lake, table: Table, frame: pl.DataFrame, mode: str = "upsert") -> None:
    """Create ``table`` from ``frame`` (partitioned as the catalogue declares), or MERGE it on the table's
    ``merge_key`` (``mode="upsert"``), replace it (``"overwrite"``) or append to it (``"append"``)."""
    location = lake.location(table)
    Path(location).parent.mkdir(parents=True, exist_ok=True)
    if mode in ("overwrite", "append") or not DeltaTable.is_deltatable(location):
        write_deltalake(
            location,
            frame,
            mode="overwrite" if mode == "overwrite" else "append",
            partition_by=list(table.partition_by) or None,
        )
        return
    predicate = " AND ".join(f"t.{k} = s.{k}" for k in table.merge_key)
    (
        DeltaTable(location)
        .merge(frame, predicate=predicate, source_alias="s", target_alias="t")
        .when_matched_update_all()
        .when_not_matched_insert_all()
        .execute()
    )


def read_table(lake: Lake, table: Table, version: int | None = None) -> pl.DataFrame:
    return pl.read_delta(lake.location(table), version=version)


def bronze_source(spec: SourceSpec, landing: Landing, lake: Lake, batch_id: str, now: datetime) -> int:
    """Append every landed file of ``spec`` to ``bronze/<source>``; return the rows written."""
    frames = []
    for path in parsing.discover_files(Path(landing.source_dir(spec.name))):
        payload = path.read_bytes()
        frames.append(
            parsing.to_bronze(
                parsing.parse_file(payload, path.name),
                spec,
                source_file=path.name,
                file_hash=parsing.content_hash(payload),
                batch_id=batch_id,
                batch_seq=1,
                ingested_at=now,
            )
        )
    rows = pl.concat(frames, how="vertical") if frames else parsing.empty_bronze(spec)
    write_table(lake, BRONZE[spec.name], rows, mode="append")
    return rows.height


def silver_source(spec: SourceSpec, lake: Lake, now: datetime) -> dict[str, int]:
    """Bronze -> typed, checked, deduplicated, keyed silver table plus its quarantine; return row counts."""
    bronze = read_table(lake, BRONZE[spec.name])
    typed = conform.cast_types(bronze, spec)
    if spec.name in conform.DERIVE:
        typed = conform.DERIVE[spec.name](typed)
    failed = pl.concat_str(
        [pl.col("_cast_errors").str.replace_all(r"=[^;]*", "")]
        + [pl.when(~expr.fill_null(False)).then(pl.lit(name)) for name, expr in CHECKS[spec.name].items()],
        separator="; ",
        ignore_nulls=True,
    )
    typed = typed.with_columns(failed.alias("_failed"))
    bad = typed.get_column("_failed") != ""
    raw_cols = [c for c in bronze.columns if c in spec.columns or c == "_rescued_data"]
    quarantine = bronze.filter(bad).select(
        pl.lit(spec.name).alias("source"),
        "_source_file",
        "_content_hash",
        "_row_number",
        "_batch_seq",
        typed.get_column("_failed").filter(bad).alias("failed_checks"),
        pl.struct(raw_cols).struct.json_encode().alias("record"),
        pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("quarantined_at"),
    )
    write_table(lake, QUARANTINE[spec.name], quarantine)
    good = typed.filter(~bad).drop("_cast_errors", "_failed")
    del bronze, typed
    deduped = conform.latest_per_key(good, spec.natural_key)
    derived = [c for c in good.columns if c not in spec.columns and c not in conform.LINEAGE and not c.startswith("_")]
    valid = conform.add_surrogate_key(deduped, spec).select(
        spec.surrogate_key,
        *spec.columns,
        *derived,
        *conform.LINEAGE,
        pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("_updated_at"),
    )
    write_table(lake, SILVER[spec.name], valid)
    return {"rows": valid.height, "quarantined": quarantine.height}


def read_features(lake: Lake, version: int | None = None) -> pl.DataFrame:
    """The gold feature view (at ``version``, default the latest) in the lakehouse's deterministic row order."""
    return read_table(lake, FLIGHT_FEATURES, version).sort("sched_dep_utc", "flight_id")


def load_model(model_dir: Path) -> tuple[lgb.Booster, dict]:
    """The saved booster and what its training recorded (encoding, training window, gold version)."""
    return (lgb.Booster(model_file=str(model_dir / "model.txt")), json.loads((model_dir / "meta.json").read_text()))


def monitor(lake: Lake, model_dir: Path) -> float:
    """Drift of every month against the model's training rows, as the lakehouse's ``ml/feature_drift`` computes it
    on its first run (same columns, bins, tests: :func:`lakehouse.ml.drift.drift_report`; the reference read and
    scored once); appends the reports to ``ml/feature_drift`` and returns the largest PSI of a monitored column
    in the newest month. Reads the gold table once when the model was trained on its current version."""
    booster, meta = load_model(model_dir)
    latest = read_features(lake)
    ym = pl.col("flight_date").dt.strftime("%Y-%m")
    same = lake.version(FLIGHT_FEATURES) == meta["gold_version"]
    reference = (latest if same else read_features(lake, meta["gold_version"])).filter(ym.is_in(meta["train_months"]))
    reference = drift.sample_rows(reference)
    reference = reference.with_columns(
        pl.Series("prediction", training.predict(booster, reference, meta["encoding"]), dtype=pl.Float64)
    )
    numeric = [c for c in training.FEATURES if c not in training.CATEGORICAL]
    reports = []
    by_month = latest.with_columns(ym.alias("_ym")).partition_by("_ym", as_dict=True, include_key=False)
    for _, month in sorted(by_month.items()):
        current = drift.sample_rows(month)
        current = current.with_columns(
            pl.Series("prediction", training.predict(booster, current, meta["encoding"]), dtype=pl.Float64)
        )
        reports.append(
            drift.drift_report(
                reference,
                current,
                numeric=[*numeric, "prediction"],
                categorical=[*training.CATEGORICAL, training.LABEL],
                kinds={training.LABEL: "label", "prediction": "prediction"},
                exempt=["month"],
            )
        )
    del latest
    report = reports[-1]
    rows = pl.concat(reports).with_columns(
        pl.lit(datetime.now(UTC)).cast(pl.Datetime("us", "UTC")).alias("evaluated_at")
    )
    write_table(lake, FEATURE_DRIFT, rows, mode="append")
    return float(report.filter(pl.col("monitored")).get_column("psi").max())


def run(landing_dir: str | Path, lake_dir: str | Path, clock: StepClock, train_window_months: int = 0) -> dict:
    """Run the five stages (module docstring), timing each unit of work in ``clock``; return sanity figures.
    ``train_window_months``: the months training reads (:func:`lakehouse.ml.training.window_months`)."""
    landing, lake = Landing(str(Path(landing_dir).resolve())), Lake(str(Path(lake_dir).resolve()))
    now, batch_id = datetime.now(UTC), str(uuid.uuid4())
    out: dict = {}
    for spec in SOURCES.values():
        with clock.step(BRONZE[spec.name].path, "bronze"):
            out[f"bronze_{spec.name}_rows"] = bronze_source(spec, landing, lake, batch_id, now)
    for spec in SOURCES.values():
        with clock.step(SILVER[spec.name].path, "silver"):
            counts = silver_source(spec, lake, now)
        out[f"silver_{spec.name}_rows"] = counts["rows"]
        out[f"silver_{spec.name}_quarantined"] = counts["quarantined"]

    with clock.step(FLIGHT_FEATURES.path, "gold"):
        flights = read_table(lake, SILVER["flights"])
        features = gold.flight_features(
            flights, read_table(lake, SILVER["weather"]), read_table(lake, SILVER["planes"])
        )
        write_table(lake, FLIGHT_FEATURES, features, mode="overwrite")
        out["gold_flight_features_rows"] = features.height
        del features, flights
    with clock.step(ROUTE_DAILY_DELAYS.path, "gold"):
        daily = gold.route_daily_delays(read_table(lake, SILVER["flights"]))
        write_table(lake, ROUTE_DAILY_DELAYS, daily, mode="overwrite")
        out["gold_route_daily_delays_rows"] = daily.height
        del daily

    model_dir = Path(lake_dir) / "model"  # not a table: the floor's stand-in for the MLflow model registry
    with clock.step("ml/flight_delay_model", "train"):
        gold_version = lake.version(FLIGHT_FEATURES)
        features = read_features(lake, gold_version)
        months = features.select(pl.col("flight_date").dt.strftime("%Y-%m").unique()).to_series().to_list()
        window = training.window_months(months, train_window_months)
        split = training.time_split(features.filter(pl.col("flight_date").dt.strftime("%Y-%m").is_in(window)))
        del features
        model = training.train(split, seed=SEED)  # params default to training.DEFAULT_PARAMS, as ModelConfig's
        valid = training.evaluate(
            split.valid.get_column(training.LABEL).to_numpy(),
            training.predict(model.booster, split.valid, model.encoding),
        )
        test = training.evaluate(
            split.test.get_column(training.LABEL).to_numpy(),
            training.predict(model.booster, split.test, model.encoding),
        )
        model_dir.mkdir(parents=True, exist_ok=True)
        model.booster.save_model(model_dir / "model.txt")
        (model_dir / "meta.json").write_text(
            json.dumps(
                {
                    "encoding": model.encoding,
                    "train_end": str(split.train.get_column("flight_date").max()),
                    "train_months": split.train_months,
                    "gold_version": gold_version,
                }
            )
        )
        out.update(
            seed=SEED,
            best_iteration=model.best_iteration,
            train_rows=split.train.height,
            valid_roc_auc=valid["roc_auc"],
            test_roc_auc=test["roc_auc"],
        )
        del split, model

    with clock.step(PREDICTIONS.path, "predict"):
        booster, meta = load_model(model_dir)
        features = read_features(lake)  # every flight is scored, as the lakehouse's first scoring run does
        scoring = features
        predictions = scoring.select("flight_id", "flight_date", "flight_month", "sched_dep_utc").with_columns(
            pl.Series("probability", training.predict(booster, scoring, meta["encoding"]), dtype=pl.Float64),
            (pl.col("flight_date") <= pl.lit(meta["train_end"]).str.to_date()).alias("in_training_window"),
            pl.lit(1, dtype=pl.Int64).alias("model_version"),
            pl.lit(datetime.now(UTC)).cast(pl.Datetime("us", "UTC")).alias("scored_at"),
        )
        write_table(lake, PREDICTIONS, predictions, mode="overwrite")
        out["predictions_rows"] = predictions.height
        del features, scoring, predictions

    with clock.step(FEATURE_DRIFT.path, "monitor"):
        out["max_psi"] = monitor(lake, model_dir)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.floor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--landing", required=True, help="landing zone root (read only)")
    parser.add_argument("--lake", required=True, help="empty folder for the Delta tables")
    parser.add_argument("--out", required=True, help="JSON file for the measurements")
    parser.add_argument(
        "--train-window-months",
        type=int,
        default=0,
        help="train on the newest N training months (plus validation and test), as the model's "
        "train_window_months; 0 = every month",
    )
    args = parser.parse_args(argv)
    atexit.register(gc.freeze)  # skip the interpreter's last full GC at exit, as the pipeline does (lakehouse.cli)

    sampler = RssSampler().start()
    clock = StepClock()
    t0 = time.perf_counter()
    checks = run(args.landing, args.lake, clock, args.train_window_months)
    run_s = time.perf_counter() - t0
    sampler.stop()
    write_json(
        args.out,
        {
            "kind": "floor",
            "import_s": IMPORT_S,
            "setup_s": 0.0,
            "run_s": run_s,
            **clock.finish(sampler),
            "vm_hwm_bytes": vm_hwm_bytes(),
            "checks": checks,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
