"""Every `nexus` subcommand works from an unactivated venv: the console script is run by its
path with PATH stripped of the venv (no `dagster` on PATH, no VIRTUAL_ENV)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.process_groups import stop_group

REPO = Path(__file__).resolve().parents[3]
NEXUS = Path(sys.executable).parent / "nexus"
BARE_PATH = "/usr/local/bin:/usr/bin:/bin"


def bare_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "DAGSTER_HOME")}
    return {**env, "PATH": BARE_PATH, **extra}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "job_specs", tmp_path / "job_specs")
    (tmp_path / "data" / "demo").mkdir(parents=True)
    shutil.copy(REPO / "data" / "demo" / "orders.csv", tmp_path / "data" / "demo")
    shutil.copy(REPO / "workspace.yaml", tmp_path)
    shutil.copy(REPO / "dagster.yaml", tmp_path)
    (tmp_path / "output").mkdir()  # where the warehouse SQLite file lives
    return tmp_path


def nexus(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(NEXUS), *args], cwd=project, env=bare_env(), text=True,
                          capture_output=True, timeout=180)


def test_no_dagster_on_the_bare_path():
    assert shutil.which("dagster", path=BARE_PATH) is None
    assert shutil.which("nexus", path=BARE_PATH) is None


def test_subcommands_run_by_path_without_the_venv_on_path(project):
    for args in (["--help"], ["validate"], ["list"], ["schema"], ["test-connection"],
                 ["preview", "demo_orders", "--rows", "3"], ["keygen"]):
        done = nexus(project, *args)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
    assert "ok: 2 job(s), 1 connection(s)" in nexus(project, "validate").stdout
    assert "warehouse: ok" in nexus(project, "test-connection").stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_ui_starts_dagster_dev_without_the_venv_on_path(project):
    port = _free_port()
    log = (project / "ui.log").open("w")
    process = subprocess.Popen([str(NEXUS), "ui", "--port", str(port)], cwd=project,
                               env=bare_env(), stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info",
                                            timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                log.flush()
                assert process.poll() is None, (project / "ui.log").read_text()[-3000:]
                assert time.monotonic() < deadline, (project / "ui.log").read_text()[-3000:]
                time.sleep(0.5)
        assert f"{sys.executable} -m dagster dev" in (project / "ui.log").read_text()
        assert (project / ".dagster_home" / "dagster.yaml").exists()
    finally:
        stop_group(process, signal.SIGTERM)
        log.close()
