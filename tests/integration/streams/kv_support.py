"""Helpers of the Kafka and Redis tests: service settings from .services/env, Dagster runs."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import dagster as dg
import pytest

from nexus_dagster.factory import build_definitions
from nexus_dagster.spec.loader import load_project


def service_env(var: str) -> str:
    """A setting written by ``scripts/services.py start``; skips (fails in CI) when unset."""
    value = os.environ.get(var)
    if value:
        return value
    msg = (f"{var} is not set: the test servers are not running. Run `bash scripts/test.sh`, "
           "or `python scripts/services.py start --only kafka,redis && . .services/env`.")
    if os.environ.get("CI"):
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


def write_spec(folder: Path, name: str, text: str) -> Path:
    """Write ``job_specs/<name>.yaml`` under ``folder``; returns the spec folder."""
    specs = folder / "job_specs"
    specs.mkdir(parents=True, exist_ok=True)
    (specs / f"{name}.yaml").write_text(textwrap.dedent(text))
    return specs


def run_job(specs: Path, job: str, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """Run one job of a spec folder through Dagster (in process), not raising on failure."""
    defs = build_definitions(load_project(specs))
    return defs.resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=False)


def materializations(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    """Asset key -> metadata of the run's materializations."""
    return {e.materialization.asset_key.to_user_string(): e.materialization.metadata
            for e in result.get_asset_materialization_events()}


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    """Every failure message of a run, for assertions on errors."""
    return "\n".join(str(e.step_failure_data.error) for e in result.all_events
                     if e.is_step_failure)
