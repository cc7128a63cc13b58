"""What the crash tests share: a PostgreSQL source that holds the transfer at a chosen row,
a runner started as a real process (``nexus run`` or ``dagster job execute``), and digests of
rows wherever they landed.

The hold: the source is a view ``orders_view`` filtered by ``nexus_hold(id)``, a PL/pgSQL
function that, at row ``STRIKE_AT`` and while the table ``crash_hold`` has a row, sleeps (in
steps of 50 ms, 120 s at most). By then the rows before it are in the target's open load (the
general path streams); the test checks that on the target side, strikes, and releases the hold.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import sqlalchemy as sa
import yaml

from nexus_dagster.dagster.factory import CURSOR_KEY
from tests.integration.dedicated_pg import autocommit_engine, run_sql
from tests.support import last_endpoint_metadata

JOB = "sync_orders"
#: rows of the first run, the row the second run is held at, and the rows in the end; rows are
#: ~1 KB (2 KB into MariaDB) so that more than one 32 MB LOAD DATA chunk or 8 MiB S3 part is
#: in the open load when the hold is reached
FIRST, STRIKE_AT, TOTAL = 2_000, 38_000, 40_000
BATCH = 2_000

_HOLD = f"""
CREATE OR REPLACE FUNCTION nexus_hold(i int) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
DECLARE deadline timestamptz := clock_timestamp() + interval '120 seconds';
BEGIN
    IF i = {STRIKE_AT} THEN
        WHILE EXISTS (SELECT 1 FROM crash_hold) AND clock_timestamp() < deadline LOOP
            PERFORM pg_sleep(0.05);
        END LOOP;
    END IF;
    RETURN true;
END $$"""


def make_source(url: str, width: int = 1000) -> None:
    """Table ``orders`` with rows 1..FIRST (notes of about ``width`` characters), the hold
    function and the view read by the job."""
    run_sql(url,
            "CREATE TABLE orders (id int primary key, amount numeric(12,2), note text)",
            "CREATE TABLE crash_hold (armed int)",
            f"COMMENT ON TABLE orders IS '{width}'",
            _HOLD,
            "CREATE VIEW orders_view AS SELECT * FROM orders WHERE nexus_hold(id)")
    add_rows(url, 1, FIRST)


def add_rows(url: str, first: int, last: int) -> None:
    """Rows first..last, as wide as :func:`make_source` was told (the table's comment)."""
    run_sql(url, "INSERT INTO orders SELECT g, g * 0.25, 'row ' || g || ' ' || "
                 "repeat('x', obj_description('orders'::regclass)::int + g % 17) "
                 f"FROM generate_series({first}, {last}) g")


def write_project(folder: Path, source_url: str, target: dict[str, Any]) -> Path:
    """job_specs/sync_orders.yaml: orders_view (incremental on id) -> ``target`` (append)."""
    specs = folder / "job_specs"
    specs.mkdir(parents=True, exist_ok=True)
    job = {
        "name": JOB,
        "sources": [{"name": "orders", "source_type": "database",
                     "connection_params": {"url": source_url}, "table": "orders_view",
                     "incremental_column": "id", "incremental_value": 0, "batch_size": BATCH}],
        "targets": [{"name": "orders_copy", "write_mode": "append", "batch_size": BATCH,
                     **target}],
    }
    (specs / f"{JOB}.yaml").write_text(yaml.safe_dump(job, sort_keys=False))
    return specs


def digest(rows: Iterable[tuple[Any, Any, Any]]) -> tuple[int, str]:
    """(row count, sha256 of ``id:amount:note`` lines in id order): equal wherever rows went."""
    lines = sorted((int(i), f"{int(i)}:{Decimal(str(a)).quantize(Decimal('0.01'))}:{n}")
                   for i, a, n in rows)
    h = hashlib.sha256()
    for _, line in lines:
        h.update(line.encode() + b"\n")
    return len(lines), h.hexdigest()


def table_digest(url: str, table: str) -> tuple[int, str]:
    engine = autocommit_engine(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(table):
                return 0, hashlib.sha256().hexdigest()
            return digest(conn.execute(sa.text(f"SELECT id, amount, note FROM {table}")))
    finally:
        engine.dispose()


def source_digest(url: str) -> tuple[int, str]:
    return table_digest(url, "orders")


def cursor_value(job: str = JOB) -> str | None:
    """The source's cursor as the project's instance ($DAGSTER_HOME) holds it now."""
    with dg.DagsterInstance.get() as instance:
        meta = last_endpoint_metadata(instance, job, "orders")
    return meta[CURSOR_KEY].data["value"] if CURSOR_KEY in meta else None


def target_metadata(job: str = JOB) -> dict:
    with dg.DagsterInstance.get() as instance:
        return last_endpoint_metadata(instance, job, "orders_copy")


def source_held(url: str) -> bool:
    """True while the source's COPY sleeps in ``nexus_hold``."""
    engine = autocommit_engine(url)
    try:
        with engine.connect() as conn:
            return bool(conn.execute(sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event = 'PgSleep'")).scalar())
    finally:
        engine.dispose()


def source_backend(url: str) -> int:
    """The pid of the held source session."""
    engine = autocommit_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event = 'PgSleep'")).scalar_one())
    finally:
        engine.dispose()


@dataclass
class Runner:
    """A real runner process in its own session (so SIGKILL takes the step process too)."""

    proc: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=60)

    def wait(self) -> int:
        return self.proc.wait(timeout=240)


def launch(specs: Path, how: str, log: Path) -> Runner:
    """``nexus run sync_orders`` (how="nexus") or ``dagster job execute -m
    nexus_dagster.definitions -j sync_orders`` (how="dagster"), with this process's env."""
    bin_dir = Path(sys.executable).parent
    env = os.environ.copy()
    if how == "nexus":
        command = [str(bin_dir / "nexus"), "run", JOB, "--specs", str(specs)]
    else:
        command = [str(bin_dir / "dagster"), "job", "execute", "-m",
                   "nexus_dagster.definitions", "-j", JOB]
        env["NEXUS_JOB_SPECS"] = str(specs)
    out = log.open("wb")
    proc = subprocess.Popen(command, env=env, cwd=specs.parent, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)
    out.close()
    return Runner(proc, log)


def hold_and_launch(source_url: str, specs: Path, how: str, log: Path,
                    loading: Callable[[], bool]) -> Runner:
    """Arm the hold, start the runner, and return once the source is held and ``loading()``
    (the target-side evidence) is true; fails if the runner ends first."""
    run_sql(source_url, "INSERT INTO crash_hold VALUES (1)")
    runner = launch(specs, how, log)
    deadline = time.monotonic() + 150
    while not (source_held(source_url) and loading()):
        if runner.proc.poll() is not None:
            raise AssertionError(f"the runner ended before the strike:\n{runner.output()}")
        if time.monotonic() > deadline:
            runner.kill()
            raise AssertionError(f"the load never reached the held row:\n{runner.output()}")
        time.sleep(0.1)
    return runner


def release(source_url: str) -> None:
    run_sql(source_url, "DELETE FROM crash_hold")
