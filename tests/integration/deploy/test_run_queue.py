"""The production instance (deploy/dagster.yaml on PostgreSQL) with the real `dagster-daemon`
and the code location served as deploy/Dockerfile serves it (`dagster code-server start`): a
24-partition `dagster job backfill` and 10 runs submitted with `dagster job launch` all go
through the queue and succeed, never more than 4 in progress at once (the file's limit); every
target equals its source, and run history and metrics are read back from PostgreSQL."""

from __future__ import annotations

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from nexus_dagster.dagster.execution import run_history
from nexus_dagster.dagster.metrics import RunEventExporter
from tests.integration.deploy.postgres_instance import BIN, code_server, most_at_once
from tests.integration.operations.servers import free_port
from tests.process_groups import dagster_daemon

pytestmark = [pytest.mark.slow, pytest.mark.daemon, pytest.mark.postgres]

DAYS = 24
PER_DAY = 6
COPY_JOBS = 5  # each launched twice: 10 ad-hoc runs
LIMIT = 4  # concurrency: runs: max_concurrent_runs in deploy/dagster.yaml
WAIT_SECONDS = 600  # 34 runs: ~2 minutes on an idle 2-core machine, ~7 under heavy load

DAILY = """\
name: daily_events
partitions: {daily: "2024-01-01"}
sources:
  - {name: events, source_type: database, connection_params: {url: "${PG_URL}"},
     table: events, incremental_column: ts}
targets:
  - {name: events_daily, target_type: database, connection_params: {url: "${PG_URL}"},
     table: events_daily, write_mode: append}
"""
COPY = """\
name: copy_{i}
sources:
  - {{name: items, source_type: database, connection_params: {{url: "${{PG_URL}}"}},
     query: "SELECT id, amount FROM items WHERE bucket = {i}"}}
targets:
  - {{name: items_{i}, target_type: database, connection_params: {{url: "${{PG_URL}}"}},
     table: items_{i}, write_mode: overwrite}}
"""


def _fill(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE events (id int PRIMARY KEY, amount numeric(10,2), ts timestamp)")
        connection.exec_driver_sql(
            f"INSERT INTO events SELECT g, g * 1.25, timestamp '2024-01-01' "
            f"+ (g - 1) * interval '{24 // PER_DAY} hours' "
            f"FROM generate_series(1, {DAYS * PER_DAY}) g")
        connection.exec_driver_sql(
            "CREATE TABLE items (id int PRIMARY KEY, bucket int, amount numeric(10,2))")
        connection.exec_driver_sql(
            f"INSERT INTO items SELECT g, mod(g, {COPY_JOBS}), g * 0.5 "
            f"FROM generate_series(1, 500) g")
    engine.dispose()


def _rows(url: str, sql: str) -> list[tuple]:
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        rows = [tuple(r) for r in connection.exec_driver_sql(sql)]
    engine.dispose()
    return rows


def _dagster(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([str(BIN / "dagster"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done


@pytest.mark.timeout(900)
def test_backfill_and_ad_hoc_runs_through_the_queue_on_postgres_storage(
    tmp_path: Path, pg_url: str, pg_home: tuple[Path, dict[str, str]]
):
    home, env = pg_home
    _fill(pg_url)
    specs = tmp_path / "job_specs"
    specs.mkdir()
    (specs / "daily_events.yaml").write_text(DAILY)
    for i in range(COPY_JOBS):
        (specs / f"copy_{i}.yaml").write_text(COPY.format(i=i))
    env = {**env, "PG_URL": pg_url, "NEXUS_JOB_SPECS": str(specs)}
    expected = DAYS + 2 * COPY_JOBS

    with (code_server(tmp_path, env, free_port(), tmp_path / "code_server.log"),
          dagster_daemon(tmp_path, env, tmp_path / "daemon.log")):
        _dagster(tmp_path, env, "job", "backfill", "-w", "workspace.yaml", "-j", "daily_events",
                 "--from", "2024-01-01", "--to", f"2024-01-{DAYS}", "--noprompt")
        with ThreadPoolExecutor(2) as pool:
            launches = [pool.submit(_dagster, tmp_path, env, "job", "launch", "-w",
                                    "workspace.yaml", "-j", f"copy_{i % COPY_JOBS}")
                        for i in range(2 * COPY_JOBS)]
            for launch in launches:
                launch.result()
        with dg.DagsterInstance.from_config(str(home)) as instance:
            deadline = time.monotonic() + WAIT_SECONDS
            while time.monotonic() < deadline:
                finished = instance.get_run_records(dg.RunsFilter(
                    statuses=[dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE,
                              dg.DagsterRunStatus.CANCELED]))
                if len(finished) >= expected:
                    break
                time.sleep(1)
            records = instance.get_run_records()
            registry = CollectorRegistry()
            polled = RunEventExporter(instance, registry=registry).poll()
    log = (tmp_path / "daemon.log").read_text()[-3000:]

    statuses = sorted((r.dagster_run.job_name, r.dagster_run.status.value) for r in records)
    assert len(records) == expected, statuses
    assert all(status == "SUCCESS" for _, status in statuses), (statuses, log)
    # every run went through the queue, and the queue never had more than LIMIT in progress
    assert all(r.dagster_run.tags.get("dagster/backfill") for r in records
               if r.dagster_run.job_name == "daily_events")
    peak = most_at_once(records)
    assert 1 < peak <= LIMIT, peak

    per_day = "SELECT ts::date, count(*), sum(amount) FROM {} GROUP BY 1 ORDER BY 1"
    source_days = _rows(pg_url, per_day.format("events"))
    assert len(source_days) == DAYS
    assert _rows(pg_url, per_day.format("events_daily")) == source_days
    for i in range(COPY_JOBS):
        assert _rows(pg_url, f"SELECT count(*), sum(amount) FROM items_{i}") == _rows(
            pg_url, f"SELECT count(*), sum(amount) FROM items WHERE bucket = {i}")

    history = run_history(home, "daily_events", limit=50)
    assert len(history) == DAYS and {r.status for r in history} == {"success"}
    assert sum(r.rows_loaded for r in history) == DAYS * PER_DAY
    assert polled == expected
    value = registry.get_sample_value
    assert value("nexus_runs_total", {"job": "daily_events", "status": "success"}) == DAYS
    assert value("nexus_rows_loaded_total",
                 {"job": "daily_events", "target": "events_daily"}) == DAYS * PER_DAY
    assert value("nexus_runs_total", {"job": "copy_0", "status": "success"}) == 2
