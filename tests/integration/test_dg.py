"""The repository is a ``dg`` project: from its root ``dg list components``, ``dg check defs``,
``dg list defs`` and ``dg launch --job demo_orders`` work (each run in a subprocess, as a user
would, with a temporary DAGSTER_HOME)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from nexus_dagster.dagster.factory import build_definitions
from nexus_dagster.spec.loader import load_project

REPO = Path(__file__).resolve().parents[2]
DG = str(Path(sys.executable).parent / "dg")


@pytest.fixture
def dg_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a user in the repo's venv, with a fresh Dagster instance."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if k != "NEXUS_JOB_SPECS"}
    env.update(DAGSTER_HOME=str(home), VIRTUAL_ENV=str(Path(sys.executable).parents[1]))
    return env


def dg(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``dg <args>`` from the repository root; fail with its output when it fails."""
    done = subprocess.run([DG, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, f"dg {' '.join(args)}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done


def test_dg_lists_the_nexus_component(dg_env: dict[str, str]):
    listed = json.loads(dg(dg_env, "list", "components", "--json").stdout)
    assert "nexus_dagster.NexusJobs" in {entry["key"] for entry in listed["items"]}


def test_dg_check_and_list_defs(dg_env: dict[str, str]):
    checked = dg(dg_env, "check", "defs")
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr

    listed = json.loads(dg(dg_env, "list", "defs", "--json").stdout)
    keys = {asset["asset_key"] for asset in listed["assets"]}
    jobs = {job["name"]: job for job in listed["jobs"]}
    # the same assets as the spec folder built without dg (the demo job's among them)
    expected = build_definitions(load_project(REPO / "job_specs"))
    assert keys == {k.to_user_string() for k in expected.resolve_asset_graph().get_all_asset_keys()}
    demo = expected.resolve_job_def("demo_orders").asset_layer.selected_asset_keys
    assert demo and {key.to_user_string() for key in demo} <= keys
    assert jobs["demo_orders"]["source"].startswith("nexus_dagster_defs/defs/nexus_jobs/defs.yaml")


def test_dg_launch_runs_the_demo(dg_env: dict[str, str]):
    warehouse = REPO / "output/warehouse.db"
    before = warehouse.stat().st_mtime_ns if warehouse.exists() else 0
    launched = dg(dg_env, "launch", "--job", "demo_orders")
    assert "RUN_SUCCESS" in launched.stdout + launched.stderr
    assert warehouse.stat().st_mtime_ns > before
    with sqlite3.connect(warehouse) as db:
        assert db.execute("select count(*) from daily_revenue").fetchone() == (180,)
