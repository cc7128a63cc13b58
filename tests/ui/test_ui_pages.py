"""The Dagster UI over nexus specs, driven in Debian's chromium (see conftest.py).

Each test opens one page the way an operator would, asserts what it must show, and saves a
screenshot under tests/ui/artifacts/ (docs/ui_lineage.png and docs/ui_asset_page.png are copies).
"""

from __future__ import annotations

import json
import re
import urllib.request

import pytest

from tests.ui.conftest import WRONG_PASSWORD, UiServer, shot

pytestmark = [pytest.mark.ui, pytest.mark.postgres]

expect = pytest.importorskip("playwright.sync_api").expect
expect.set_options(timeout=30_000)
RUN_TIMEOUT = 120_000


def open_page(page, server: UiServer, path: str) -> None:
    """Go to ``path``; the first-visit "Join the Dagster community" dialog is skipped whenever
    it shows up."""
    page.add_locator_handler(page.get_by_role("button", name="Skip"), lambda skip: skip.click())
    page.goto(server.url + path)


def launch(page, server: UiServer, job: str) -> str:
    """Launch ``job`` from its launchpad; return the run id (the run page is open)."""
    open_page(page, server, f"/locations/__repository__@nexus/jobs/{job}/playground")
    page.get_by_role("button", name="Launch run").click()
    page.wait_for_url("**/runs/*")
    return page.url.rsplit("/", 1)[-1]


def open_finished_run(page, server: UiServer, run_id: str, outcome: str) -> None:
    """Open a run's page and wait until it shows ``RUN_SUCCESS`` or ``RUN_FAILURE``."""
    open_page(page, server, f"/runs/{run_id}")
    expect(page.get_by_text(outcome, exact=True)).to_be_visible(timeout=RUN_TIMEOUT)


def graphql(server: UiServer, query: str) -> dict:
    request = urllib.request.Request(f"{server.url}/graphql", method="POST",
                                     data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


@pytest.fixture(scope="module")
def launched(browser, ui_server: UiServer) -> dict[str, str]:
    """Job -> run id of demo_orders, ui_checked_orders and ui_broken_secret, each launched
    from its launchpad; launched together so their runs overlap (the tests wait for them)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(30_000)
    try:
        return {job: launch(context.new_page(), ui_server, job)
                for job in ("demo_orders", "ui_checked_orders", "ui_broken_secret")}
    finally:
        context.close()


def test_lineage_graph_shows_sources_to_targets_and_the_shared_table_once(page, ui_server):
    open_page(page, ui_server, "/assets/warehouse/daily_revenue?view=lineage"
                               "&lineageScope=neighbors")
    # demo_orders reads the CSV and writes the table; category_totals reads the same table
    for name in ("orders_csv", "daily_revenue", "category_totals_csv"):
        expect(page.get_by_text(name, exact=True).last).to_be_visible()
    for group in ("demo_orders", "category_totals"):
        expect(page.get_by_text(group, exact=True).first).to_be_visible()
    shot(page, "lineage")
    nodes = graphql(ui_server, """{ assetNodes { assetKey { path }
        dependencyKeys { path } dependedByKeys { path } } }""")["assetNodes"]
    shared = [n for n in nodes if n["assetKey"]["path"] == ["warehouse", "daily_revenue"]]
    assert len(shared) == 1
    assert shared[0]["dependencyKeys"] == [{"path": ["file", "data", "demo", "orders_csv"]}]
    assert {"path": ["file", "output", "category_totals_csv"]} in shared[0]["dependedByKeys"]


def test_launchpad_run_succeeds_and_shows_materializations_with_row_counts(page, ui_server,
                                                                          launched):
    open_finished_run(page, ui_server, launched["demo_orders"], "RUN_SUCCESS")
    expect(page.get_by_text("Success", exact=True).first).to_be_visible()
    # the event log fills in after the status: wait for the row counts (auto-retry)
    expect(page.locator("body")).to_contain_text(re.compile(r"dagster/row_count\s*180\D"))
    text = page.inner_text("body")
    shot(page, "run_page")
    for key in ("warehouse / daily_revenue", "file / output / daily_revenue_parquet"):
        # the materialization event of the asset, with its row counts before the next event
        event = re.search(rf"ASSET_MATERIALIZATION\s+Materialized value [^\n]*\s+asset_key\s+"
                          rf"{key}\b((?:(?!ASSET_MATERIALIZATION).)*)", text, re.DOTALL)
        assert event, key
        assert re.search(r"dagster/row_count\s+180\b", event.group(1)), key
        assert re.search(r"nexus/rows_extracted\s+5000\b", event.group(1)), key


def test_asset_page_shows_row_count_schema_lineage_and_checks(page, ui_server, launched):
    open_finished_run(page, ui_server, launched["ui_checked_orders"], "RUN_SUCCESS")
    open_page(page, ui_server, "/assets/warehouse/paid_per_category")
    expect(page.get_by_text("Row count", exact=True)).to_be_visible()
    # the upstream section loads after the overview's first paint: wait for it (auto-retry)
    expect(page.locator("body")).to_contain_text(
        re.compile(r"Upstream assets\s*file / data / demo / orders_csv"))
    overview = page.inner_text("body")
    assert re.search(r"Row count\s+6\b", overview)
    for column, kind in (("category", "string"), ("orders", "int64"), ("items", "int64")):
        assert re.search(rf"{column}\s+{kind}", overview), column
    assert re.search(r"Upstream assets\s+file / data / demo / orders_csv", overview)
    shot(page, "asset_page")
    # the check results
    page.get_by_role("tab", name="Checks").click()
    expect(page.get_by_text("category_unique", exact=True).first).to_be_visible()
    # each check's status is fetched after the list paints: wait for it (auto-retry)
    for check in ("category_unique", "orders_not_null"):
        expect(page.locator("body")).to_contain_text(re.compile(rf"{check}\s*Succeeded"))
    shot(page, "asset_checks")
    # column lineage: Dagster OSS shows it with the materialization on the run page
    open_finished_run(page, ui_server, launched["ui_checked_orders"], "RUN_SUCCESS")
    row = page.locator("tr", has=page.get_by_text("dagster/column_lineage", exact=True)).first
    row.get_by_text("Show JSON").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    text = dialog.inner_text()
    lineage = {entry["columnName"]: entry["columnDeps"]
               for entry in json.loads(text[text.index("["):text.rindex("]") + 1])}
    # orders = count(order_id), items = sum(quantity), both of the orders CSV
    csv = {"path": ["file", "data", "demo", "orders_csv"]}
    assert [(d["assetKey"]["path"], d["columnName"]) for d in lineage["orders"]] == [
        (csv["path"], "order_id")]
    assert [(d["assetKey"]["path"], d["columnName"]) for d in lineage["items"]] == [
        (csv["path"], "quantity")]
    shot(page, "column_lineage")


def test_automation_page_lists_the_schedule_and_the_sensor(page, ui_server):
    open_page(page, ui_server, "/automation")
    expect(page.get_by_text("ui_checked_orders_schedule", exact=True)).to_be_visible()
    expect(page.get_by_text("ui_checked_orders_new_files", exact=True)).to_be_visible()
    expect(page.get_by_text("At 03:00 AM UTC").first).to_be_visible()
    shot(page, "automation")


def test_failed_run_shows_the_masked_error_and_never_the_secret(page, ui_server, launched):
    open_page(page, ui_server, "/locations/__repository__@nexus/jobs/ui_broken_secret/playground")
    expect(page.get_by_text("<secret: connections.yaml ui_wrong_pg.password>").first) \
        .to_be_visible()
    assert WRONG_PASSWORD not in page.content()
    open_finished_run(page, ui_server, launched["ui_broken_secret"], "RUN_FAILURE")
    expect(page.get_by_text("Failure", exact=True).first).to_be_visible()
    expect(page.locator("body")).to_contain_text("password authentication failed")
    text = page.inner_text("body")
    shot(page, "failed_run")
    assert "password authentication failed" in text
    assert "nexus:***@127.0.0.1" in text
    assert WRONG_PASSWORD not in text and WRONG_PASSWORD not in page.content()
