"""Spec -> Dagster: assets, asset jobs, schedules, sensors, resources.

Per project:

* every table, file or object a job touches is ONE asset, keyed by where it lives
  (:class:`~nexus_dagster.dagster.translator.NexusTranslator`): a target of job A read by job B
  is the same asset, so the graph shows A -> B; a source no job writes is an external asset;
* each job's targets are one multi-asset ``<job>__etl`` (one step: extract, transform, load)
  depending on the job's sources; with ``execution: {steps: per_source}`` the same assets are
  a graph of one extraction step per source and one load step
  (:mod:`~nexus_dagster.dagster.split_steps`), on the executor the job names
  (:mod:`~nexus_dagster.dagster.executors`);
* each connection is a resource (:mod:`nexus_dagster.dagster.resources`) and the step opens its
  connectors through ``context.resources``;
* after every target committed, the step records an observation of each source asset carrying
  the rows extracted and the incremental cursor (``nexus/cursor``, tagged with the job, since
  several jobs may read one source), which the job's next run reads back;
* an asset job named after the job, and a schedule, sensors and asset checks when the spec
  has them.

Example:
    >>> from nexus_dagster.dagster.factory import definitions_from_folder
    >>> defs = definitions_from_folder("job_specs")
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa

from nexus_dagster import audit, secrets
from nexus_dagster.dagster import (
    checks,
    executors,
    guards,
    heap,
    lineage,
    notifications,
    partitions,
    resources,
    rule_checks,
    sensors,
    split_steps,
    triggers,
)
from nexus_dagster.dagster.resources import project_resources
from nexus_dagster.dagster.translator import NexusTranslator
from nexus_dagster.errors import SpecError, SpecProblem
from nexus_dagster.run import SourceExtracted, TargetLoaded, execute, locks
from nexus_dagster.spec.connections import resolve_connection
from nexus_dagster.spec.loader import JobSpec, Project, load_project
from nexus_dagster.spec.models import DataSource, DataTarget, ETLJob
from nexus_dagster.spec.operations import parse_duration
from nexus_dagster.transforms.rules_sql import RuleGateError

CURSOR_KEY = "nexus/cursor"
STATE_KEY = "nexus/state"







def table_schema(schema: pa.Schema) -> dg.TableSchema:
    """Arrow schema -> Dagster column schema."""
    return dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type)) for f in schema])


JOB_KEY = "nexus/job"


def stored_values(
    instance: dg.DagsterInstance, key: dg.AssetKey, job: str, names: tuple[str, ...],
    legacy_key: dg.AssetKey | None = None,
) -> dict[str, dict | None]:  # fmt: skip
    """JSON values (cursor, state) the job last recorded on source ``key``, in ONE pass over
    its observations, newest first: each name from the newest observation by ``job`` that
    carries it; events without it (a materialization reported from the UI, another job's
    observation) are skipped. Before 0.2, cursors were materializations of ``<job>/<source>``
    (``legacy_key``): a name no observation carries is read there."""
    found: dict[str, dict | None] = dict.fromkeys(names)
    cursor = None
    while True:
        page = instance.fetch_observations(key, limit=100, cursor=cursor)
        for record in page.records:
            observation = record.asset_observation
            meta = observation.metadata if observation is not None else {}
            if getattr(meta.get(JOB_KEY), "value", None) != job:
                continue
            for name in names:
                data = _json(meta.get(name))
                if found[name] is None and isinstance(data, dict):
                    found[name] = data
            if all(value is not None for value in found.values()):
                return found
        if not page.has_more:
            break
        cursor = page.cursor
    missing = [name for name, value in found.items() if value is None]
    if legacy_key is not None and missing:
        event = instance.get_latest_materialization_event(legacy_key)
        if event is not None and event.asset_materialization is not None:
            for name in missing:
                data = _json(event.asset_materialization.metadata.get(name))
                found[name] = data if isinstance(data, dict) else None
    return found


def _json(value: Any) -> Any:
    return getattr(value, "data", None) if value is not None else None


def pool_name(job: ETLJob) -> str:
    """The Dagster pool of a job's step: ``nexus/<job>``; with ``concurrency: {pools:
    {default_limit: 1}}`` in dagster.yaml, one run of the job at a time."""
    return f"nexus/{job.key}"


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


@dataclass
class ProjectAssets:
    """Where every endpoint of a project lives as an asset, decided before any job is built:
    the key of each source and target, which job writes each key, and the source assets no
    job writes (declared once, whichever jobs read them)."""

    translator: NexusTranslator
    keys: dict[tuple[str, str], dg.AssetKey] = field(default_factory=dict)
    producers: dict[dg.AssetKey, tuple[JobSpec, DataTarget]] = field(default_factory=dict)
    external: dict[dg.AssetKey, dg.AssetSpec] = field(default_factory=dict)

    def key(self, job: ETLJob, endpoint: DataSource | DataTarget) -> dg.AssetKey:
        """The asset key of one of a job's sources or targets."""
        return self.keys[(job.key, endpoint.name)]


def plan_assets(project: Project, translator: NexusTranslator) -> ProjectAssets:
    """Asset keys of every endpoint; two targets writing one asset are a SpecError naming both
    (a Dagster asset has one producer: give one of them another ``asset_key``)."""
    planned = ProjectAssets(translator)
    problems: list[SpecProblem] = []
    for spec in project.jobs:
        job = spec.job
        for index, target in enumerate(job.targets):
            params = resolve_connection(target, project.connections)
            key = translator.target_key(job, target, params)
            planned.keys[(job.key, target.name)] = key
            if key in planned.producers:
                other, other_target = planned.producers[key]
                file, line = spec.where(("targets", index))
                problems.append(SpecProblem(
                    f"target {target.name!r} writes asset {key.to_user_string()}, which target "
                    f"{other_target.name!r} of job {other.job.key} already writes",
                    file=file, line=line, field=f"targets[{index}]",
                    fix="give one of them its own asset_key: a/b/c (a Dagster asset has one "
                    "producer), or let one job write it",
                ))
            planned.producers.setdefault(key, (spec, target))
    for spec in project.jobs:
        job = spec.job
        for index, source in enumerate(job.sources):
            params = resolve_connection(source, project.connections)
            key = translator.source_key(job, source, params)
            planned.keys[(job.key, source.name)] = key
            if key in planned.producers or key in planned.external:
                continue
            planned.external[key] = dg.AssetSpec(
                key,
                description=translator.description(source),
                group_name=translator.endpoint_group(job, source),
                kinds=translator.kinds(source, params),
                metadata=translator.metadata(spec, source, params, ("sources", index)),
                owners=source.owners or None,
                tags=source.tags or None,
            )
    if problems:
        raise SpecError(problems)
    return planned


def build_job(spec: JobSpec, project: Project, assets: ProjectAssets) -> JobDefinitions:
    """The Dagster objects of one job: the ETL multi-asset, the job, schedules, sensors."""
    translator = assets.translator
    job = spec.job
    connections = project.connections
    tags = {"nexus/job": job.key, **job.tags}

    source_key_by_name = {s.name: assets.key(job, s) for s in job.sources}
    source_keys = list(dict.fromkeys(source_key_by_name.values()))
    trigger = triggers.trigger_plan(job, _upstream_targets(job, project, assets), source_keys)
    target_specs = []
    for index, target in enumerate(job.targets):
        params = resolve_connection(target, connections)
        target_specs.append(
            dg.AssetSpec(
                assets.key(job, target),
                deps=[*lineage.target_deps(job, target, source_key_by_name),
                      *(dg.AssetKey.from_user_string(d) for d in target.deps)],
                description=translator.description(target),
                group_name=translator.endpoint_group(job, target),
                kinds=translator.kinds(target, params),
                metadata={**translator.metadata(spec, target, params, ("targets", index)),
                          "nexus/write_mode": str(target.write_mode)},
                code_version=spec.spec_hash,
                owners=target.owners or None,
                tags=target.tags or None,
                freshness_policy=_freshness_policy(target),
                automation_condition=trigger.automation_condition(),
            )
        )
    target_key_by_name = {t.name: s.key for t, s in zip(job.targets, target_specs, strict=True)}
    legacy_keys = {s.name: dg.AssetKey([job.key, s.name]) for s in job.sources}
    planned_checks = checks.plan(job, target_key_by_name)
    planned_rules = rule_checks.plan(job, target_key_by_name)
    partitions_def = partitions.partitions_def(job)
    job_resources = resources.job_resources(job, connections)

    def _stored(instance: dg.DagsterInstance, name: str) -> tuple[Any, Any]:
        values = stored_values(instance, source_key_by_name[name], job.key,
                               (CURSOR_KEY, STATE_KEY), legacy_keys[name])
        return values[CURSOR_KEY], values[STATE_KEY]

    def _step(context, staged: Mapping[str, Any]) -> Iterator[Any]:
        """The job's run as step events (``staged``: the load step of a split job)."""
        heap.freeze_loaded_objects("run")  # no full GC pass over the process's objects
        instance = context.instance
        window = partitions.window(context)
        guards.refuse_ephemeral(instance, job, window, context.log)
        opener = resources.endpoint_opener(job, spec.root, context.resources,
                                            job_resources)
        trail = audit.AuditTrail(spec, context.run.run_id, log=context.log)
        rule_counts = None
        try:
            trail.started()
            # cursors are read after the locks are taken, and the new ones are yielded (so
            # stored in the instance) before they are released: runs never interleave
            with locks.hold(locks.run_locks(spec, opener, guards.lock_folder(instance)),
                            holder=f"run {context.run.run_id} of job {job.key}",
                            log=context.log):
                stored = {n: stored_values(instance, k, job.key, (CURSOR_KEY, STATE_KEY),
                                           legacy_keys[n])
                          for n, k in source_key_by_name.items()}
                for event in execute(
                    spec,
                    connections,
                    stored_cursors={n: values[CURSOR_KEY] for n, values in stored.items()},
                    stored_states={n: values[STATE_KEY] for n, values in stored.items()},
                    run_id=context.run.run_id,
                    # a re-execution keeps its root run's idempotency keys (requests the failed
                    # run already sent are deduplicated); a new run gets new ones
                    idempotency_scope=context.run.root_run_id or context.run.run_id,
                    log=context.log,
                    window=window,
                    source_files=sensors.source_files_from_tags(context.run.tags),
                    opener=opener,
                    staged=staged,
                ):
                    if isinstance(event, TargetLoaded):
                        rule_counts = event.rules
                        record = trail.loaded(event)
                        key = target_key_by_name[event.target.name]
                        result = _target_result(key, job.key, event)
                        result = lineage.with_lineage(result, job, event, source_key_by_name,
                                                      window)
                        yield _with_audit(result, record)
                    else:
                        yield _source_event(source_key_by_name[event.source.name], job.key,
                                            event)
            if rule_counts is not None:
                yield from rule_checks.results(planned_rules, rule_counts)
            yield from checks.evaluate(spec, opener, planned_checks, window, context.log)
            trail.ended("success")
        except Exception as exc:
            if isinstance(exc, RuleGateError):  # the rules' check results, then the failure
                yield from rule_checks.results(planned_rules, exc.counts, stopped=True)
            message, failure = guards.failed_step(context, job, exc)
            trail.ended_after_error(message)
            raise failure from None

    check_specs = [*checks.check_specs(planned_checks, partitions_def),
                   *rule_checks.check_specs(planned_rules, partitions_def)]
    execution = job.execution
    if execution is not None and execution.steps == "per_source":
        etl = split_steps.split_assets(spec, connections, split_steps.StepShape(
            target_specs=target_specs,
            check_specs=check_specs,
            source_keys=source_key_by_name,
            partitions_def=partitions_def,
            backfill_policy=partitions.backfill_policy(job) if partitions_def else None,
            retry_policy=_retry_policy(job),
            pool=pool_name(job),
            tags=tags,
            resource_keys=set(job_resources),
            job_resources=job_resources,
            description=job.description or f"Extract, transform and load job {job.key}",
        ), _stored, _step)
    else:
        @dg.multi_asset(
            specs=target_specs,
            check_specs=check_specs,
            partitions_def=partitions_def,
            name=f"{job.key}__etl",
            description=job.description or f"Extract, transform and load job {job.key}",
            can_subset=False,
            retry_policy=_retry_policy(job),
            pool=pool_name(job),
            backfill_policy=partitions.backfill_policy(job) if partitions_def else None,
            op_tags=tags,
            required_resource_keys=set(job_resources),
        )
        def etl(context) -> Iterator[Any]:  # AssetExecutionContext
            yield from _step(context, {})

    # `execution` chooses the executor (in-process for one step, multiprocess for per-source
    # steps); `parallel: true` gives the transformation engine `max_workers` threads
    # (run/general.py transform_settings)
    executor = executors.executor_for(job)
    asset_job = dg.define_asset_job(
        name=job.key,
        selection=dg.AssetSelection.assets(*[s.key for s in target_specs]),
        description=job.description,
        executor_def=executor,
        tags=tags,
    )
    built = JobDefinitions(assets=[etl], jobs=[asset_job], resources=job_resources)
    if job.schedule and partitions_def is not None:
        built.schedules.append(partitions.schedule(job, asset_job, _schedule_status(job)))
    elif job.schedule:
        built.schedules.append(
            dg.ScheduleDefinition(
                name=f"{job.key}_schedule",
                job=asset_job,
                cron_schedule=job.schedule,
                execution_timezone=job.timezone or "UTC",
                default_status=_schedule_status(job),
            )
        )
    built.sensors += notifications.notification_sensors(job, [s.key for s in target_specs])
    built.sensors += trigger.sensors(asset_job, [s.key for s in target_specs])
    if job.sensor is not None and job.sensor.new_files:
        built.sensors.append(sensors.new_file_sensor(spec, asset_job, job_resources))
    return built


def _upstream_targets(job: ETLJob, project: Project,
                      assets: ProjectAssets) -> dict[str, list[dg.AssetKey]]:
    """The target asset keys of the jobs named in ``job.trigger.after``."""
    if job.trigger is None:
        return {}
    jobs = {spec.job.key: spec.job for spec in project.jobs}
    return {name: [assets.key(jobs[name], t) for t in jobs[name].targets]
            for name in job.trigger.after if name in jobs}


def _freshness_policy(target: DataTarget) -> dg.FreshnessPolicy | None:
    """The spec's ``freshness`` as Dagster's time-window freshness policy."""
    if target.freshness is None:
        return None
    warn = target.freshness.warn_after
    return dg.FreshnessPolicy.time_window(
        fail_window=dt.timedelta(seconds=parse_duration(target.freshness.max_age)),
        warn_window=dt.timedelta(seconds=parse_duration(warn)) if warn is not None else None,
    )


def _schedule_status(job: ETLJob) -> dg.DefaultScheduleStatus:
    return dg.DefaultScheduleStatus.RUNNING if job.enabled else dg.DefaultScheduleStatus.STOPPED


def _target_result(key: dg.AssetKey, job: str, event: TargetLoaded) -> dg.MaterializeResult:
    result = event.result
    metadata: dict[str, Any] = {
        JOB_KEY: job,
        "nexus/target": event.target.name,
        "dagster/row_count": result.rows_loaded,
        "dagster/column_schema": table_schema(event.schema),
        "nexus/rows_extracted": event.rows_extracted,
        "nexus/rows_transformed": event.rows_transformed,
        "nexus/rows_loaded": result.rows_loaded,
        "nexus/write_mode": str(event.target.write_mode),
        "nexus/location": secrets.mask(result.location),
    }
    if result.extra.get("table_name"):
        metadata["dagster/table_name"] = secrets.mask(result.extra["table_name"])
    for name in ("plan", "bulk_load"):  # which path moved the rows
        if result.extra.get(name):
            metadata[f"nexus/{name}"] = str(result.extra[name])
    if result.rows_inserted is not None:
        metadata["nexus/rows_inserted"] = result.rows_inserted
    if result.rows_updated is not None:
        metadata["nexus/rows_updated"] = result.rows_updated
    if result.extra.get("rows_per_second") is not None:  # the load's rate (run/progress.py)
        metadata["nexus/rows_per_second"] = float(result.extra["rows_per_second"])
    if event.rules is not None:
        metadata.update(rule_checks.metadata(event.rules))
    for name in ("rows_unchanged", "rows_replaced", "rows_closed", "rows_closed_missing",
                 "rows_deleted", "rows_deleted_where",
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


def _source_event(key: dg.AssetKey, job: str, event: SourceExtracted) -> dg.AssetObservation:
    """What a job read from a source, as an observation of the source asset (it changed
    nothing there); the job's next run reads its cursor and state back from it."""
    metadata: dict[str, Any] = {
        JOB_KEY: job,
        "nexus/source": event.source.name,
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
    for name, count in (event.after_load or {}).items():  # files/rows deleted or moved
        metadata[f"nexus/after_load_{name}"] = int(count)
    return dg.AssetObservation(asset_key=key, metadata=metadata)


def build_definitions(
    project: Project,
    translator: NexusTranslator | None = None,
    resources: Mapping[str, Any] | None = None,
) -> dg.Definitions:
    """Dagster Definitions for every job of a project: one asset per table or file, a
    resource per connection (also the ones no job uses yet).

    Args:
        project: the loaded spec folder.
        translator: naming decisions (asset keys, groups ...).
        resources: resources replacing the generated ones by key (``{"warehouse": ...}``):
            per deployment, or test doubles; any resource with ``open_connector`` will do.
    """
    assets = plan_assets(project, translator or NexusTranslator())
    merged = JobDefinitions(assets=list(assets.external.values()),
                            resources=project_resources(project))
    for spec in project.jobs:
        built = build_job(spec, project, assets)
        for name in ("assets", "asset_checks", "jobs", "schedules", "sensors"):
            getattr(merged, name).extend(getattr(built, name))
        merged.resources.update(built.resources)
    merged.resources.update(resources or {})
    definitions = dg.Definitions(
        executor=dg.in_process_executor,
        assets=merged.assets,
        asset_checks=merged.asset_checks,
        jobs=merged.jobs,
        schedules=merged.schedules,
        sensors=merged.sensors,
        resources=merged.resources,
    )
    heap.freeze_loaded_objects("definitions")  # they live as long as the process
    return definitions


def definitions_from_folder(
    path: str | Path,
    translator: NexusTranslator | None = None,
    resources: Mapping[str, Any] | None = None,
) -> dg.Definitions:
    """Load a spec folder (raising one SpecError listing every problem) and build Definitions
    (see :func:`build_definitions`).

    Example:
        >>> defs = definitions_from_folder("job_specs", resources={  # doctest: +SKIP
        ...     "warehouse": resource_class("database")(type="postgresql", host="staging")})
    """
    return build_definitions(load_project(path), translator, resources)
