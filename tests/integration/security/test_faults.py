"""Nothing lost: the source restarted mid-extraction, the target killed mid-load, the runner
SIGKILLed mid-load. Each time the target is unchanged (never partial), the incremental cursor
is unchanged, and the next run loads exactly the right rows (count and checksum).

The faults are real: ``pg_ctl -m immediate`` on a dedicated server of the test's own, SIGKILL
of a real runner process. To hit the middle of the transfer whatever path the rows take
(COPY pipe, batches), the database itself holds the transfer open at a chosen row: a function
(source view) or a row trigger (target table) writes a marker file and sleeps once "armed";
the test waits for the marker, then strikes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from nexus_dagster.dagster.factory import CURSOR_KEY, build_definitions
from nexus_dagster.spec.loader import load_project
from tests.integration.dedicated_pg import Trap
from tests.integration.dedicated_pg import autocommit_engine as _engine
from tests.integration.dedicated_pg import run_sql as _sql
from tests.support import last_endpoint_metadata

pytestmark = pytest.mark.postgres

FIRST, TOTAL, STRIKE_AT = 2_000, 8_000, 5_000
BATCH = 500
CHECKSUM = ("SELECT count(*), coalesce(sum(id), 0), md5(coalesce(string_agg(id::text || ':' "
            "|| amount::text || ':' || note, ',' ORDER BY id), '')) FROM {table}")


def _fill(url: str, table: str, first: int, last: int) -> None:
    _sql(url,
         f"CREATE TABLE IF NOT EXISTS {table} (id int primary key, amount numeric(12,2), "
         "note text)",
         f"INSERT INTO {table} SELECT g, g * 0.25, 'row ' || g || repeat('x', g % 17) "
         f"FROM generate_series({first}, {last}) g")


def _checksum(url: str, table: str) -> tuple:
    engine = _engine(url)
    with engine.connect() as conn:
        value = tuple(conn.execute(sa.text(CHECKSUM.format(table=table))).one())
    engine.dispose()
    return value


def _project(tmp_path: Path, source: dict, target: dict, table: str = "orders") -> Path:
    specs = tmp_path / "job_specs"
    specs.mkdir(exist_ok=True)
    job = {
        "name": "sync_orders",
        "sources": [{"name": "orders", "source_type": "database", "connection_params": source,
                     "table": table, "incremental_column": "id", "incremental_value": 0,
                     "batch_size": BATCH}],
        "targets": [{"name": "orders_copy", "target_type": "database",
                     "connection_params": target, "table": "orders_copy",
                     "write_mode": "append", "batch_size": BATCH}],
    }
    (specs / "sync_orders.yaml").write_text(yaml.safe_dump(job, sort_keys=False))
    return specs


def _run(specs: Path, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    job = build_definitions(load_project(specs)).resolve_job_def("sync_orders")
    return job.execute_in_process(instance=instance, raise_on_error=False)


def _cursor(instance: dg.DagsterInstance) -> str | None:
    meta = last_endpoint_metadata(instance, "sync_orders", "orders")
    return meta[CURSOR_KEY].data["value"] if CURSOR_KEY in meta else None


def _run_struck(specs: Path, instance: dg.DagsterInstance, trap: Trap,
                strike: Callable[[], None]) -> dg.ExecuteInProcessResult:
    """Run in a thread; when the database holds the transfer, ``strike``."""
    outcome: list = []
    thread = threading.Thread(target=lambda: outcome.append(_run(specs, instance)))
    trap.arm()
    thread.start()
    try:
        trap.wait(thread.is_alive)
        strike()
    finally:
        thread.join(timeout=300)
    assert outcome, "the run did not finish"
    return outcome[0]


def _check_healed(specs, instance, source_url, target_url, loaded):
    assert _checksum(target_url, "orders_copy") == loaded  # unchanged, not partial
    assert _cursor(instance) == str(FIRST)  # the cursor did not move
    assert _run(specs, instance).success
    assert _cursor(instance) == str(TOTAL)
    final = _checksum(target_url, "orders_copy")
    assert final == _checksum(source_url, "orders") and final[0] == TOTAL


def test_source_restarted_mid_extraction(tmp_path, monkeypatch, dedicated_pg, pg_url):
    monkeypatch.setenv("NEXUS_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    src = dedicated_pg.url
    trap = Trap(dedicated_pg.dir, STRIKE_AT)
    _sql(src, "DROP VIEW IF EXISTS orders_view", "DROP TABLE IF EXISTS orders")
    _fill(src, "orders", 1, FIRST)
    _sql(src, "CREATE OR REPLACE FUNCTION nexus_hold(i int) RETURNS boolean LANGUAGE plpgsql "
              f"VOLATILE AS $$ BEGIN\n{trap.hold('i')}\n    RETURN true; END $$",
         "CREATE VIEW orders_view AS SELECT * FROM orders WHERE nexus_hold(id)")
    specs = _project(tmp_path, dedicated_pg.params(), {"url": pg_url}, table="orders_view")
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        assert _run(specs, instance).success and _cursor(instance) == str(FIRST)
        loaded = _checksum(pg_url, "orders_copy")
        assert loaded == _checksum(src, "orders")
        _fill(src, "orders", FIRST + 1, TOTAL)
        result = _run_struck(specs, instance, trap, lambda: dedicated_pg.restart("immediate"))
        assert not result.success
        _check_healed(specs, instance, src, pg_url, loaded)


def test_target_killed_mid_load(tmp_path, monkeypatch, dedicated_pg, pg_url):
    monkeypatch.setenv("NEXUS_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    dst = dedicated_pg.url
    trap = Trap(dedicated_pg.dir, STRIKE_AT)
    _sql(dst, "DROP TABLE IF EXISTS orders_copy")
    _fill(pg_url, "orders", 1, FIRST)
    specs = _project(tmp_path, {"url": pg_url}, dedicated_pg.params())
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        assert _run(specs, instance).success
        loaded = _checksum(dst, "orders_copy")
        assert loaded == _checksum(pg_url, "orders")
        _sql(dst, "CREATE OR REPLACE FUNCTION nexus_hold_row() RETURNS trigger LANGUAGE plpgsql "
                  f"AS $$ BEGIN\n{trap.hold('NEW.id')}\n    RETURN NEW; END $$",
             "CREATE TRIGGER nexus_hold BEFORE INSERT ON orders_copy FOR EACH ROW "
             "EXECUTE FUNCTION nexus_hold_row()")
        _fill(pg_url, "orders", FIRST + 1, TOTAL)
        try:
            result = _run_struck(specs, instance, trap,
                                 lambda: dedicated_pg.stop("immediate"))
        finally:
            dedicated_pg.start()
        assert not result.success
        _check_healed(specs, instance, pg_url, dst, loaded)


RUNNER = """\
import sys
import dagster as dg
from nexus_dagster.dagster.factory import build_definitions
from nexus_dagster.spec.loader import load_project
job = build_definitions(load_project(sys.argv[1])).resolve_job_def("sync_orders")
with dg.DagsterInstance.get() as instance:
    job.execute_in_process(instance=instance, raise_on_error=False)
"""


def test_runner_sigkilled_mid_load(tmp_path, monkeypatch, dedicated_pg, pg_url):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("NEXUS_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    dst = dedicated_pg.url
    trap = Trap(dedicated_pg.dir, STRIKE_AT)
    _sql(dst, "DROP TABLE IF EXISTS orders_copy")
    _fill(pg_url, "orders", 1, FIRST)
    specs = _project(tmp_path, {"url": pg_url}, dedicated_pg.params())
    with dg.DagsterInstance.get() as instance:
        assert _run(specs, instance).success
    loaded = _checksum(dst, "orders_copy")
    _sql(dst, "CREATE OR REPLACE FUNCTION nexus_hold_row() RETURNS trigger LANGUAGE plpgsql "
              f"AS $$ BEGIN\n{trap.hold('NEW.id')}\n    RETURN NEW; END $$",
         "CREATE TRIGGER nexus_hold BEFORE INSERT ON orders_copy FOR EACH ROW "
         "EXECUTE FUNCTION nexus_hold_row()")
    _fill(pg_url, "orders", FIRST + 1, TOTAL)

    trap.arm()
    proc = subprocess.Popen([sys.executable, "-c", RUNNER, str(specs)], env=os.environ.copy(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        trap.wait(lambda: proc.poll() is None)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        stderr = proc.communicate(timeout=60)[1]
    assert proc.returncode == -signal.SIGKILL, stderr[-2000:]
    # the killed runner's session is still sleeping on the server: end it, as the server
    # would once it noticed the dead client
    _sql(dst, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
              "WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'")
    with dg.DagsterInstance.get() as instance:
        _check_healed(specs, instance, pg_url, dst, loaded)
