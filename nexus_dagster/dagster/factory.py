"""Spec -> Dagster: assets, asset jobs, schedules. The only module that knows specs,
connectors and Dagster at once.

Per job:

* each source is an external asset ``<job>/<source>`` (lineage: which table or file feeds the
  job); after every target committed, the run records a materialization of it carrying the
  rows extracted and the incremental cursor (``nexus/cursor``), which the next run reads back;
* the targets are one multi-asset ``<job>__etl`` (one step: extract, transform, load), each
  target an asset ``<job>/<target>`` depending on the sources;
* an asset job named after the job (in-process executor unless ``parallel: true``), and a
  schedule when the spec has one.

Example:
    >>> from nexus_dagster.dagster.factory import definitions_from_folder
    >>> defs = definitions_from_folder("job_specs")
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa

from nexus_dagster import audit, secrets
from nexus_dagster.dagster import (
    checks,
    lineage,
    notifications,
    partitions,
    resources,
    sensors,
    triggers,
)
from nexus_dagster.dagster.translator import NexusTranslator
from nexus_dagster.errors import NexusError
from nexus_dagster.run import SourceExtracted, TargetLoaded, execute
from nexus_dagster.spec.connections import resolve_connection
from nexus_dagster.spec.loader import JobSpec, Project, load_project
from nexus_dagster.spec.models import ETLJob

CURSOR_KEY = "nexus/cursor"
STATE_KEY = "nexus/state"



class RunError(NexusError):
    """A run failed; the message is the original error's, with secrets masked."""




def table_schema(schema: pa.Schema) -> dg.TableSchema:
    """Arrow schema -> Dagster column schema."""
    return dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type)) for f in schema])


def _stored(instance: dg.DagsterInstance, key: dg.AssetKey, name: str) -> dict | None:
    """A JSON metadata value of the latest materialization of ``key`` (cursor, state)."""
    event = instance.get_latest_materialization_event(key)
    if event is None or event.asset_materialization is None:
        return None
    value = event.asset_materialization.metadata.get(name)
    data = getattr(value, "data", None) if value is not None else None
    return data if isinstance(data, dict) else None


def _retry_policy(job: ETLJob) -> dg.RetryPolicy | None:
    retries = job.retries
    if not retries or not retries.max_retries:
        return None
    return dg.RetryPolicy(
        max_retries=retries.max_retries,
        delay=retries.delay_seconds or None,
        backoff=dg.Backoff(retries.backoff.upper()) if retries.backoff else None,
        jitter=dg.Jitter(retries.jitter.upper()) if retries.jitter else None,
    )


@dataclass
class JobDefinitions:
    """The Dagster objects made for one job; :func:`build_definitions` merges them."""

    assets: list = field(default_factory=list)
    asset_checks: list = field(default_factory=list)
    jobs: list = field(default_factory=list)
    schedules: list = field(default_factory=list)
    sensors: list = field(default_factory=list)
    resources: dict = field(default_factory=dict)


def build_job(
    spec: JobSpec, project: Project, translator: NexusTranslator | None = None
) -> JobDefinitions:
    """The Dagster objects of one job: source specs, the ETL multi-asset, the job, schedules."""
    translator = translator or NexusTranslator()
    job = spec.job
    connections = project.connections
    group = translator.group_name(job)
    tags = {"nexus/job": job.key, **job.tags}

    source_specs = []
    for source in job.sources:
        params = resolve_connection(source, connections)
        source_specs.append(
            dg.AssetSpec(
                translator.source_key(job, source),
                description=translator.description(source),
                group_name=group,
                kinds=translator.kinds(source, params),
                metadata=translator.metadata(source, params),
            )
        )
    source_keys = [s.key for s in source_specs]
    target_specs = []
    for target in job.targets:
        params = resolve_connection(target, connections)
        target_specs.append(
            dg.AssetSpec(
                translator.target_key(job, target),
                deps=source_keys,
                description=translator.description(target),
                group_name=group,
                kinds=translator.kinds(target, params),
                metadata={**translator.metadata(target, params),
                          "nexus/write_mode": str(target.write_mode)},
                code_version=spec.spec_hash,
            )
        )
    source_key_by_name = dict(zip((s.name for s in job.sources), source_keys, strict=True))
    target_key_by_name = {t.name: s.key for t, s in zip(job.targets, target_specs, strict=True)}
    planned_checks = checks.plan(job, target_key_by_name)
    partitions_def = partitions.partitions_def(job)
    job_resources = resources.job_resources(job, connections)

    @dg.multi_asset(
        specs=target_specs,
        check_specs=checks.check_specs(planned_checks, partitions_def),
        partitions_def=partitions_def,
        name=f"{job.key}__etl",
        description=job.description or f"Extract, transform and load job {job.key}",
        can_subset=False,
        retry_policy=_retry_policy(job),
        op_tags=tags,
        required_resource_keys=set(job_resources),
    )
    def _etl(context) -> Iterator[dg.MaterializeResult]:  # AssetExecutionContext
        instance = context.instance
        cursors = {n: _stored(instance, k, CURSOR_KEY) for n, k in source_key_by_name.items()}
        states = {n: _stored(instance, k, STATE_KEY) for n, k in source_key_by_name.items()}
        trail = audit.AuditTrail(spec, context.run.run_id, log=context.log)
        window = partitions.window(context)
        try:
            trail.started()
            for event in execute(
                spec,
                connections,
                stored_cursors=cursors,
                stored_states=states,
                run_id=context.run.run_id,
                log=context.log,
                window=window,
                source_files=sensors.source_files_from_tags(context.run.tags),
            ):
                if isinstance(event, TargetLoaded):
                    record = trail.loaded(event)
                    result = _target_result(target_key_by_name[event.target.name], event)
                    result = lineage.with_lineage(result, job, event, source_key_by_name, window)
                    yield _with_audit(result, record)
                else:
                    context.log_event(_source_event(source_key_by_name[event.source.name], event))
            yield from checks.evaluate(spec, connections, planned_checks, window, context.log)
            trail.ended("success")
        except Exception as exc:
            message = secrets.mask(f"{type(exc).__name__}: {exc}")
            context.log.error(secrets.mask("".join(traceback.format_exception(exc))))
            trail.ended_after_error(message)
            raise RunError(message) from None

    if job.parallel:
        executor = dg.multiprocess_executor.configured({"max_concurrent": job.max_workers})
    else:
        executor = dg.in_process_executor
    asset_job = dg.define_asset_job(
        name=job.key,
        selection=dg.AssetSelection.assets(*[s.key for s in target_specs]),
        description=job.description,
        executor_def=executor,
        tags=tags,
    )
    built = JobDefinitions(assets=[*source_specs, _etl], jobs=[asset_job],
                           resources=job_resources)
    if job.schedule and partitions_def is not None:
        built.schedules.append(partitions.schedule(job, asset_job, _schedule_status(job)))
    elif job.schedule:
        built.schedules.append(
            dg.ScheduleDefinition(
                name=f"{job.key}_schedule",
                job=asset_job,
                cron_schedule=job.schedule,
                execution_timezone=job.timezone or "UTC",
                default_status=(
                    dg.DefaultScheduleStatus.RUNNING if job.enabled
                    else dg.DefaultScheduleStatus.STOPPED
                ),
            )
        )
    built.sensors += notifications.notification_sensors(job, asset_job)
    built.sensors += triggers.trigger_sensors(job, asset_job, triggers.upstream_keys(
        job, project, lambda j: translator.target_key(j, j.targets[-1])))
    if job.sensor is not None and job.sensor.new_files:
        built.sensors.append(sensors.new_file_sensor(spec, connections, asset_job))
    return built


def _schedule_status(job: ETLJob) -> dg.DefaultScheduleStatus:
    return dg.DefaultScheduleStatus.RUNNING if job.enabled else dg.DefaultScheduleStatus.STOPPED


def _target_result(key: dg.AssetKey, event: TargetLoaded) -> dg.MaterializeResult:
    result = event.result
    metadata: dict[str, Any] = {
        "dagster/row_count": result.rows_loaded,
        "dagster/column_schema": table_schema(event.schema),
        "nexus/rows_extracted": event.rows_extracted,
        "nexus/rows_transformed": event.rows_transformed,
        "nexus/rows_loaded": result.rows_loaded,
        "nexus/write_mode": str(event.target.write_mode),
        "nexus/location": secrets.mask(result.location),
    }
    if result.rows_inserted is not None:
        metadata["nexus/rows_inserted"] = result.rows_inserted
    if result.rows_updated is not None:
        metadata["nexus/rows_updated"] = result.rows_updated
    for name in ("rows_unchanged", "rows_replaced",
                 "rows_sent", "rows_failed", "requests", "retries", "requests_failed"):
        if result.extra.get(name) is not None:
            metadata[f"nexus/{name}"] = int(result.extra[name])
    return dg.MaterializeResult(asset_key=key, metadata=metadata)


def _with_audit(result: dg.MaterializeResult, record: dict[str, Any]) -> dg.MaterializeResult:
    """The materialization with the audit line added as ``nexus/audit`` metadata."""
    return dg.MaterializeResult(
        asset_key=result.asset_key,
        metadata={**(result.metadata or {}), "nexus/audit": dg.MetadataValue.json(record)},
        check_results=result.check_results,
        data_version=result.data_version,
        tags=result.tags,
    )


def _source_event(key: dg.AssetKey, event: SourceExtracted) -> dg.AssetMaterialization:
    metadata: dict[str, Any] = {
        "nexus/rows_extracted": event.rows,
        "dagster/column_schema": table_schema(event.schema),
    }
    if event.cursor_after is not None:
        metadata[CURSOR_KEY] = dg.MetadataValue.json(event.cursor_after)
    if event.state is not None:
        metadata[STATE_KEY] = dg.MetadataValue.json(event.state)
    if event.cursor_before is not None:
        metadata["nexus/cursor_before"] = str(event.cursor_before.get("value"))
    if event.cursor_after is not None:
        metadata["nexus/cursor_after"] = str(event.cursor_after.get("value"))
    return dg.AssetMaterialization(asset_key=key, metadata=metadata)


def build_definitions(
    project: Project, translator: NexusTranslator | None = None
) -> dg.Definitions:
    """Dagster Definitions for every job of a project."""
    merged = JobDefinitions()
    for spec in project.jobs:
        built = build_job(spec, project, translator)
        for name in ("assets", "asset_checks", "jobs", "schedules", "sensors"):
            getattr(merged, name).extend(getattr(built, name))
        merged.resources.update(built.resources)
    return dg.Definitions(
        assets=merged.assets,
        asset_checks=merged.asset_checks,
        jobs=merged.jobs,
        schedules=merged.schedules,
        sensors=merged.sensors,
        resources=merged.resources,
    )


def definitions_from_folder(path: str | Path) -> dg.Definitions:
    """Load a spec folder (raising one SpecError listing every problem) and build Definitions."""
    return build_definitions(load_project(path))
