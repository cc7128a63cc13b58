"""Spec ``partitions`` -> Dagster time-window partitions of a job's targets.

A partition run reads the rows of its window from each source (``start <= incremental_column
< end``) and replaces that window in the targets in one transaction, so re-running a partition
never duplicates rows. A range of partitions (a single-run backfill) is one window.

Example:
    >>> definition = partitions_def(job)        # DailyPartitionsDefinition(start_date=...)
    >>> start, end = window(context)             # inside the asset, ISO timestamps
"""

from __future__ import annotations

import dagster as dg

from nexus_dagster.connectors.registry import connector_class
from nexus_dagster.spec.models import ETLJob

_CLASSES = {
    "hourly": dg.HourlyPartitionsDefinition,
    "daily": dg.DailyPartitionsDefinition,
    "monthly": dg.MonthlyPartitionsDefinition,
}


def partitions_def(job: ETLJob) -> dg.TimeWindowPartitionsDefinition | None:
    """The job's time-window partitions (in the job's ``timezone``, UTC by default)."""
    spec = job.partitions
    if spec is None:
        return None
    return _CLASSES[spec.cadence](
        start_date=spec.start, timezone=job.timezone or "UTC", end_offset=spec.end_offset
    )


def backfill_policy(job: ETLJob) -> dg.BackfillPolicy:
    """How a backfill runs: ONE run for a whole range when every target replaces a window in
    one transaction (``supports_replace_range``: a range of partitions is one window),
    otherwise one run per partition."""
    if all(connector_class(t.target_type).supports_replace_range for t in job.targets):
        return dg.BackfillPolicy.single_run()
    return dg.BackfillPolicy.multi_run(max_partitions_per_run=1)


def window(context: dg.AssetExecutionContext) -> tuple[str, str] | None:
    """(start, end) of the run's partition or partition range as ISO timestamps with offset,
    None for an unpartitioned run."""
    if not context.has_partition_key_range and not context.has_partition_key:
        return None
    time_window = context.partition_time_window
    return time_window.start.isoformat(), time_window.end.isoformat()


def schedule(job: ETLJob, asset_job, default_status: dg.DefaultScheduleStatus):
    """A schedule for a partitioned job: each tick runs the partition that just ended, at the
    spec's cron (``schedule``) or, without one, at the partitions' cadence.

    Dagster's ``build_schedule_from_partitioned_job`` takes no cron for time-window partitions,
    so the tick picks the last complete partition at its scheduled time itself (keyed by the
    partition, so a tick never starts the same partition twice).
    """
    definition = partitions_def(job)
    assert definition is not None

    @dg.schedule(
        name=f"{job.key}_schedule",
        cron_schedule=job.schedule or definition.get_cron_schedule(),
        job=asset_job,
        execution_timezone=job.timezone or "UTC",
        default_status=default_status,
        description=f"Run the {job.key} partition that just ended",
    )
    def _tick(context: dg.ScheduleEvaluationContext):
        with dg.partition_loading_context(effective_dt=context.scheduled_execution_time):
            key = definition.get_last_partition_key()
        if key is None:
            return dg.SkipReason(f"no {job.key} partition has ended yet")
        return dg.RunRequest(run_key=key, partition_key=key)

    return _tick
