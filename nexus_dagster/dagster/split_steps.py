"""A job split into steps (``execution: {steps: per_source}``): one graph-backed multi-asset
``<job>__etl`` whose graph has one extraction op per source (``<job>__extract_<source>``) and one
load op (``<job>__load``) depending on all of them.

The asset graph a user sees is the one of the one-step shape: the same target asset specs
(keys, deps, metadata, kinds, code version, partitions), the same checks; the graph's inputs are
the source assets. Each extraction op reads its source and stages the rows as Parquet
(:mod:`nexus_dagster.run.staging`); the load op (which holds the job's pool, so one load of a
job at a time) loads the staged rows under the run locks through the same step body as the
one-step shape, then removes the run's staging prefix. The ops pass nothing through IO managers
(``Nothing`` outputs): the staged files are found by the root run id, so steps may run in other
processes or on other machines (multiprocess or Celery executor) that share the staging store.

Example:
    >>> etl = split_assets(spec, project.connections, shape)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg

from nexus_dagster import secrets
from nexus_dagster.dagster import guards, partitions, resources, sensors
from nexus_dagster.run import staging
from nexus_dagster.run.plan import RunContext
from nexus_dagster.spec.models import DataSource

__all__ = ["StepShape", "extract_op_name", "load_op_name", "split_assets", "staging_scope"]

#: ``(instance, source name) -> (stored cursor, stored state)`` of the job
StoredReader = Callable[[dg.DagsterInstance, str], tuple[Any, Any]]
#: ``(op context, staged sources) -> events`` of the load: the one-step body
LoadBody = Callable[[Any, Mapping[str, staging.StagedSource]], Iterator[Any]]


@dataclass
class StepShape:
    """What the one-step multi-asset of a job declares, for its split form."""

    target_specs: Sequence[dg.AssetSpec]
    check_specs: Sequence[dg.AssetCheckSpec]
    source_keys: Mapping[str, dg.AssetKey]
    partitions_def: dg.PartitionsDefinition | None
    backfill_policy: dg.BackfillPolicy | None
    retry_policy: dg.RetryPolicy | None
    pool: str
    tags: Mapping[str, str]
    resource_keys: set[str]
    job_resources: Mapping[str, Any]
    description: str


def extract_op_name(job_key: str, source: str) -> str:
    """The name of a source's extraction op (and step)."""
    return f"{job_key}__extract_{source}"


def load_op_name(job_key: str) -> str:
    """The name of the load op (and step)."""
    return f"{job_key}__load"


def staging_scope(context: Any) -> str:
    """The staging folder of a run: its root run id, shared by its re-executions."""
    return context.run.root_run_id or context.run.run_id


def split_assets(
    spec: Any,
    connections: Mapping[str, Any],
    shape: StepShape,
    read_stored: StoredReader,
    load_body: LoadBody,
) -> dg.AssetsDefinition:
    """The graph-backed multi-asset of a split job (see the module docstring).

    Args:
        spec: the loaded job spec.
        connections: the project's connections (the staging connection among them).
        shape: what the one-step multi-asset declares.
        read_stored: reads a source's stored cursor and state from the instance.
        load_body: the one-step body, run by the load op over the staged sources.
    """
    job = spec.job
    key_inputs = {key: f"source_{i}" for i, key in
                  enumerate(dict.fromkeys(shape.source_keys.values()))}
    extract_ops = {s.name: _extract_op(spec, connections, s, shape, read_stored)
                   for s in job.sources}
    target_outs = {s.key.to_python_identifier(): s for s in shape.target_specs}
    check_outs = {c.get_python_identifier(): c for c in shape.check_specs}
    load = _load_op(spec, connections, shape, target_outs, check_outs, load_body)

    @dg.graph(
        name=f"{job.key}__etl",
        description=shape.description,
        ins={name: dg.GraphIn() for name in key_inputs.values()},
        out={name: dg.GraphOut() for name in (*target_outs, *check_outs)},
    )
    def etl(**inputs):
        done = {}
        for source in job.sources:
            upstream = inputs[key_inputs[shape.source_keys[source.name]]]
            done[f"after_{source.name}"] = extract_ops[source.name](upstream)
        return load(**done)

    return dg.AssetsDefinition(
        node_def=etl,
        keys_by_input_name={name: key for key, name in key_inputs.items()},
        keys_by_output_name={name: s.key for name, s in target_outs.items()},
        specs=[s.replace_attributes(partitions_def=shape.partitions_def)
               if shape.partitions_def is not None else s for s in shape.target_specs],
        check_specs_by_output_name=check_outs,
        backfill_policy=shape.backfill_policy,
        can_subset=False,
    )


def _extract_op(spec: Any, connections: Mapping[str, Any], source: DataSource,
                shape: StepShape, read_stored: StoredReader) -> dg.OpDefinition:
    job = spec.job

    @dg.op(
        name=extract_op_name(job.key, source.name),
        description=f"Extract source {source.name} of job {job.key} and stage it as Parquet",
        ins={"source": dg.In(dg.Nothing)},
        out=dg.Out(dg.Nothing),
        required_resource_keys=shape.resource_keys,
        retry_policy=shape.retry_policy,
        tags=dict(shape.tags),
    )
    def extract(context) -> None:
        window = partitions.window(context)
        guards.refuse_ephemeral(context.instance, job, window, context.log)
        opener = resources.endpoint_opener(job, spec.root, context.resources,
                                            shape.job_resources)
        try:
            cursor, state = read_stored(context.instance, source.name)
            run = RunContext(
                spec=spec, connections=connections,
                stored_cursors={source.name: cursor}, stored_states={source.name: state},
                run_id=context.run.run_id, idempotency_scope=staging_scope(context),
                log=context.log, window=window,
                source_files=sensors.source_files_from_tags(context.run.tags), opener=opener,
            )  # fmt: skip
            area = staging.open_staging(spec, connections, staging_scope(context))
            try:
                manifest = staging.extract_source(run, source, area)
            finally:
                area.close()
            context.log.info(f"staged {manifest['rows']} rows of {source.name}")
        except Exception as exc:
            raise guards.failed_step(context, job, exc)[1] from None

    return extract


def _load_op(spec: Any, connections: Mapping[str, Any], shape: StepShape,
             target_outs: Mapping[str, dg.AssetSpec],
             check_outs: Mapping[str, dg.AssetCheckSpec], load_body: LoadBody,
             ) -> dg.OpDefinition:  # fmt: skip
    job = spec.job
    out = {name: dg.Out(dg.Nothing) for name in target_outs}
    out.update({name: dg.Out(dg.Nothing, is_required=False) for name in check_outs})

    @dg.op(
        name=load_op_name(job.key),
        description=f"Transform and load the staged sources of job {job.key}",
        ins={f"after_{s.name}": dg.In(dg.Nothing) for s in job.sources},
        out=out,
        required_resource_keys=shape.resource_keys,
        retry_policy=shape.retry_policy,
        pool=shape.pool,
        tags=dict(shape.tags),
    )
    def load(context) -> Iterator[Any]:
        try:
            area = staging.open_staging(spec, connections, staging_scope(context))
        except Exception as exc:
            raise guards.failed_step(context, job, exc)[1] from None
        try:
            try:
                staged = area.staged(job.sources)
            except Exception as exc:
                raise guards.failed_step(context, job, exc)[1] from None
            yield from load_body(context, staged)
            # committed: the staged rows are no longer needed (kept after a failure, so a
            # re-execution from the failure loads them without extracting again)
            area.clear()
            context.log.info(secrets.mask(f"removed the staged extractions {area.location()}"))
        finally:
            area.close()

    return load

