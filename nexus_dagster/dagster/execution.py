"""Running a job in this process through Dagster and reading runs back from an instance: what
the Python API (``ETLManager.execute_job`` / ``get_job_metrics``) and ``nexus run`` use, so
that neither imports Dagster.

Example:
    >>> report = execute_job(load_project("job_specs"), "demo_orders")  # doctest: +SKIP
    >>> report.status, report.rows_loaded  # doctest: +SKIP
    ('success', 180)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from nexus_dagster import secrets
from nexus_dagster.dagster.factory import build_definitions
from nexus_dagster.spec.loader import Project

__all__ = ["RunReport", "execute_job", "run_history"]

_STATUS = {
    dg.DagsterRunStatus.SUCCESS: "success",
    dg.DagsterRunStatus.FAILURE: "failed",
    dg.DagsterRunStatus.CANCELED: "cancelled",
    dg.DagsterRunStatus.CANCELING: "cancelled",
    dg.DagsterRunStatus.STARTED: "running",
}


@dataclass
class RunReport:
    """One run as read from the instance: status, times, row counts, masked errors, and the
    metadata of each materialization (targets) and observation (sources)."""

    run_id: str
    status: str
    start_time: dt.datetime | None = None
    end_time: dt.datetime | None = None
    rows_extracted: int = 0
    rows_transformed: int = 0
    rows_loaded: int = 0
    rows_failed: int = 0
    errors: list[str] = field(default_factory=list)
    materializations: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: the sources' observations (asset key -> values): rows extracted, cursors
    observations: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @property
    def duration(self) -> float:
        """Seconds from start to end (0 while unknown)."""
        if self.start_time and self.end_time:
            return (self.end_time - self.start_time).total_seconds()
        return 0.0


def _instance(dagster_home: Path | None) -> dg.DagsterInstance:
    if dagster_home is None:
        return dg.DagsterInstance.get()
    return dg.DagsterInstance.from_config(str(dagster_home))


def execute_job(
    project: Project,
    job_key: str,
    *,
    dagster_home: Path | None = None,
    tags: Mapping[str, str] | None = None,
    log_level: str | None = None,
) -> RunReport:
    """Run one job of ``project`` in this process on the instance at ``dagster_home``
    (``$DAGSTER_HOME`` when None); a failed run is reported, not raised."""
    job_def = build_definitions(project).resolve_job_def(job_key)
    run_config = {}
    if log_level:
        run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    with _instance(dagster_home) as instance:
        result = job_def.execute_in_process(
            instance=instance, raise_on_error=False, tags=dict(tags or {}), run_config=run_config
        )
        return _report(instance, result.run_id)


def run_history(dagster_home: Path | None, job_key: str, limit: int = 10) -> list[RunReport]:
    """The runs of a job, newest first: runs of its asset job and asset runs tagged
    ``nexus/job`` (started by a trigger's automation condition)."""
    with _instance(dagster_home) as instance:
        records = {
            record.dagster_run.run_id: record
            for runs_filter in (dg.RunsFilter(job_name=job_key),
                                dg.RunsFilter(tags={"nexus/job": job_key}))
            for record in instance.get_run_records(filters=runs_filter, limit=limit)
        }
        newest = sorted(records.values(), key=lambda r: r.create_timestamp, reverse=True)
        return [_report(instance, r.dagster_run.run_id) for r in newest[:limit]]


def _report(instance: dg.DagsterInstance, run_id: str) -> RunReport:
    record = instance.get_run_record_by_id(run_id)
    if record is None:
        raise LookupError(f"run {run_id} is not in the Dagster instance")
    report = RunReport(run_id=run_id, status=_STATUS.get(record.dagster_run.status, "pending"))
    if record.start_time:
        report.start_time = dt.datetime.fromtimestamp(record.start_time, dt.UTC)
    if record.end_time:
        report.end_time = dt.datetime.fromtimestamp(record.end_time, dt.UTC)
    sources_seen = set()
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.step_materialization_data.materialization
            meta = {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
            key = materialization.asset_key.to_user_string()
            report.materializations.append((key, meta))
            if "nexus/rows_loaded" in meta:
                report.rows_loaded += int(meta["nexus/rows_loaded"])
                report.rows_transformed = int(meta.get("nexus/rows_transformed", 0))
                report.rows_failed += int(meta.get("nexus/rows_failed", 0))
        elif event.event_type == dg.DagsterEventType.ASSET_OBSERVATION:
            observation = event.asset_observation_data.asset_observation
            meta = {k: getattr(v, "value", v) for k, v in observation.metadata.items()}
            key = observation.asset_key.to_user_string()
            report.observations.append((key, meta))
            source = (key, meta.get("nexus/source"))
            if "nexus/rows_extracted" in meta and source not in sources_seen:
                sources_seen.add(source)
                report.rows_extracted += int(meta["nexus/rows_extracted"])
        elif event.event_type == dg.DagsterEventType.STEP_FAILURE:
            error = event.step_failure_data.error
            while error is not None and error.cause is not None:
                error = error.cause
            if error is not None:
                report.errors.append(secrets.mask(error.message.strip()))
    if report.status == "failed" and not report.errors:
        report.errors.append("the run failed; see the Dagster event log of run " + run_id)
    return report
