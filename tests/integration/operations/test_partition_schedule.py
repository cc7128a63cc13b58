"""A schedule on a partitioned job (``schedule`` + ``partitions``) builds, and each tick runs
the partition that just ended in the job's timezone."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg

from nexus_dagster.dagster.factory import build_definitions
from nexus_dagster.spec.loader import load_project
from tests.integration.operations.conftest import write_spec

SPEC = """\
name: daily_orders
schedule: "30 1 * * *"
timezone: Europe/Berlin
partitions: {daily: "2024-01-01"}
sources:
  - {name: events, source_type: database, table: events, incremental_column: ts,
     connection_params: {type: sqlite, database: data/source.db}}
targets:
  - {name: out, target_type: database, table: out,
     connection_params: {type: sqlite, database: output/out.db}}
"""


def test_partitioned_schedule_runs_the_partition_that_just_ended(tmp_path: Path):
    folder = tmp_path / "job_specs"
    write_spec(folder, "daily_orders", SPEC)
    defs = build_definitions(load_project(folder))
    schedule = defs.resolve_schedule_def("daily_orders_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("30 1 * * *",
                                                                     "Europe/Berlin")
    berlin = dt.timezone(dt.timedelta(hours=1))
    tick = dg.build_schedule_context(
        scheduled_execution_time=dt.datetime(2024, 3, 5, 1, 30, tzinfo=berlin),
        repository_def=defs.get_repository_def())
    [request] = schedule.evaluate_tick(tick).run_requests
    assert (request.partition_key, request.run_key) == ("2024-03-04", "2024-03-04")
    before = dg.build_schedule_context(
        scheduled_execution_time=dt.datetime(2024, 1, 1, 1, 30, tzinfo=berlin),
        repository_def=defs.get_repository_def())
    assert not schedule.evaluate_tick(before).run_requests  # no day has ended yet
