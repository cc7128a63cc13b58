"""Helpers of the Kafka and Redis tests: service settings from .services/env, Dagster runs."""

from __future__ import annotations

import textwrap
from pathlib import Path

import dagster as dg

from tests.support import endpoint_events, run_job

__all__ = ["endpoint_events", "run_job", "write_spec"]


def write_spec(folder: Path, name: str, text: str) -> Path:
    """Write ``job_specs/<name>.yaml`` under ``folder``; returns the spec folder."""
    specs = folder / "job_specs"
    specs.mkdir(parents=True, exist_ok=True)
    (specs / f"{name}.yaml").write_text(textwrap.dedent(text))
    return specs


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    """Every failure message of a run, for assertions on errors."""
    return "\n".join(str(e.step_failure_data.error) for e in result.all_events
                     if e.is_step_failure)
