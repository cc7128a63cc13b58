"""The browser tests' Dagster webserver and browser.

A session-wide project in a temp folder: the shipped job_specs (demo_orders and category_totals
share warehouse/daily_revenue) plus tests/ui/specs (a scheduled job with a sensor and checks,
and a job whose PostgreSQL connection has a wrong literal password), the demo data, a fresh
DAGSTER_HOME. ``dagster-webserver`` serves it on a free 127.0.0.1 port until the session ends.
Chromium is Debian's (``/usr/bin/chromium``, installed by ``scripts/services.py start``), driven
by Playwright without any browser download. Screenshots go to tests/ui/artifacts/.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.process_groups import stop_group
from tests.support import service_env

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
ARTIFACTS = HERE / "artifacts"
CHROMIUM = Path(os.environ.get("NEXUS_TEST_CHROMIUM", "/usr/bin/chromium"))
#: the wrong literal password of connection ui_wrong_pg: must never appear in the UI
WRONG_PASSWORD = "ui-wrong-pw-4f2a9c"
START_TIMEOUT = 90.0


@dataclass
class UiServer:
    """A running webserver: its URL, project folder and instance home."""

    url: str
    project: Path
    home: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _project(folder: Path, pg_url: str) -> Path:
    shutil.copytree(REPO / "job_specs", folder / "job_specs")
    for spec in sorted((HERE / "specs").glob("*.yaml")):
        shutil.copy(spec, folder / "job_specs" / spec.name)
    pg = make_url(pg_url)
    with (folder / "job_specs" / "connections.yaml").open("a") as out:
        out.write(f"ui_wrong_pg:\n  type: postgresql\n  host: {pg.host}\n  port: {pg.port}\n"
                  f"  database: {pg.database}\n  user: {pg.username}\n"
                  f"  password: {WRONG_PASSWORD}\n")
    (folder / "data" / "demo").mkdir(parents=True)
    shutil.copy(REPO / "data" / "demo" / "orders.csv", folder / "data" / "demo")
    (folder / "workspace.yaml").write_text(
        "load_from:\n  - python_module:\n      module_name: nexus_dagster.definitions\n"
        f"      working_directory: {folder}\n      location_name: nexus\n")
    home = folder / "dagster_home"
    home.mkdir()
    # runs launched from the UI start at once (no daemon needed to dequeue them)
    (home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\nrun_coordinator:\n"
        "  module: dagster._core.run_coordinator\n  class: DefaultRunCoordinator\n")
    return home


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/server_info", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    """``dagster-webserver`` over the UI test project (started once, stopped at the end)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: `python3 scripts/services.py start` installs "
                    "Debian's chromium")
    pg_url = service_env("NEXUS_TEST_PG_URL", "postgres")
    folder = tmp_path_factory.mktemp("ui_project")
    home = _project(folder, pg_url)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DAGSTER_HOME": str(home), "NEXUS_JOB_SPECS": str(folder / "job_specs"),
           "NEXUS_AUDIT_LOG": str(folder / "audit.jsonl")}
    log = (folder / "webserver.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "dagster_webserver", "-w", str(folder / "workspace.yaml"),
         "-h", "127.0.0.1", "-p", str(port)],
        cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers(url):
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail("dagster-webserver did not start:\n"
                            + (folder / "webserver.log").read_text()[-3000:])
            time.sleep(0.25)
        yield UiServer(url=url, project=folder, home=home)
    finally:
        stop_group(process, signal.SIGTERM, timeout=15)
        log.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Debian's chromium, headless, driven by Playwright."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                              args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, ui_server: UiServer) -> Iterator[object]:
    """A fresh page (1400x900) with generous timeouts; the community dialog dismissed."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(30_000)
    page = context.new_page()
    yield page
    context.close()


def shot(page, name: str) -> Path:
    """Save a screenshot of the page under tests/ui/artifacts/<name>.png."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path
