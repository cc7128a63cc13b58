"""Retries against a real outage: the source PostgreSQL server (a dedicated one the test owns)
is stopped in the middle of an incremental extraction; a background thread starts it again
before the retry delay ends; attempt 2 loads every new row exactly once (append mode), the
cursor advances once, and the run's event log shows the two attempts.

The server holds the transfer open at a chosen row (a filter function in the source view, see
:class:`tests.integration.dedicated_pg.Trap`), so the stop always hits mid-stream, after some
batches already went into the target's open transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from nexus_dagster.dagster.factory import build_definitions
from nexus_dagster.spec.loader import load_project
from tests.integration.dedicated_pg import (
    PASSWORD,
    DedicatedPostgres,
    Trap,
    dedicated_postgres,
    run_sql,
)
from tests.integration.operations.conftest import sqlite_rows

pytestmark = pytest.mark.postgres

FIRST, TOTAL, STRIKE_AT, BATCH = 1_000, 4_000, 3_000, 250
#: seconds before attempt 2; the server is back well within it (a clean start, no recovery)
RETRY_DELAY = 4
#: the source table's asset (keyed by where it lives: <type>/<database>/<table>)
SOURCE_TABLE = "orders_view"


@pytest.fixture(scope="module")
def source_pg() -> Iterator[DedicatedPostgres]:
    with dedicated_postgres() as server:
        yield server


def _write_spec(folder: Path, server: DedicatedPostgres) -> Path:
    folder.mkdir()
    params = ", ".join(f"{k}: {v!r}" if isinstance(v, str) else f"{k}: {v}"
                       for k, v in server.params().items())
    (folder / "outage.yaml").write_text(f"""\
name: outage
retries: {{max_retries: 2, delay_seconds: {RETRY_DELAY}}}
sources:
  - {{name: orders, source_type: database, table: orders_view, incremental_column: id,
     incremental_value: 0, batch_size: {BATCH}, connection_params: {{{params}}}}}
targets:
  - {{name: orders_copy, target_type: database, table: orders_copy, write_mode: append,
     batch_size: {BATCH}, connection_params: {{type: sqlite, database: output/copy.db}}}}
""")
    return folder


def _fill(url: str, first: int, last: int) -> None:
    run_sql(url, f"INSERT INTO orders SELECT g, g * 0.25, 'row ' || g "
                 f"FROM generate_series({first}, {last}) g")


def _run(folder: Path, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    job = build_definitions(load_project(folder)).resolve_job_def("outage")
    return job.execute_in_process(instance=instance, raise_on_error=False)


def _source_observations(instance: dg.DagsterInstance, run_id: str) -> list:
    return [e.dagster_event.asset_observation_data.asset_observation.metadata
            for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_OBSERVATION)
            if e.dagster_event.asset_observation_data.asset_observation.asset_key.path[-1]
            == SOURCE_TABLE]


def test_source_outage_on_attempt_1_is_retried_and_loads_once(
    tmp_path: Path, monkeypatch, source_pg: DedicatedPostgres
):
    monkeypatch.setenv("NEXUS_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    url = source_pg.url
    trap = Trap(source_pg.dir, STRIKE_AT)
    run_sql(url, "CREATE TABLE orders (id int primary key, amount numeric(12,2), note text)",
            "CREATE FUNCTION nexus_hold(i int) RETURNS boolean LANGUAGE plpgsql VOLATILE AS "
            f"$$ BEGIN\n{trap.hold('i')}\n    RETURN true; END $$",
            "CREATE VIEW orders_view AS SELECT * FROM orders WHERE nexus_hold(id)")
    _fill(url, 1, FIRST)
    folder = _write_spec(tmp_path / "job_specs", source_pg)
    copy = tmp_path / "output/copy.db"
    count = "select count(*), count(distinct id), sum(id) from orders_copy"

    with dg.instance_for_test() as instance:
        assert _run(folder, instance).success
        assert sqlite_rows(copy, count) == [(FIRST, FIRST, FIRST * (FIRST + 1) // 2)]
        _fill(url, FIRST + 1, TOTAL)

        def outage() -> None:  # stop the server mid-extraction, then bring it back
            trap.wait(lambda: True)
            source_pg.stop("fast")  # ends the extracting session: attempt 1 fails
            source_pg.start()

        striker = threading.Thread(target=outage, daemon=True)
        trap.arm()
        striker.start()
        result = _run(folder, instance)
        striker.join(timeout=120)
        assert not striker.is_alive()

        assert result.success
        events = instance.all_logs(result.run_id)
        retried = [e for e in events
                   if e.dagster_event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
        restarted = [e for e in events
                     if e.dagster_event_type == dg.DagsterEventType.STEP_RESTARTED]
        assert len(retried) == 1 and len(restarted) == 1  # 2 attempts
        error = retried[0].dagster_event.event_specific_data.error.cause.message
        assert "RetriableError" in error and "orders_view" in error, error
        assert PASSWORD not in error

        # exactly one copy of every row: attempt 1's batches were never committed
        assert sqlite_rows(copy, count) == [(TOTAL, TOTAL, TOTAL * (TOTAL + 1) // 2)]
        # the cursor advanced once, by attempt 2
        cursors = [(m["nexus/cursor_before"].value, m["nexus/cursor_after"].value)
                   for m in _source_observations(instance, result.run_id)]
        assert cursors == [(str(FIRST), str(TOTAL))]
