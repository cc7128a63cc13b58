"""The real `dagster-daemon` with the repo's dagster.yaml: a schedule tick runs job A, the
automation condition from `trigger: {after: job_a}` (B reads A's table) materializes job B's
target, A's success notification reaches a real HTTP server, and `dagster job backfill` of 3
days runs 3 partitions."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.selector import InstigatorSelector
from dagster._core.instance.ref import InstanceRef
from dagster._core.remote_origin import RemoteInstigatorOrigin, RemoteRepositoryOrigin
from dagster._core.scheduler.instigation import (
    InstigatorState,
    InstigatorStatus,
    InstigatorType,
    ScheduleInstigatorData,
)
from dagster._core.workspace.load_target import WorkspaceFileTarget

from nexus_dagster.dagster.execution import run_history
from tests.integration.operations.conftest import make_source, sqlite_rows, write_spec
from tests.integration.operations.servers import http_server
from tests.process_groups import BIN, dagster_daemon

REPO = Path(__file__).resolve().parents[3]
WAIT_SECONDS = 200
# the temp instance's queue: launch queued runs every second, several at a time
FAST_QUEUE = """
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config: {dequeue_interval_seconds: 1, dequeue_use_threads: true}
"""

JOB_A = """\
name: job_a
schedule: "* * * * *"
sources:
  - {name: events, source_type: database, table: events,
     connection_params: {type: sqlite, database: data/source.db}}
targets:
  - {name: a_out, target_type: database, table: a_out, write_mode: overwrite,
     connection_params: {type: sqlite, database: output/a.db}}
notifications:
  on_success: {webhook: ["${WEBHOOK_URL}"]}
"""
JOB_B = """\
name: job_b
trigger: {after: job_a, minimum_interval_seconds: 3}
sources:
  - {name: a_rows, source_type: database, table: a_out,
     connection_params: {type: sqlite, database: output/a.db}}
targets:
  - {name: b_out, target_type: database, table: b_out, write_mode: overwrite,
     connection_params: {type: sqlite, database: output/b.db}}
"""
DAILY = """\
name: daily_events
partitions: {daily: "2024-01-01"}
sources:
  - {name: events, source_type: database, table: events, incremental_column: ts,
     connection_params: {type: sqlite, database: data/source.db}}
targets:
  - {name: events_out, target_type: database, table: events_out,
     connection_params: {type: sqlite, database: output/daily.db}}
"""


def _schedule_started_a_minute_ago(
    instance: dg.DagsterInstance, workspace: Path, name: str
) -> None:
    """Record the schedule as running since just before the last minute boundary, so the
    daemon's first scheduler iteration finds that tick due (Dagster's catch-up of missed ticks)
    instead of waiting up to a minute for the next one. The state is keyed by the code
    location's origin as the daemon computes it from the workspace file; should it not match,
    the daemon starts the schedule itself and ticks at the next minute: slower, same test."""
    [location] = WorkspaceFileTarget([str(workspace)]).create_origins()
    origin = RemoteInstigatorOrigin(RemoteRepositoryOrigin(location, "__repository__"), name)
    selector = InstigatorSelector(location_name=location.location_name,
                                  repository_name="__repository__", name=name)
    boundary = time.time() // 60 * 60
    instance.add_instigator_state(InstigatorState(
        origin, InstigatorType.SCHEDULE, InstigatorStatus.RUNNING,
        ScheduleInstigatorData("* * * * *", start_timestamp=boundary - 1)))
    assert instance.get_instigator_state(origin.get_id(), selector.get_id()) is not None


def _successes(instance: dg.DagsterInstance, job: str) -> list[dg.DagsterRun]:
    return list(instance.get_runs(dg.RunsFilter(job_name=job,
                                                statuses=[dg.DagsterRunStatus.SUCCESS])))


def _automation_successes(instance: dg.DagsterInstance, job: str) -> list[dg.DagsterRun]:
    """Successful runs the automation sensor started for ``job`` (asset runs, tagged)."""
    return list(instance.get_runs(dg.RunsFilter(tags={"nexus/job": job},
                                                statuses=[dg.DagsterRunStatus.SUCCESS])))


@pytest.mark.slow
@pytest.mark.daemon
def test_daemon_schedule_automation_notification_and_cli_backfill(tmp_path: Path):
    total = make_source(tmp_path / "data/source.db", days=5, per_day=4)
    folder = tmp_path / "job_specs"
    for name, body in (("job_a", JOB_A), ("job_b", JOB_B), ("daily_events", DAILY)):
        write_spec(folder, name, body)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    with (home / "dagster.yaml").open("a") as config:
        config.write(FAST_QUEUE)
    shutil.copy(REPO / "workspace.yaml", tmp_path / "workspace.yaml")
    (tmp_path / "output").mkdir()
    # create the storage once, before two processes race to migrate it
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        _schedule_started_a_minute_ago(instance, tmp_path / "workspace.yaml", "job_a_schedule")

    with http_server() as (base, posts):
        env = {**os.environ, "DAGSTER_HOME": str(home), "WEBHOOK_URL": f"{base}/hook",
               "NEXUS_JOB_SPECS": str(folder)}
        with dagster_daemon(tmp_path, env, tmp_path / "daemon.log"):
            backfill = subprocess.run(
                [str(BIN / "dagster"), "job", "backfill", "-w", "workspace.yaml",
                 "-j", "daily_events", "--from", "2024-01-01", "--to", "2024-01-03",
                 "--noprompt"],
                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
            )
            assert backfill.returncode == 0, backfill.stdout[-2000:] + backfill.stderr[-2000:]
            with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
                deadline = time.monotonic() + WAIT_SECONDS
                while time.monotonic() < deadline:
                    done = (_successes(instance, "job_a")
                            and _automation_successes(instance, "job_b")
                            and len(_successes(instance, "daily_events")) == 3 and posts)
                    if done:
                        break
                    time.sleep(1)
                a_runs = _successes(instance, "job_a")
                b_runs = _automation_successes(instance, "job_b")
                failed = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
                assert not failed, [r.job_name for r in failed]
                daily = _successes(instance, "daily_events")
        detail = (tmp_path / "daemon.log").read_text()[-3000:]
        assert a_runs, "no scheduled run of job_a\n" + detail
        assert a_runs[-1].tags.get("dagster/schedule_name") == "job_a_schedule"
        assert b_runs, "job_b was not triggered\n" + detail
        assert b_runs[0].tags["nexus/triggered_by"] == "job_a"
        assert b_runs[0].tags.get("dagster/from_automation_condition") == "true"
        history = run_history(home, "job_b")
        assert [r.run_id for r in history] == [r.run_id for r in b_runs]
        assert history[0].status == "success" and history[0].rows_loaded == total
        assert sorted(r.tags["dagster/partition"] for r in daily) == [
            "2024-01-01", "2024-01-02", "2024-01-03"]
        hooks = [data for path, data in posts if path == "/hook"]
        assert hooks and hooks[0]["job"] == "job_a" and hooks[0]["status"] == "SUCCESS"

    assert sqlite_rows(tmp_path / "output/b.db", "select count(*) from b_out") == [(total,)]
    counts = sqlite_rows(tmp_path / "output/daily.db",
                         "select substr(ts, 1, 10), count(*) from events_out group by 1")
    assert counts == [("2024-01-01", 4), ("2024-01-02", 4), ("2024-01-03", 4)]
