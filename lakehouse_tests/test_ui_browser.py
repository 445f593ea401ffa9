"""The Dagster UI, used the way a person does: headless Chromium (Debian's ``/usr/bin/chromium``, driven by
Playwright) against ``lakehouse ui`` on a free loopback port, with a temporary data folder holding a small real
slice of the flights (days 1-3 of January-March 2013: train, validate, holdout).

The test opens the lineage graph, clicks **Materialize all**, picks **All** months in the partition dialog (the
gold months are partitioned) and launches the backfill of the year, waits for it and every run it started to
succeed, sees the twelve months on ``gold/flight_features``' partitions page, then opens
``ml/flight_delay_model``: its checks (the blocking gate and the ROC-AUC floor warning, with the explanation of why
that warning is red on a slice), the drift warning on ``ml/feature_drift``, and a plot behind its ``[Show Markdown]``
link, checked to be shown at its natural, legible size.

Screenshots of each step are written to the test's temporary folder; with ``LAKEHOUSE_UPDATE_SCREENSHOTS=1`` they
are also copied to ``docs/images/`` (the README shows them), so an ordinary run never rewrites tracked files.

The daemon's sensors are stopped before the slice lands (lakehouse_tests/browser.py): otherwise the landing sensor,
the automation, the gold, scoring and retraining sensors would start runs of their own beside the one launched
from the UI. Fixture
and process handling: lakehouse_tests/browser.py. A missing Chromium fails the test in one line saying how to
install it; it is never skipped.
"""

from __future__ import annotations

import os
import shutil
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, ViewportSize, expect, sync_playwright

from lakehouse.landing import land
from lakehouse.ml.checks import CHALLENGER_NOT_WORSE, NO_SIGNIFICANT_DRIFT, ROC_AUC_FLOOR, TEST_ROC_AUC_FLOOR
from lakehouse_tests.browser import CHROMIUM_ARGS, REPO_ROOT, UiServer, chromium_or_fail, lakehouse_ui

SLICE_MONTHS = [1, 2, 3]  # the fewest the model's time split accepts: train, validate, holdout
SLICE_MAX_DAY = 3
VIEWPORT: ViewportSize = {"width": 1600, "height": 900}
SCREENSHOTS = REPO_ROOT / "docs" / "images"
UPDATE_SCREENSHOTS = "LAKEHOUSE_UPDATE_SCREENSHOTS"
LEGIBLE_PLOT_WIDTH = 700  # px: at least this wide at natural size (the old 80-dpi plots were 376-455 px)

# Failure bounds, not expected durations (the run takes ~35 s alone on 2 cores).
RUN_TIMEOUT_S = 300.0
UI_TIMEOUT_MS = 60_000


@pytest.fixture
def ui(tmp_path: Path) -> Iterator[UiServer]:
    """``lakehouse ui`` on a temporary data folder; its log is printed at teardown (pytest shows it on failure)."""
    chromium_or_fail()  # before paying for the server
    with lakehouse_ui(tmp_path) as server:
        try:
            yield server
        finally:
            print(f"--- lakehouse ui log (tail) ---\n{server.log_tail(20_000)}")


@pytest.fixture
def page(ui: UiServer, tmp_path: Path) -> Iterator[Page]:
    """A fresh Chromium page (no stored state, so a first-visit modal would show); the last view is saved to
    ``<tmp>/last-page.png`` at teardown (its path is printed, shown on failure)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium_or_fail()), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=VIEWPORT)
            context.set_default_timeout(UI_TIMEOUT_MS)
            tab = context.new_page()
            try:
                yield tab
            finally:
                last = tmp_path / "last-page.png"
                try:
                    tab.screenshot(path=last)
                    print(f"last page: {tab.url} (screenshot {last})")
                except Exception as err:  # the page may be gone; the report must still be printed
                    print(f"no screenshot of the last page: {err}")
        finally:
            browser.close()


def save(page: Page, tmp_path: Path, name: str) -> Path:
    """Screenshot of the viewport as ``<tmp>/<name>``, copied to docs/images/ when updating screenshots."""
    path = tmp_path / name
    page.screenshot(path=path)
    if os.environ.get(UPDATE_SCREENSHOTS) == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SCREENSHOTS / name)
    return path


def png_size(path: Path) -> tuple[int, int]:
    """Width and height of a PNG, from its IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def community_modal_shown(page: Page) -> bool:
    """Whether the "Join the Dagster community" modal is up (after giving it a moment); dismissed if so."""
    modal = page.get_by_text("Join the Dagster community")
    try:
        modal.first.wait_for(state="visible", timeout=3_000)
    except Exception:
        return False
    page.keyboard.press("Escape")
    return True


BACKFILLS_QUERY = """
query Backfills {
  partitionBackfillsOrError {
    __typename
    ... on PartitionBackfills { results { id status numPartitions tags { key value } } }
  }
}
"""
BACKFILL_DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


def backfills(ui: UiServer) -> list[dict]:
    result = ui.graphql(BACKFILLS_QUERY)["partitionBackfillsOrError"]
    assert result["__typename"] == "PartitionBackfills", result
    return result["results"]


def launched_backfill(ui: UiServer, before: set[str]) -> dict:
    """The backfill the UI launched, once it exists (exactly one per click)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        new = [b for b in backfills(ui) if b["id"] not in before]
        if new:
            assert len(new) == 1, f"one click launched {len(new)} backfills: {new}"
            return new[0]
        time.sleep(0.5)
    pytest.fail("no backfill was launched within 60 s of clicking Launch backfill")


def wait_for_backfill(ui: UiServer, backfill_id: str) -> str:
    """Poll the instance (GraphQL) until the backfill ends; its final status."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        [backfill] = [b for b in backfills(ui) if b["id"] == backfill_id]
        if backfill["status"] in BACKFILL_DONE:
            return backfill["status"]
        time.sleep(1)
    pytest.fail(f"backfill {backfill_id} not finished after {RUN_TIMEOUT_S:.0f} s:\n{ui.log_tail()}")


def backfill_runs(ui: UiServer, backfill_id: str) -> list[dict]:
    return [r for r in ui.runs() if {"key": "dagster/backfill", "value": backfill_id} in r["tags"]]


def open_check(page: Page, ui: UiServer, asset: str, check: str) -> None:
    """The asset's Checks tab with ``check`` selected."""
    page.goto(f"{ui.url}/assets/{asset}?view=checks")
    page.get_by_text(check, exact=True).first.click()
    expect(page.get_by_text("Latest execution").first).to_be_visible()


@pytest.mark.slow
@pytest.mark.browser
def test_a_person_materializes_everything_from_the_ui_and_sees_the_model_checks_and_plots(
    ui: UiServer, page: Page, tmp_path: Path
) -> None:
    started = time.monotonic()
    assert set(ui.stopped_sensors) == {
        "landing_sensor",
        "lakehouse_automation",
        "gold_months_sensor",
        "retraining_sensor",
        "scoring_sensor",
    }
    land(ui.data_dir / "landing", months=SLICE_MONTHS, max_day=SLICE_MAX_DAY)

    # 1. The lineage graph, first visit: no "Join the Dagster community" modal (nux is off in dagster.yaml).
    page.goto(f"{ui.url}/asset-groups")
    expect(page.get_by_text("Global asset lineage").first).to_be_visible()
    materialize_all = page.get_by_role("button", name="Materialize all")
    expect(materialize_all).to_be_enabled()
    assert not community_modal_shown(page), "the 'Join the Dagster community' modal appeared: is nux off?"

    # 2. Materialize all: the gold months are partitioned, so the UI asks which months; "All" is a backfill of the
    #    year (months without flights are written empty). Follow it until every run it launched succeeded.
    before = {b["id"] for b in backfills(ui)}
    materialize_all.click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Partition selection")).to_be_visible()
    dialog.get_by_role("button", name="All", exact=True).click()
    expect(dialog.get_by_text("12 partitions")).to_be_visible()
    save(page, tmp_path, "backfill-dialog.png")
    dialog.get_by_role("button", name="Launch backfill").click()
    backfill = launched_backfill(ui, before)
    status = wait_for_backfill(ui, backfill["id"])
    launched = backfill_runs(ui, backfill["id"])
    messages = "\n".join(ui.run_messages(r["runId"])[-4000:] for r in launched if r["status"] != "SUCCESS")
    assert status == "COMPLETED_SUCCESS", f"backfill {backfill['id']} ended {status}:\n{messages}"
    assert launched and all(r["status"] == "SUCCESS" for r in launched), messages
    page.goto(f"{ui.url}/assets/gold/flight_features?view=partitions")
    expect(page.get_by_text("12 partitions").first).to_be_visible()
    save(page, tmp_path, "gold-partitions.png")
    elapsed = time.monotonic() - started
    print(f"backfill {backfill['id']} ({len(launched)} runs) succeeded {elapsed:.0f} s after the UI was up")

    # 3. The whole graph, materialized: navigation hidden, asset tree folded, every group expanded (Alt+E).
    page.goto(f"{ui.url}/asset-groups")
    expect(page.get_by_role("button", name="Materialize all")).to_be_enabled()
    page.get_by_text("Hide navigation").click()
    page.get_by_role("button", name="panel_show_right").click()
    page.locator("body").press("Alt+e")
    for name in ("flight_features", "flight_delay_model", "feature_drift"):
        expect(page.get_by_text(name, exact=True).first).to_be_visible()
    page.wait_for_timeout(1_500)  # let the graph settle on its zoom-to-fit
    save(page, tmp_path, "lineage-graph.png")

    # 4. The model's checks: the gate passed; the ROC-AUC floor warning says what it measured and why it is red.
    open_check(page, ui, "ml/flight_delay_model", TEST_ROC_AUC_FLOOR)
    expect(page.get_by_text(CHALLENGER_NOT_WORSE, exact=True).first).to_be_visible()
    expect(page.get_by_text("Succeeded").first).to_be_visible()
    expect(page.get_by_text(f"below the floor {ROC_AUC_FLOOR}").first).to_be_visible()
    expect(page.get_by_text("small slice").first).to_be_visible()
    save(page, tmp_path, "model-checks.png")

    # 5. The drift warning on ml/feature_drift, explained the same way.
    open_check(page, ui, "ml/feature_drift", NO_SIGNIFICANT_DRIFT)
    expect(page.get_by_text("another season").first).to_be_visible()
    expect(page.get_by_text("between the champion's training months (2013-01").first).to_be_visible()
    save(page, tmp_path, "drift-check.png")

    # 6. A plot: the model's metadata row `roc_holdout` is a [Show Markdown] link opening the PNG at natural size.
    page.goto(f"{ui.url}/assets/ml/flight_delay_model")
    row = page.get_by_role("row").filter(has=page.get_by_text("roc_holdout", exact=True))
    row.get_by_text("[Show Markdown]").click()
    dialog = page.get_by_role("dialog")
    image = dialog.get_by_role("img", name="ROC on holdout")
    expect(image).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    natural, shown = image.evaluate("img => [img.naturalWidth, img.clientWidth]")
    print(f"roc_holdout plot: {natural} px wide, shown at {shown} px")
    assert natural >= LEGIBLE_PLOT_WIDTH, f"the ROC plot is {natural} px wide: too small to read"
    assert shown == natural, f"the dialog scales the plot down from {natural} to {shown} px"
    save(page, tmp_path, "model-plot-roc.png")
    dialog.get_by_role("button", name="Close").click()

    for name in (
        "lineage-graph.png",
        "model-checks.png",
        "drift-check.png",
        "model-plot-roc.png",
        "backfill-dialog.png",
    ):
        assert png_size(tmp_path / name) == (VIEWPORT["width"], VIEWPORT["height"]), name
    print(f"UI walk-through done {time.monotonic() - started:.0f} s after the UI was up")
