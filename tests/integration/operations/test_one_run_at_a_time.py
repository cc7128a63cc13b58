"""One run of a job at a time, whatever launched it: two real `dagster job execute` processes
started at the same moment on one instance, against real PostgreSQL.

The source query sleeps 2 s once per read, so the two runs' cursor read -> load -> commit would
overlap without the locks. Each run records the cursor it started from (``nexus/cursor_before``)
and the one it committed (``nexus/cursor_after``) on the source asset: serialized runs chain
(the second starts from the first's cursor), and the target holds every row exactly once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from nexus_dagster.dagster.guards import lock_folder
from nexus_dagster.errors import RunLockError
from nexus_dagster.run.locks import FileLock, NamedLock, hold

pytestmark = pytest.mark.postgres
REPO = Path(__file__).resolve().parents[3]

ROWS = 3_000
SLOW_SOURCE = "SELECT s.* FROM src s CROSS JOIN (SELECT pg_sleep(2)) AS pause"


def _spec(folder: Path, name: str, table: str, target: str = "dst") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(textwrap.dedent(f"""\
        name: {name}
        sources:
          - {{name: src, source_type: database, connection_params: {{url: "${{PG_URL}}"}},
             query: "{SLOW_SOURCE.replace('src', table)}", incremental_column: id,
             incremental_value: 0}}
        targets:
          - {{name: dst, target_type: database, connection_params: {{url: "${{PG_URL}}"}},
             table: {target}, write_mode: append}}
        """))


def _fill(url: str, table: str, first: int, last: int) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            f"CREATE TABLE IF NOT EXISTS {table} (id int PRIMARY KEY, amount numeric(10,2))")
        connection.exec_driver_sql(
            f"INSERT INTO {table} SELECT g, g * 0.5 FROM generate_series({first}, {last}) g")
    engine.dispose()


def _launch_together(tmp_path: Path, home: Path, url: str, jobs: list[str]) -> list:
    """Start one `dagster job execute` per job at the same moment; wait for all."""
    env = {**os.environ, "DAGSTER_HOME": str(home), "NEXUS_JOB_SPECS": str(tmp_path / "specs"),
           "PG_URL": url}
    command = [sys.executable, "-m", "dagster", "job", "execute", "-m",
               "nexus_dagster.definitions", "-j"]
    barrier = threading.Barrier(len(jobs))
    done: list = [None] * len(jobs)

    def one(index: int, job: str) -> None:
        barrier.wait()
        done[index] = subprocess.run([*command, job], cwd=tmp_path, env=env,
                                     capture_output=True, text=True, timeout=240)

    threads = [threading.Thread(target=one, args=(i, j)) for i, j in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return done


def _observations(instance: dg.DagsterInstance, job: str) -> list[dict]:
    """The source observations each run of ``job`` recorded (oldest first)."""
    found = []
    for record in instance.get_run_records(dg.RunsFilter(job_name=job)):
        for entry in instance.all_logs(record.dagster_run.run_id,
                                       of_type=dg.DagsterEventType.ASSET_OBSERVATION):
            meta = entry.dagster_event.asset_observation_data.asset_observation.metadata
            found.append({k: getattr(v, "value", v) for k, v in meta.items()}
                         | {"run_id": record.dagster_run.run_id})
    return found


def _logged(instance: dg.DagsterInstance, job: str, text: str) -> bool:
    for record in instance.get_run_records(dg.RunsFilter(job_name=job)):
        for entry in instance.all_logs(record.dagster_run.run_id):
            if text in (entry.user_message or ""):
                return True
    return False


def _home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with dg.DagsterInstance.from_config(str(home)):  # created once, before parallel launches
        pass
    return home


def _target_rows(url: str, table: str = "dst") -> tuple[int, int]:
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        count, distinct = connection.exec_driver_sql(
            f"SELECT count(*), count(DISTINCT id) FROM {table}").one()
    engine.dispose()
    return count, distinct


def test_two_runs_of_one_incremental_append_job_started_together_load_each_row_once(
    tmp_path: Path, pg_url: str
):
    _fill(pg_url, "src", 1, ROWS)
    _spec(tmp_path / "specs", "sync_orders", "src")
    home = _home(tmp_path)
    first, second = _launch_together(tmp_path, home, pg_url, ["sync_orders", "sync_orders"])
    assert first.returncode == 0, first.stderr[-3000:]
    assert second.returncode == 0, second.stderr[-3000:]
    # the target did not exist: both runs wanted to create it, neither hit DuplicateTable
    assert _target_rows(pg_url) == (ROWS, ROWS)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert _logged(instance, "sync_orders", "waiting for job sync_orders")
        runs = sorted(_observations(instance, "sync_orders"),
                      key=lambda m: int(m.get("nexus/rows_extracted", 0)), reverse=True)
    assert [m["nexus/rows_extracted"] for m in runs] == [ROWS, 0]
    # the second run started from the cursor the first one committed
    assert runs[0]["nexus/cursor_after"] == str(ROWS)
    assert runs[1]["nexus/cursor_before"] == str(ROWS) == runs[1]["nexus/cursor_after"]


def test_two_jobs_writing_one_table_started_together_take_turns(tmp_path: Path, pg_url: str):
    _fill(pg_url, "src_a", 1, ROWS)
    _fill(pg_url, "src_b", ROWS + 1, 2 * ROWS)
    _spec(tmp_path / "specs", "from_a", "src_a", target="shared")
    _spec(tmp_path / "specs", "from_b", "src_b", target="shared")
    # two targets writing one asset need their own asset keys
    for name in ("from_a", "from_b"):
        path = tmp_path / "specs" / f"{name}.yaml"
        path.write_text(path.read_text().replace(
            "write_mode: append}", f"write_mode: append, asset_key: {name}/shared}}"))
    home = _home(tmp_path)
    runs = _launch_together(tmp_path, home, pg_url, ["from_a", "from_b"])
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr[-2000:] + runs[1].stderr[-2000:]
    assert _target_rows(pg_url, "shared") == (2 * ROWS, 2 * ROWS)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        waited = [job for job in ("from_a", "from_b")
                  if _logged(instance, job, "waiting for target table")]
    assert len(waited) == 1  # one job waited for the other's lock on the table


def test_a_lock_held_past_the_timeout_fails_the_run_naming_the_lock_and_holder(tmp_path: Path):
    path = tmp_path / "job-x.lock"
    holder = FileLock(path)
    assert holder.try_acquire("run 1 of job x")
    try:
        expected = r"job x is still held by run 1 of job x after 0\.5 s.*NEXUS_LOCK_TIMEOUT"
        with (pytest.raises(RunLockError, match=expected),
              hold([NamedLock("job x", FileLock(path))], holder="run 2", timeout=0.5)):
            pass
    finally:
        holder.release()
    with hold([NamedLock("job x", FileLock(path))], holder="run 3", timeout=0.5):
        assert path.read_text() == "run 3"


def test_locks_of_an_instance_live_in_its_folder(tmp_path: Path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        assert lock_folder(instance) == tmp_path / "nexus_locks"


def test_each_jobs_step_is_in_its_own_pool_limited_to_one_by_the_production_profile(
    tmp_path: Path,
):
    from nexus_dagster.dagster.factory import build_definitions
    from nexus_dagster.spec.loader import load_project

    _spec(tmp_path / "specs", "sync_orders", "src")
    defs = build_definitions(load_project(tmp_path / "specs"))
    etl = next(a for a in defs.assets if getattr(a, "op", None) and a.op.name.endswith("__etl"))
    assert etl.op.pool == "nexus/sync_orders"
    production = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
    assert production["concurrency"]["pools"] == {"default_limit": 1}
    assert production["run_monitoring"]["enabled"] is True


def test_a_dead_run_holding_the_pool_slot_does_not_block_the_next_run_on_the_local_profile(
    tmp_path: Path,
):
    """A run killed with kill -9 never gives its pool slot back (nothing marks it finished
    without the daemon's run monitoring): the local profile therefore sets no pool limit, and
    the next run proceeds, serialized by nexus's own locks instead."""
    from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus

    from nexus_dagster.dagster.execution import execute_job
    from nexus_dagster.spec.loader import load_project

    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(home)) as instance:
        dead = DagsterRun(job_name="demo_orders", run_id="0" * 8 + "-dead-run-0000-000000000000",
                          status=DagsterRunStatus.STARTED)
        instance.add_run(dead)
        storage = instance.event_log_storage
        storage.initialize_concurrency_limit_to_default("nexus/demo_orders")
        storage.claim_concurrency_slot("nexus/demo_orders", dead.run_id, "demo_orders__etl")
    specs = tmp_path / "specs"
    specs.mkdir()
    (tmp_path / "in.csv").write_text("id,city\n1,Lima\n2,Kyoto\n")
    (specs / "demo_orders.yaml").write_text(textwrap.dedent("""\
        name: demo_orders
        sources: [{name: cities, source_type: file, file_path: in.csv}]
        targets: [{name: out, target_type: file, file_path: out.parquet}]
        """))
    report = execute_job(load_project(specs), "demo_orders", dagster_home=home)
    assert report.status == "success", report.errors
    assert report.rows_loaded == 2
