"""Spec ``trigger: {after: job_a}`` -> run this job when job A's targets were materialized.

Two shapes, chosen per job:

* **Declarative automation, where it fits**: when every upstream job named in ``after`` writes
  an asset this job reads (job A's target table is one of job B's sources, so the graph already
  shows A -> B), B's targets get ``AutomationCondition.eager()`` restricted to those upstream
  assets, evaluated by one automation sensor ``<job>_after_<upstream...>``. Dagster then starts
  B when A's table was materialized, never while A (or B) is in progress, and shows why on
  each asset's **Automation** tab. Runs carry the tags ``nexus/job`` and
  ``nexus/triggered_by``.
* **An asset sensor otherwise** (B does not read what A writes, so there is no edge to follow):
  one sensor per upstream job watches A's last target; each materialization (one per successful
  run of A) requests one run of B, keyed by A's run id so a tick never starts the same run twice.

Example:
    >>> shape = trigger_plan(job_b, {"job_a": [AssetKey(["warehouse", "a_out"])]},
    ...                      source_keys={AssetKey(["warehouse", "a_out"])})
    >>> shape.declarative
    True
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import dagster as dg

from nexus_dagster.spec.models import ETLJob


@dataclass
class TriggerPlan:
    """How one job's ``trigger`` becomes Dagster objects.

    Attributes:
        job: the triggered job.
        feeding: upstream job key -> the upstream targets this job reads (declarative shape).
        watched: upstream job key -> the upstream target an asset sensor watches (other shape).
    """

    job: ETLJob
    feeding: dict[str, list[dg.AssetKey]] = field(default_factory=dict)
    watched: dict[str, dg.AssetKey] = field(default_factory=dict)

    @property
    def declarative(self) -> bool:
        """True when the trigger is an automation condition on this job's targets."""
        return bool(self.feeding)

    def automation_condition(self) -> dg.AutomationCondition | None:
        """The condition for this job's targets: eager on the upstream assets it reads."""
        if not self.declarative:
            return None
        keys = [key for keys in self.feeding.values() for key in keys]
        return dg.AutomationCondition.eager().allow(dg.AssetSelection.assets(*keys))

    def sensors(self, asset_job, target_keys: Sequence[dg.AssetKey]) -> list[dg.SensorDefinition]:
        """The sensors that evaluate the trigger (one automation sensor, or asset sensors)."""
        job = self.job
        if job.trigger is None:
            return []
        status = dg.DefaultSensorStatus.RUNNING if job.enabled else dg.DefaultSensorStatus.STOPPED
        if self.declarative:
            after = list(self.feeding)
            return [dg.AutomationConditionSensorDefinition(
                name=f"{job.key}_after_{'_'.join(after)}",
                target=dg.AssetSelection.assets(*target_keys),
                run_tags={"nexus/job": job.key, "nexus/triggered_by": ",".join(after)},
                default_status=status,
                minimum_interval_seconds=job.trigger.minimum_interval_seconds,
                description=f"Materialize the targets of {job.key} when "
                            f"{', '.join(after)} updated the tables it reads",
            )]
        return [_asset_sensor(job, asset_job, upstream, key, status)
                for upstream, key in self.watched.items()]


def trigger_plan(
    job: ETLJob,
    upstream_targets: Mapping[str, Sequence[dg.AssetKey]],
    source_keys: Collection[dg.AssetKey],
) -> TriggerPlan:
    """Choose the shape of ``job.trigger``.

    Args:
        job: the triggered job.
        upstream_targets: upstream job key -> the asset keys of its targets, in spec order,
            for the jobs in ``trigger.after`` (validation guarantees they exist).
        source_keys: the asset keys this job reads.
    """
    plan = TriggerPlan(job)
    if job.trigger is None:
        return plan
    feeding = {upstream: [key for key in upstream_targets[upstream] if key in source_keys]
               for upstream in job.trigger.after if upstream in upstream_targets}
    if feeding and all(feeding.values()):
        plan.feeding = feeding
    else:
        plan.watched = {upstream: keys[-1] for upstream, keys in upstream_targets.items()
                        if upstream in job.trigger.after}
    return plan


def _asset_sensor(job: ETLJob, asset_job, upstream: str, key: dg.AssetKey,
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
