"""What a person sees when they run ``lakehouse run``: the real console script, in a process of its own, on a small
real slice (3 months x 2 days).

* Default mode: per run (``ingest``, ``gold_months`` for the stale months, ``ml``, ``scoring`` for the months to
  score; lakehouse.pipeline) a header
  and one progress line per asset (each asset of the three jobs named exactly once, in the order the steps finish,
  with the table's rows from the materialization metadata and the step's seconds), the runs' status and the
  summary; no Dagster DEBUG line, no beta/preview warning, no MLflow INFO line.
* ``--verbose``: Dagster's own event log (DEBUG lines) and the library warnings are printed as well.
* A failing step prints its error in its progress line, says where the full log is (the run id and ``lakehouse
  ui``) and exits with status 1; the steps it stopped are named once each as not run (on a two-asset job too,
  in-process, where the failure is the first step's).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from pathlib import Path

import dagster as dg
import pytest

from lakehouse.definitions import defs
from lakehouse.progress import QUIET_RUN_CONFIG, RunProgress
from lakehouse.settings import Settings
from lakehouse.tables import BY_PATH, Lake
from lakehouse_tests.cli_slice import CliSlice, lakehouse

PROGRESS = re.compile(r"^\[\s*(\d+)/(\d+)\] (\S+)\s+(\S+)(.*)$")
NOISE = (" - DEBUG - ", "BetaWarning", "PreviewWarning", " INFO mlflow", "Traceback")


def progress_lines(out: str) -> list[tuple[int, int, str, str, str]]:
    """``(n, total, status, asset, rest)`` of every progress line."""
    return [
        (int(m[1]), int(m[2]), m[3], m[4], m[5]) for line in out.splitlines() if (m := PROGRESS.match(line)) is not None
    ]


HEADER = re.compile(r"^Run [0-9a-f-]{36}: (\d+) steps \(job (\S+)\)$")
GOLD = {"gold/flight_features", "gold/route_daily_delays"}


def job_assets(*names: str) -> set[str]:
    """The assets of the jobs ``names`` (default: the four jobs of ``lakehouse run``)."""
    out = set()
    for name in names or ("ingest", "gold_months", "ml", "scoring"):
        out |= {k.to_user_string() for k in defs.resolve_job_def(name).asset_layer.executable_asset_keys}
    return out


def runs_printed(out: str) -> list[tuple[str, int, list[int]]]:
    """``(job, steps announced, numbers of the progress lines that followed)`` per run header."""
    sections: list[tuple[str, int, list[int]]] = []
    for line in out.splitlines():
        if (header := HEADER.match(line)) is not None:
            sections.append((header[2], int(header[1]), []))
        elif (m := PROGRESS.match(line)) is not None and sections:
            sections[-1][2].append(int(m[1]))
    return sections


@pytest.fixture
def first_run(cli_slice: CliSlice) -> tuple[Path, subprocess.CompletedProcess]:
    """A data folder with the slice landed and run once in the default mode (shared: lakehouse_tests/cli_slice.py)."""
    return cli_slice.data_dir, cli_slice.run


def test_default_run_prints_one_line_per_asset_and_no_library_noise(first_run):
    data_dir, run = first_run
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    lines = progress_lines(run.stdout)
    assets = [asset for _, _, _, asset, _ in lines]
    assert sorted(assets) == sorted(job_assets())  # every asset of the four jobs, each exactly once
    sections = runs_printed(run.stdout)
    assert [job for job, *_ in sections] == ["ingest", "gold_months", "ml", "scoring"]
    assert all(numbers == list(range(1, steps + 1)) for _, steps, numbers in sections)
    assert {status for _, _, status, *_ in lines} == {"ok"}
    assert all(re.search(r"\d+\.\d s", rest) for *_, rest in lines)  # seconds on every finished step
    rows = Lake(Settings.from_env(data_dir).lake_dir).read(BY_PATH["silver/flights"]).height
    (flights,) = [rest for *_, asset, rest in lines if asset == "silver/flights"]
    assert f"{rows:,} rows" in flights and f"(+{rows:,})" in flights  # from the materialization metadata
    assert assets.index("ml/flight_delay_model") < assets.index("ml/champion")  # in the order the steps finish

    console = run.stdout + run.stderr
    assert not [noise for noise in NOISE if noise in console], console[:3000]
    assert re.search(r"Runs [0-9a-f-]{36}, [0-9a-f-]{36}, [0-9a-f-]{36}, [0-9a-f-]{36} succeeded in", run.stdout)
    assert "Champion model: flight_delay_lgbm v1" in run.stdout  # the summary follows


def test_verbose_prints_dagster_event_log_and_warnings_as_well(first_run):
    data_dir, _ = first_run
    run = lakehouse(data_dir, "run", "--months", "1-3", "--verbose")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    console = run.stdout + run.stderr
    debug = [line for line in console.splitlines() if " - DEBUG - " in line]
    assert any("STEP_START" in line for line in debug) and any("RUN_SUCCESS" in line for line in debug)
    assert len(debug) > 50
    assert "BetaWarning" in console  # silenced only in the default mode
    # nothing new landed: no gold month is stale and no month to score, so neither a gold nor a scoring run
    assert sorted(asset for *_, asset, _ in progress_lines(run.stdout)) == sorted(job_assets("ingest", "ml"))


def test_a_failing_step_is_named_with_its_error_and_where_the_full_log_is(cli_slice: CliSlice, tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(cli_slice.data_dir, data_dir, symlinks=True)  # a copy: the shared folder stays as it is
    assert lakehouse(data_dir, "land", "--months", "4", "--max-day", "2").returncode == 0  # a challenger to train
    shutil.rmtree(Settings.from_env(data_dir).mlflow_artifact_location)  # the champion's files are gone
    run = lakehouse(data_dir, "run", "--months", "1-4")  # the model step cannot load the champion to compare
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]
    lines = {asset: (status, rest) for _, _, status, asset, rest in progress_lines(run.stdout)}
    # still every asset of the runs once: the failed one and those that did not run; no scoring run after it
    assert set(lines) == job_assets("ingest", "gold_months", "ml")
    failed = [asset for asset, (status, _) in lines.items() if status == "FAILED"]
    assert failed and all(a.startswith("ml/") for a in failed), run.stdout
    assert all("MlflowException: No such artifact" in lines[a][1] for a in failed)  # the error, in one line
    assert {status for status, _ in lines.values()} <= {"ok", "FAILED", "--"}
    run_id = re.search(r"Runs [0-9a-f-]{36}, [0-9a-f-]{36}, ([0-9a-f-]{36}) FAILED in", run.stdout)  # the ml run
    assert run_id is not None, run.stdout
    assert f"http://127.0.0.1:3000/runs/{run_id[1]}" in run.stdout and "lakehouse ui" in run.stdout
    console = run.stdout + run.stderr
    assert " - DEBUG - " not in console and "Traceback" not in console


def test_the_steps_a_failure_stopped_are_named_once_each():
    @dg.asset
    def upstream() -> None:
        raise ValueError("the landing zone is empty\nsecond line of detail")

    @dg.asset(deps=[upstream])
    def downstream() -> None: ...

    job = dg.Definitions(assets=[upstream, downstream], jobs=[dg.define_asset_job("j")]).resolve_job_def("j")
    lines: list[str] = []
    run_id = str(uuid.uuid4())
    with dg.DagsterInstance.ephemeral() as instance:
        progress = RunProgress(job, echo=lines.append)
        progress.listen(instance, run_id)
        result = job.execute_in_process(
            instance=instance, run_id=run_id, raise_on_error=False, run_config=QUIET_RUN_CONFIG
        )
        progress.finish()
        assert any(e.dagster_event_type == dg.DagsterEventType.STEP_FAILURE for e in instance.all_logs(run_id))
    assert not result.success
    assert [progress_lines(line)[0][2:4] for line in lines] == [("FAILED", "upstream"), ("--", "downstream")]
    assert lines[0].endswith("ValueError: the landing zone is empty") and "not run" in lines[1]
    assert progress.failed == ["upstream"]


@pytest.mark.parametrize("folder", ["my data", "données", "lake#1"])
def test_a_data_folder_polars_cannot_read_delta_tables_under_is_refused_in_one_line(
    tmp_path, monkeypatch, capsys, folder
):
    from lakehouse.cli import main

    data = tmp_path / folder / "data"
    monkeypatch.setenv("LAKEHOUSE_DATA_DIR", str(data))
    assert main(["run", "--months", "1-3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "polars cannot read Delta tables" in err and "LAKEHOUSE_DATA_DIR" in err
    assert not (tmp_path / folder).exists()  # nothing written
