"""The floor: the lakehouse's work done by a bare polars + deltalake + LightGBM script, without Dagster, MLflow or
Pandera. Run by :mod:`benchmarks.run` in its own process on an empty lake::

    python -m benchmarks.floor --landing <landing dir> --lake <empty dir> --out result.json

What it does, stage by stage (each stage reads its input from the Delta tables the previous stage wrote, as the
lakehouse's assets do):

* **bronze**: per source, read every landed CSV as text (``parse_file``), sha256 its bytes, stamp the lineage
  columns (``to_bronze``) and append all files in one Delta commit.
* **silver**: per source, cast to the silver dtypes (``cast_types``, ``derive_flight_times``), flag rows that
  break the silver contract with the rules of :mod:`lakehouse.schemas` written as plain polars expressions
  (:data:`CHECKS`), write them to ``<source>_quarantine``, keep the latest row per natural key
  (``latest_per_key``), add the UUID v5
  surrogate key (``add_surrogate_key``) and write the table (partitioned like the lakehouse; a MERGE if the table
  already exists, a create on an empty lake, which is what the lakehouse's upsert does too).
* **gold**: ``flight_features`` and ``route_daily_delays`` from the silver tables, each overwritten.
* **train**: read the feature view sorted by ``(sched_dep_utc, flight_id)``, split by month, train LightGBM with
  the lakehouse's parameters and early stopping, evaluate on the validation and test months, save the model file.
* **predict**: load the model file, score the flights after the training window, rewrite the predictions table.
* **monitor**: drift of the newest month against the model's training rows, on fixed-seed samples of at most
  100,000 rows each (``sample_rows``; PSI and KS / chi-square per feature, label and prediction,
  ``lakehouse.transforms.drift.drift_report``), appended to ``ml/feature_drift``.

It reuses the pure polars functions of :mod:`lakehouse.transforms` (bronze ``parse_file``/``to_bronze``/
``content_hash``; silver ``cast_types``/``derive_flight_times``/``latest_per_key``/``add_surrogate_key``; all of
gold; training's ``time_split``/``train``/``predict``/``evaluate``; drift's ``sample_rows``/``drift_report``) because they *are* the work. It leaves
out what the lakehouse adds on top: the Dagster run and event log, the ingest log and exactly-once bookkeeping
(Delta ``txn``), Pandera, the quarantine reasons per failed value, the silver key-uniqueness and row-accounting
checks, row counts, schemas and sample tables for asset metadata, MLflow tracking, the model registry and the
champion/challenger decision record, and the plots (PNG) of the model and drift assets.

Note: ``lakehouse.transforms.silver`` imports pandera at module level, so this process imports pandera even
though it never calls it (and ``lakehouse.transforms.drift`` imports scipy, which the work does use); import times
are reported separately by :mod:`benchmarks.run`.
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()

import argparse  # noqa: E402
import atexit  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

import lightgbm as lgb  # noqa: E402
import polars as pl  # noqa: E402
from deltalake import DeltaTable, write_deltalake  # noqa: E402

from benchmarks.measure import RssSampler, StepClock, vm_hwm_bytes, write_json  # noqa: E402
from lakehouse.sources import SOURCES, SourceSpec  # noqa: E402
from lakehouse.transforms import bronze as tb  # noqa: E402
from lakehouse.transforms import drift, gold, training  # noqa: E402
from lakehouse.transforms import silver as ts  # noqa: E402

IMPORT_S = time.perf_counter() - _T0

NYC = ["EWR", "JFK", "LGA"]
SEED = 42  # the lakehouse's training seed (lakehouse.assets.ml.SEED)


def _between(col: str, lo: float, hi: float, nullable: bool = False) -> pl.Expr:
    inside = pl.col(col).is_between(lo, hi)
    return pl.col(col).is_null() | inside if nullable else inside


def _matches(col: str, pattern: str) -> pl.Expr:
    return pl.col(col).str.contains(pattern)


# The silver contracts of lakehouse/schemas.py as polars expressions: True (or null, counted as a failure) per row.
# A non-nullable column fails on null, as in Pandera.
CHECKS: dict[str, dict[str, pl.Expr]] = {
    "flights": {
        "year": _between("year", 1987, 2100), "month": _between("month", 1, 12), "day": _between("day", 1, 31),
        "dep_time": _between("dep_time", 1, 2400, True), "sched_dep_time": _between("sched_dep_time", 0, 2359),
        "dep_delay": _between("dep_delay", -1440, 1440, True), "arr_time": _between("arr_time", 1, 2400, True),
        "sched_arr_time": _between("sched_arr_time", 0, 2400),
        "arr_delay": _between("arr_delay", -1440, 1440, True),
        "carrier": _matches("carrier", r"^[A-Z0-9]{2}$"), "flight": pl.col("flight") >= 1,
        "origin": pl.col("origin").is_in(NYC), "dest": _matches("dest", r"^[A-Z0-9]{3}$"),
        "air_time": pl.col("air_time").is_null() | (pl.col("air_time") > 0), "distance": pl.col("distance") > 0,
        "sched_dep_utc": pl.col("sched_dep_utc").is_not_null(),
        "minutes_below_60": pl.col("sched_dep_time") % 100 < 60,
    },
    "weather": {
        "origin": pl.col("origin").is_in(NYC), "time_hour": pl.col("time_hour").is_not_null(),
        "temp": _between("temp", -80, 135, True), "dewp": _between("dewp", -100, 100, True),
        "humid": _between("humid", 0, 100, True), "wind_dir": _between("wind_dir", 0, 360, True),
        "wind_speed": _between("wind_speed", 0, 250, True), "wind_gust": _between("wind_gust", 0, 250, True),
        "precip": pl.col("precip").is_null() | (pl.col("precip") >= 0),
        "pressure": _between("pressure", 850, 1090, True),
        "visib": pl.col("visib").is_null() | (pl.col("visib") >= 0),
    },
    "planes": {
        "tailnum": _matches("tailnum", r"^N[0-9A-Z]+$"), "year": _between("year", 1900, 2100, True),
        "engines": _between("engines", 0, 8, True), "seats": _between("seats", 1, 1000, True),
    },
    "airports": {
        "faa": _matches("faa", r"^[A-Z0-9]{3,4}$"), "name": pl.col("name").is_not_null(),
        "lat": _between("lat", -90, 90), "lon": _between("lon", -180, 180),
    },
    "airlines": {"carrier": _matches("carrier", r"^[A-Z0-9]{2}$"), "name": pl.col("name").is_not_null()},
}


class Lake:
    """Paths of the floor's Delta tables under one root folder."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def table(self, layer: str, name: str) -> str:
        return str(self.root / layer / name)


def write_table(path: str, frame: pl.DataFrame, key: Sequence[str] = (), partition_by: Sequence[str] = (),
                mode: str = "upsert") -> None:
    """Create the table from ``frame``, or MERGE it on ``key`` (``mode="upsert"``), replace it (``"overwrite"``) or
    append to it (``"append"``)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if mode in ("overwrite", "append") or not DeltaTable.is_deltatable(path):
        write_deltalake(path, frame, mode="overwrite" if mode == "overwrite" else "append",
                        partition_by=list(partition_by) or None)
        return
    predicate = " AND ".join(f"t.{k} = s.{k}" for k in key)
    (DeltaTable(path).merge(frame, predicate=predicate, source_alias="s", target_alias="t")
     .when_matched_update_all().when_not_matched_insert_all().execute())


def bronze_source(spec: SourceSpec, landing: Path, lake: Lake, batch_id: str, now: datetime) -> int:
    """Append every landed file of ``spec`` to ``bronze/<source>``; return the rows written."""
    frames = []
    for path in tb.discover_files(landing / spec.name):
        payload = path.read_bytes()
        frames.append(tb.to_bronze(tb.parse_file(payload, path.name), spec, source_file=path.name,
                                   file_hash=tb.content_hash(payload), batch_id=batch_id, batch_seq=1,
                                   ingested_at=now))
    rows = pl.concat(frames, how="vertical") if frames else tb.empty_bronze(spec)
    write_table(lake.table("bronze", spec.name), rows)
    return rows.height


def silver_source(spec: SourceSpec, lake: Lake, now: datetime) -> dict[str, int]:
    """Bronze -> typed, checked, deduplicated, keyed silver table plus its quarantine; return row counts."""
    bronze = pl.read_delta(lake.table("bronze", spec.name))
    typed = ts.cast_types(bronze, spec)
    if spec.name in ts.DERIVE:
        typed = ts.DERIVE[spec.name](typed)
    failed = pl.concat_str(
        [pl.col("_cast_errors").str.replace_all(r"=[^;]*", "")]
        + [pl.when(~expr.fill_null(False)).then(pl.lit(name)) for name, expr in CHECKS[spec.name].items()],
        separator="; ", ignore_nulls=True,
    )
    typed = typed.with_columns(failed.alias("_failed"))
    bad = typed.get_column("_failed") != ""
    raw_cols = [c for c in bronze.columns if c in spec.columns or c == "_rescued_data"]
    quarantine = bronze.filter(bad).select(
        pl.lit(spec.name).alias("source"), "_source_file", "_content_hash", "_row_number", "_batch_seq",
        typed.get_column("_failed").filter(bad).alias("failed_checks"),
        pl.struct(raw_cols).struct.json_encode().alias("record"),
        pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("quarantined_at"),
    )
    write_table(lake.table("silver", f"{spec.name}_quarantine"), quarantine, ["_content_hash", "_row_number"])
    good = typed.filter(~bad).drop("_cast_errors", "_failed")
    del bronze, typed
    deduped = ts.latest_per_key(good, spec.natural_key)
    derived = [c for c in good.columns if c not in spec.columns and c not in ts.LINEAGE and not c.startswith("_")]
    valid = ts.add_surrogate_key(deduped, spec).select(
        spec.surrogate_key, *spec.columns, *derived, *ts.LINEAGE,
        pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("_updated_at"),
    )
    write_table(lake.table("silver", spec.name), valid, [spec.surrogate_key], spec.partition_by)
    return {"rows": valid.height, "quarantined": quarantine.height}


def read_features(lake: Lake, version: int | None = None) -> pl.DataFrame:
    """The gold feature view (at ``version``, default the latest) in the lakehouse's deterministic row order."""
    return pl.read_delta(lake.table("gold", "flight_features"), version=version).sort("sched_dep_utc", "flight_id")


def load_model(model_dir: Path) -> tuple[lgb.Booster, dict]:
    """The saved booster and what its training recorded (encoding, training window, gold version)."""
    return (lgb.Booster(model_file=str(model_dir / "model.txt")),
            json.loads((model_dir / "meta.json").read_text()))


def monitor(lake: Lake, model_dir: Path) -> float:
    """Drift of the newest month against the model's training rows, as the lakehouse's ``ml/feature_drift``
    computes it (same columns, bins, tests: :func:`lakehouse.transforms.drift.drift_report`); appends the report
    to ``ml/feature_drift`` and returns the largest PSI of a monitored column. Reads the gold table once when the
    model was trained on its current version (the lakehouse reads it twice)."""
    booster, meta = load_model(model_dir)
    latest = read_features(lake)
    ym = pl.col("flight_date").dt.strftime("%Y-%m")
    same = DeltaTable(lake.table("gold", "flight_features")).version() == meta["gold_version"]
    reference = (latest if same else read_features(lake, meta["gold_version"])).filter(ym.is_in(meta["train_months"]))
    current = latest.filter(ym == latest.select(ym.max()).item())
    del latest
    reference, current = (drift.sample_rows(f) for f in (reference, current))
    reference, current = (f.with_columns(pl.Series("prediction", training.predict(booster, f, meta["encoding"]),
                                                   dtype=pl.Float64)) for f in (reference, current))
    numeric = [c for c in training.FEATURES if c not in training.CATEGORICAL]
    report = drift.drift_report(reference, current, numeric=[*numeric, "prediction"],
                                categorical=[*training.CATEGORICAL, training.LABEL],
                                kinds={training.LABEL: "label", "prediction": "prediction"}, exempt=["month"])
    rows = report.with_columns(pl.lit(datetime.now(timezone.utc)).cast(pl.Datetime("us", "UTC")).alias("evaluated_at"))
    write_table(lake.table("ml", "feature_drift"), rows, mode="append")
    return float(report.filter(pl.col("monitored")).get_column("psi").max())


def run(landing_dir: str | Path, lake_dir: str | Path, clock: StepClock) -> dict:
    """Run the five stages (module docstring), timing each unit of work in ``clock``; return sanity figures."""
    landing, lake = Path(landing_dir), Lake(lake_dir)
    now, batch_id = datetime.now(timezone.utc), str(uuid.uuid4())
    out: dict = {}
    for spec in SOURCES.values():
        with clock.step(f"bronze/{spec.name}", "bronze"):
            out[f"bronze_{spec.name}_rows"] = bronze_source(spec, landing, lake, batch_id, now)
    for spec in SOURCES.values():
        with clock.step(f"silver/{spec.name}", "silver"):
            counts = silver_source(spec, lake, now)
        out[f"silver_{spec.name}_rows"] = counts["rows"]
        out[f"silver_{spec.name}_quarantined"] = counts["quarantined"]

    with clock.step("gold/flight_features", "gold"):
        flights = pl.read_delta(lake.table("silver", "flights"))
        features = gold.flight_features(flights, pl.read_delta(lake.table("silver", "weather")),
                                        pl.read_delta(lake.table("silver", "planes")))
        write_table(lake.table("gold", "flight_features"), features, mode="overwrite")
        out["gold_flight_features_rows"] = features.height
        del features, flights
    with clock.step("gold/route_daily_delays", "gold"):
        daily = gold.route_daily_delays(pl.read_delta(lake.table("silver", "flights")))
        write_table(lake.table("gold", "route_daily_delays"), daily, mode="overwrite")
        out["gold_route_daily_delays_rows"] = daily.height
        del daily

    model_dir = lake.root / "model"
    with clock.step("ml/flight_delay_model", "train"):
        gold_path = lake.table("gold", "flight_features")
        gold_version = DeltaTable(gold_path).version()
        split = training.time_split(read_features(lake, gold_version))
        model = training.train(split, seed=SEED)
        valid = training.evaluate(split.valid.get_column(training.LABEL).to_numpy(),
                                  training.predict(model.booster, split.valid, model.encoding))
        test = training.evaluate(split.test.get_column(training.LABEL).to_numpy(),
                                 training.predict(model.booster, split.test, model.encoding))
        model_dir.mkdir(parents=True, exist_ok=True)
        model.booster.save_model(model_dir / "model.txt")
        (model_dir / "meta.json").write_text(json.dumps({
            "encoding": model.encoding, "train_end": str(split.train.get_column("flight_date").max()),
            "train_months": split.train_months, "gold_version": gold_version}))
        out.update(best_iteration=model.best_iteration, train_rows=split.train.height,
                   valid_roc_auc=valid["roc_auc"], test_roc_auc=test["roc_auc"])
        del split, model

    with clock.step("gold/flight_delay_predictions", "predict"):
        booster, meta = load_model(model_dir)
        features = read_features(lake)
        scoring = features.filter(pl.col("flight_date") > pl.lit(meta["train_end"]).str.to_date())
        predictions = scoring.select("flight_id", "flight_date", "sched_dep_utc").with_columns(
            pl.Series("probability", training.predict(booster, scoring, meta["encoding"]), dtype=pl.Float64),
            pl.lit(1, dtype=pl.Int64).alias("model_version"),
            pl.lit(datetime.now(timezone.utc)).cast(pl.Datetime("us", "UTC")).alias("scored_at"),
        )
        write_table(lake.table("gold", "flight_delay_predictions"), predictions, mode="overwrite")
        out["predictions_rows"] = predictions.height
        del features, scoring, predictions

    with clock.step("ml/feature_drift", "monitor"):
        out["max_psi"] = monitor(lake, model_dir)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.floor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--landing", required=True, help="landing zone root (read only)")
    parser.add_argument("--lake", required=True, help="empty folder for the Delta tables")
    parser.add_argument("--out", required=True, help="JSON file for the measurements")
    args = parser.parse_args(argv)
    atexit.register(gc.freeze)  # skip the interpreter's last full GC at exit, as the pipeline does (lakehouse.cli)

    sampler = RssSampler().start()
    clock = StepClock()
    t0 = time.perf_counter()
    checks = run(args.landing, args.lake, clock)
    run_s = time.perf_counter() - t0
    sampler.stop()
    write_json(args.out, {
        "kind": "floor",
        "import_s": IMPORT_S,
        "setup_s": 0.0,
        "run_s": run_s,
        **clock.finish(sampler),
        "vm_hwm_bytes": vm_hwm_bytes(),
        "checks": checks,
    })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
