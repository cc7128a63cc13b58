"""A job split into steps (``execution: {steps: per_source}``) on real files and PostgreSQL: one
extraction step per source (staged as Parquet), one load step; run by Dagster's own executors
through ``dg.execute_job``."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from tests.integration.execution.split_jobs import (
    JOB,
    failure_messages,
    launch,
    project,
    rows,
    steps,
    write_orders,
)
from tests.support import last_endpoint_metadata, run_job, write_job

EXTRACT_ORDERS = f"{JOB}__etl.{JOB}__extract_orders"
EXTRACT_CUSTOMERS = f"{JOB}__etl.{JOB}__extract_customers"
LOAD = f"{JOB}__etl.{JOB}__load"


def staged_files(root: Path) -> list[str]:
    staging = root / ".nexus" / "staging"
    return sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())


@pytest.mark.slow
def test_split_job_on_multiprocess_loads_what_one_step_loads_with_concurrent_extractions(
    tmp_path: Path, pg_url: str, pg: sa.Engine, instance: dg.DagsterInstance
) -> None:
    """Same target rows as ``steps: one``; the run has 3 steps, and the two extraction steps
    ran in two processes at the same time (the PostgreSQL read takes 5 s: longer than a step
    process takes to start on a loaded machine)."""
    slow = "SELECT c.customer_id, c.name FROM customers c CROSS JOIN pg_sleep(5)"
    one, split = tmp_path / "one", tmp_path / "split"
    for root in (one, split):
        root.mkdir()
        write_orders(root / "orders.csv", (1, 1, 9.5), (2, 2, 20.0), (3, 9, 1.25))
    project(one, pg_url, table="report_one", execution=None, customers_query=slow)
    project(split, pg_url, table="report_split", customers_query=slow,
            execution={"steps": "per_source", "max_concurrent": 3})

    assert launch(one / "job_specs", JOB, instance).is_success
    run = launch(split / "job_specs", JOB, instance)
    assert run.is_success, failure_messages(instance, run.run_id)

    assert rows(pg, "report_split") == rows(pg, "report_one")
    assert len(rows(pg, "report_split")) == 3
    ran = steps(instance, run.run_id)
    assert set(ran) == {EXTRACT_ORDERS, EXTRACT_CUSTOMERS, LOAD}
    orders, customers = ran[EXTRACT_ORDERS], ran[EXTRACT_CUSTOMERS]
    assert orders.pid != customers.pid != ran[LOAD].pid
    overlap = orders.started < customers.ended and customers.started < orders.ended
    assert overlap, ran
    assert staged_files(split) == []  # removed after the commit


def test_split_job_second_run_loads_only_new_rows(
    tmp_path: Path, pg_url: str, pg: sa.Engine, instance: dg.DagsterInstance
) -> None:
    write_orders(tmp_path / "orders.csv", (1, 1, 1.0), (2, 2, 2.0))
    folder = project(tmp_path, pg_url, table="report",
                     execution={"steps": "per_source", "executor": "in_process"})
    assert launch(folder, JOB, instance).is_success
    write_orders(tmp_path / "orders.csv", (1, 1, 1.0), (2, 2, 2.0), (3, 3, 3.0))
    assert launch(folder, JOB, instance).is_success
    assert [r[0] for r in rows(pg, "report")] == [1, 2, 3]


def test_split_job_whose_extraction_predates_another_commit_fails_and_loads_nothing(
    tmp_path: Path, pg_url: str, pg: sa.Engine, instance: dg.DagsterInstance
) -> None:
    """Run A extracts, its load fails; run B extracts and commits; A re-executed from its
    failure must not load its (now stale) staged rows: it fails asking for a re-run."""
    write_orders(tmp_path / "orders.csv", (1, 1, 1.0), (2, 2, 2.0))
    folder = project(tmp_path, pg_url, table="report",
                     execution={"steps": "per_source", "executor": "in_process"})
    with pg.begin() as conn:  # A's load fails: a NOT NULL column the job does not fill
        conn.execute(sa.text("CREATE TABLE report (order_id BIGINT, customer_id BIGINT, "
                             "amount DOUBLE PRECISION, name TEXT, note TEXT NOT NULL)"))
    first = launch(folder, JOB, instance)
    assert not first.is_success
    with pg.begin() as conn:
        conn.execute(sa.text("ALTER TABLE report ALTER COLUMN note DROP NOT NULL"))
    assert launch(folder, JOB, instance).is_success  # B
    assert [r[0] for r in rows(pg, "report")] == [1, 2]

    again = launch(folder, JOB, instance, reexecute_from_failure_of=first.run_id)
    assert not again.is_success
    message = " ".join(failure_messages(instance, again.run_id))
    assert "another run has since committed it" in message and "re-run the job" in message
    assert [r[0] for r in rows(pg, "report")] == [1, 2]  # nothing loaded twice


def test_failed_split_load_keeps_staging_and_reexecution_loads_without_extracting(
    tmp_path: Path, pg_url: str, pg: sa.Engine, instance: dg.DagsterInstance
) -> None:
    write_orders(tmp_path / "orders.csv", (1, 1, 1.0), (2, 2, 2.0), (3, 3, 3.0))
    folder = project(tmp_path, pg_url, table="report",
                     execution={"steps": "per_source", "executor": "in_process"})
    with pg.begin() as conn:
        conn.execute(sa.text("CREATE TABLE report (order_id BIGINT, customer_id BIGINT, "
                             "amount DOUBLE PRECISION, name TEXT, note TEXT NOT NULL)"))
        conn.execute(sa.text("INSERT INTO report VALUES (0, 0, 0, 'old', 'kept')"))

    failed = launch(folder, JOB, instance)
    assert not failed.is_success
    assert "note" in " ".join(failure_messages(instance, failed.run_id))
    assert rows(pg, "report") == [(0, 0, 0.0, "old")]  # unchanged
    prefix = f"nexus-staging/{JOB}/{failed.run_id}"
    assert staged_files(tmp_path) == [
        f"{prefix}/customers/data.parquet", f"{prefix}/customers/manifest.json",
        f"{prefix}/orders/data.parquet", f"{prefix}/orders/manifest.json",
    ]

    with pg.begin() as conn:
        conn.execute(sa.text("ALTER TABLE report ALTER COLUMN note DROP NOT NULL"))
    again = launch(folder, JOB, instance, reexecute_from_failure_of=failed.run_id)
    assert again.is_success, failure_messages(instance, again.run_id)
    assert set(steps(instance, again.run_id)) == {LOAD}  # the extractions were not re-run
    assert [r[0] for r in rows(pg, "report")] == [0, 1, 2, 3]
    assert staged_files(tmp_path) == []


def test_split_job_runs_in_process_as_nexus_run_does(tmp_path: Path) -> None:
    """``nexus run`` and the Python API run jobs with ``execute_in_process``: a split job's
    three steps run there one after another, with the same rows and source cursors."""
    (tmp_path / "a.csv").write_text("id,name\n1,a\n2,b\n3,c\n")
    (tmp_path / "b.csv").write_text("id,score\n1,10\n3,30\n")
    folder = write_job(tmp_path, {
        "name": "files", "execution": {"steps": "per_source"},
        "sources": [{"name": "a", "source_type": "file", "file_path": "a.csv",
                     "incremental_column": "id"},
                    {"name": "b", "source_type": "file", "file_path": "b.csv"}],
        "transformations": [{"name": "joined", "transformation_type": "join",
                             "config": {"left": "a", "right": "b", "on": "id"}}],
        "targets": [{"name": "out", "target_type": "file", "file_path": "out.csv"}],
    })
    instance = dg.DagsterInstance.ephemeral()
    result = run_job(folder, "files", instance)
    assert result.success
    assert [e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"] == [
        "files__etl.files__extract_a", "files__etl.files__extract_b", "files__etl.files__load"]
    assert (tmp_path / "out.csv").read_text().splitlines() == [
        '"id","name","score"', '1,"a",10', '3,"c",30']
    assert last_endpoint_metadata(instance, "files", "a")["nexus/cursor_after"].value == "3"
    assert staged_files(tmp_path) == []
