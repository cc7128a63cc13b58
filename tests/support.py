"""Helpers shared by the test folders: service settings and running spec jobs through Dagster."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest

from nexus_dagster.dagster.factory import build_definitions
from nexus_dagster.spec.loader import load_project


def service_env(var: str, services: str = "") -> str:
    """A setting written by ``scripts/services.py start``; skips when unset (fails in CI)."""
    value = os.environ.get(var)
    if value:
        return value
    only = f" --only {services}" if services else ""
    msg = (f"{var} is not set: the test servers are not running. Run the suite with "
           f"`bash scripts/test.sh` (it starts them), or "
           f"`python3 scripts/services.py start{only} && . .services/env` first.")
    if os.environ.get("CI"):
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


def run_job(folder: Path, job: str, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """Run one job of a spec folder through Dagster (in process), not raising on failure."""
    defs = build_definitions(load_project(folder))
    return defs.resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=False)


def materializations(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    """Asset key -> metadata of each materialization of the run."""
    return {e.materialization.asset_key.to_user_string(): e.materialization.metadata
            for e in result.get_asset_materialization_events()}
