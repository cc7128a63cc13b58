"""Spec ``trigger: {after: job_a}`` -> an asset sensor: run this job when job A's targets were
materialized.

Job A's targets are all materialized by one step, in spec order, so the sensor watches A's last
target; each materialization (one per successful run of A) requests one run of this job, keyed
by A's run id so a tick never starts the same run twice.

Example:
    >>> sensors = trigger_sensors(job_b, asset_job_b, {"job_a": AssetKey(["job_a", "out"])})
"""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg

from nexus_dagster.spec.models import ETLJob


def trigger_sensors(
    job: ETLJob, asset_job, upstream_keys: Mapping[str, dg.AssetKey]
) -> list[dg.SensorDefinition]:
    """One asset sensor per upstream job named in ``trigger.after``.

    Args:
        job: the triggered job.
        asset_job: its Dagster asset job.
        upstream_keys: upstream job key -> the asset key of its last target.
    """
    if job.trigger is None:
        return []
    status = dg.DefaultSensorStatus.RUNNING if job.enabled else dg.DefaultSensorStatus.STOPPED
    return [_sensor(job, asset_job, upstream, upstream_keys[upstream], status)
            for upstream in job.trigger.after]


def _sensor(job: ETLJob, asset_job, upstream: str, key: dg.AssetKey,
            status: dg.DefaultSensorStatus) -> dg.SensorDefinition:
    assert job.trigger is not None

    @dg.asset_sensor(
        asset_key=key,
        job=asset_job,
        name=f"{job.key}_after_{upstream}",
        minimum_interval_seconds=job.trigger.minimum_interval_seconds,
        default_status=status,
        description=f"Run {job.key} after {upstream} materialized {key.to_user_string()}",
    )
    def _after(context, asset_event):
        run_id = asset_event.run_id
        return dg.RunRequest(run_key=f"{upstream}:{run_id}",
                             tags={"nexus/triggered_by": f"{upstream}:{run_id}"})

    return _after


def upstream_keys(job: ETLJob, project, last_target_key) -> dict[str, dg.AssetKey]:
    """Upstream job key -> its last target's asset key, for the jobs in ``trigger.after``.

    Args:
        job: the triggered job.
        project: the loaded project (the upstream jobs must be in it; spec validation says so).
        last_target_key: upstream ETLJob -> the asset key of its last target.
    """
    if job.trigger is None:
        return {}
    jobs = {spec.job.key: spec.job for spec in project.jobs}
    return {name: last_target_key(jobs[name]) for name in job.trigger.after if name in jobs}
