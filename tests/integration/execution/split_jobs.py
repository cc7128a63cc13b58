"""The split-job tests' project (orders.csv joined with PostgreSQL customers), and running
spec jobs through ``dg.execute_job`` (so the job's own executor runs: step processes
for multiprocess) and reading their steps back from the instance."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import sqlalchemy as sa

from nexus_dagster.dagster.factory import definitions_from_folder
from tests.support import write_job

REPO = Path(__file__).resolve().parents[3]
JOB = "orders_report"


def spec_job(folder: str, job: str) -> dg.JobDefinition:
    """The asset job ``job`` of the spec folder ``folder`` (rebuilt in every step process)."""
    return definitions_from_folder(folder).resolve_job_def(job)


@dataclass
class Step:
    """One step of a run as its events tell it."""

    key: str
    pid: int
    started: float
    ended: float | None
    succeeded: bool


def launch(folder: Path, job: str, instance: dg.DagsterInstance,
           reexecute_from_failure_of: str | None = None) -> dg.DagsterRun:
    """Run ``job`` with its own executor (or re-execute a failed run from its failure);
    returns the finished run, failed or not."""
    recon = dg.build_reconstructable_job(
        "tests.integration.execution.split_jobs", "spec_job",
        reconstructable_args=(str(folder), job), reconstructor_working_directory=str(REPO),
    )
    options = None
    if reexecute_from_failure_of is not None:
        options = dg.ReexecutionOptions.from_failure(reexecute_from_failure_of, instance)
    with dg.execute_job(recon, instance=instance, raise_on_error=False,
                        reexecution_options=options) as result:
        run_id = result.run_id
    run = instance.get_run_by_id(run_id)
    assert run is not None
    return run


def steps(instance: dg.DagsterInstance, run_id: str) -> dict[str, Step]:
    """Step key -> its process id, start and end time, and outcome."""
    found: dict[str, Step] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            found[event.step_key] = Step(event.step_key, event.pid, entry.timestamp, None, False)
        elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS,
                                  dg.DagsterEventType.STEP_FAILURE):
            step = found.setdefault(event.step_key, Step(event.step_key, event.pid,
                                                         entry.timestamp, None, False))
            step.ended = entry.timestamp
            step.succeeded = event.event_type == dg.DagsterEventType.STEP_SUCCESS
    return found


def failure_messages(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """The messages of the run's step failures."""
    messages = []
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        error = entry.dagster_event.step_failure_data.error
        messages.append(error.message if error is not None else "")
    return messages


def write_orders(path: Path, *rows: tuple[int, int, float]) -> None:
    lines = ["order_id,customer_id,amount", *(f"{o},{c},{a}" for o, c, a in rows)]
    path.write_text("\n".join(lines) + "\n")


def project(root: Path, pg_url: str, *, table: str, execution: dict[str, Any] | None,
            customers_query: str | None = None) -> Path:
    """A project folder: orders (CSV, incremental) joined with customers (PostgreSQL) into a
    PostgreSQL table."""
    customers: dict[str, Any] = {"name": "customers", "source_type": "database",
                                 "connection_params": {"url": pg_url}}
    if customers_query:
        customers["query"] = customers_query
    else:
        customers["table"] = "customers"
    job: dict[str, Any] = {
        "name": JOB,
        "sources": [
            {"name": "orders", "source_type": "file", "file_path": str(root / "orders.csv"),
             "incremental_column": "order_id"},
            customers,
        ],
        "transformations": [{"name": "joined", "transformation_type": "join",
                             "config": {"left": "orders", "right": "customers",
                                        "on": "customer_id", "how": "left"}}],
        "targets": [{"name": "report", "target_type": "database",
                     "connection_params": {"url": pg_url}, "table": table,
                     "write_mode": "append"}],
    }
    if execution is not None:
        job["execution"] = execution
    return write_job(root, job)


def rows(engine: sa.Engine, table: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            f"SELECT order_id, customer_id, amount, name FROM {table} ORDER BY order_id"))]
