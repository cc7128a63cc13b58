"""The Dagster executor of a job, from its ``execution`` block.

* ``in_process``: every step in the run worker's process (the default of ``steps: one``);
* ``multiprocess``: one process per step, ``max_concurrent`` at once (the default of
  ``steps: per_source``, whose extraction steps then read the sources concurrently);
* ``celery``: steps are sent to Celery workers (``dagster-celery``, imported only for such
  jobs) through the broker; the broker and backend URLs may hold ``${ENV}`` references,
  resolved when the run starts (in the run worker and on each worker) and masked, so the
  definitions and the UI never show them.

Example:
    >>> asset_job = dg.define_asset_job(  # doctest: +SKIP
    ...     spec.job.key, selection=..., executor_def=executor_for(spec.job))
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from nexus_dagster import secrets
from nexus_dagster.errors import SpecError
from nexus_dagster.spec.execution_settings import Execution
from nexus_dagster.spec.models import ETLJob


def executor_for(job: ETLJob) -> dg.ExecutorDefinition:
    """The executor definition of ``job`` (see the module docstring).

    Raises:
        SpecError: ``executor: celery`` while ``dagster-celery`` is not installed.
    """
    execution = job.execution or Execution()
    name = execution.executor_name()
    if name == "in_process":
        return dg.in_process_executor
    if name == "multiprocess":
        # step processes fork from a server that imported Dagster and nexus once, instead of
        # each importing them again (spawn)
        config: dict[str, Any] = {"start_method": {"forkserver": {
            "preload_modules": ["dagster", "nexus_dagster.dagster.factory"]}}}
        if execution.max_concurrent is not None:
            config["max_concurrent"] = execution.max_concurrent
        return dg.multiprocess_executor.configured(config)
    return _celery_executor(job, execution)


def _celery_executor(job: ETLJob, execution: Execution) -> dg.ExecutorDefinition:
    try:
        from dagster_celery import celery_executor
    except ImportError as exc:
        raise SpecError(
            f"job {job.key}: execution.executor: celery needs the dagster-celery package "
            "(fix: pip install dagster-celery, pinned with the Dagster release, or choose "
            "executor: multiprocess)"
        ) from exc
    settings = execution.celery_settings()

    def resolved(_config: Any) -> dict[str, Any]:
        # called when the run's config is resolved, never at definition time: the URLs'
        # ${ENV} values are read then, and registered for masking
        return {
            "broker": secrets.resolve(settings.broker, where=f"job {job.key}: "
                                      "execution.celery.broker", key="password"),
            "backend": secrets.resolve(settings.backend, where=f"job {job.key}: "
                                       "execution.celery.backend", key="password"),
        }

    return celery_executor.configured(resolved, config_schema={})
