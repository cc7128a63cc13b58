"""deploy/dagster.yaml as the instance of `nexus run`, the Python API and the metrics exporter:
run history, the incremental cursor and metrics are read back from PostgreSQL storage (a second
run loads only the rows added since the first)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from nexus_dagster import DataSource, DataTarget, ETLJob, ETLManager, SourceType, TargetType
from nexus_dagster.dagster.execution import run_history
from nexus_dagster.dagster.metrics import RunEventExporter

pytestmark = pytest.mark.postgres

NEXUS = Path(sys.executable).parent / "nexus"
SPEC = """\
name: sync_orders
sources:
  - {name: orders, source_type: database, connection_params: {url: "${PG_URL}"},
     table: orders, incremental_column: id, incremental_value: 0}
targets:
  - {name: orders_copy, target_type: database, connection_params: {url: "${PG_URL}"},
     table: orders_copy, write_mode: append}
"""


def _add_orders(url: str, first: int, last: int) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE IF NOT EXISTS orders (id int PRIMARY KEY, amount numeric(10,2))")
        connection.exec_driver_sql(
            f"INSERT INTO orders SELECT g, g * 0.5 FROM generate_series({first}, {last}) g")
    engine.dispose()


def _scalar(url: str, sql: str):
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        value = connection.exec_driver_sql(sql).scalar()
    engine.dispose()
    return value


def _storage_url() -> str:
    env = os.environ
    return (f"postgresql+psycopg2://{env['DAGSTER_PG_USER']}:{env['DAGSTER_PG_PASSWORD']}@"
            f"{env['DAGSTER_PG_HOST']}:{env['DAGSTER_PG_PORT']}/{env['DAGSTER_PG_DB']}")


def test_nexus_run_keeps_cursor_history_and_metrics_in_postgres_storage(
    tmp_path: Path, pg_url: str, pg_home: tuple[Path, dict[str, str]]
):
    home, env = pg_home
    specs = tmp_path / "job_specs"
    specs.mkdir()
    (specs / "sync_orders.yaml").write_text(SPEC)
    _add_orders(pg_url, 1, 100)
    command = [str(NEXUS), "run", "sync_orders", "--specs", str(specs)]
    first = subprocess.run(command, cwd=tmp_path, env={**env, "PG_URL": pg_url},
                           capture_output=True, text=True, timeout=180)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    _add_orders(pg_url, 101, 130)
    second = subprocess.run(command, cwd=tmp_path, env={**env, "PG_URL": pg_url},
                            capture_output=True, text=True, timeout=180)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]

    # the second run started from the cursor the first one stored in PostgreSQL
    assert "30 loaded" in second.stdout
    assert _scalar(pg_url, "SELECT count(DISTINCT id) FROM orders_copy") == 130
    assert _scalar(pg_url, "SELECT count(*) FROM orders_copy") == 130
    # nothing was written under DAGSTER_HOME but the config: runs and events are in PostgreSQL
    assert _scalar(_storage_url(), "SELECT count(*) FROM runs "
                                   "WHERE pipeline_name = 'sync_orders'") == 2
    assert not any(p.suffix == ".db" for p in home.rglob("*"))

    history = run_history(home, "sync_orders")
    assert [(r.status, r.rows_loaded) for r in history] == [("success", 30), ("success", 100)]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        registry = CollectorRegistry()
        assert RunEventExporter(instance, registry=registry).poll() == 2
    value = registry.get_sample_value
    assert value("nexus_runs_total", {"job": "sync_orders", "status": "success"}) == 2
    assert value("nexus_rows_loaded_total", {"job": "sync_orders", "target": "orders_copy"}) == 130


def test_python_api_on_the_production_instance_reads_its_history_from_postgres(
    tmp_path: Path, pg_url: str, pg_home: tuple[Path, dict[str, str]]
):
    home, _ = pg_home
    workspace = tmp_path / "ws"
    (workspace / ".dagster").mkdir(parents=True)
    (workspace / ".dagster" / "dagster.yaml").write_bytes((home / "dagster.yaml").read_bytes())
    manager = ETLManager(workspace_dir=workspace)
    _add_orders(pg_url, 1, 50)
    job_id = manager.create_job(ETLJob(
        name="orders_api",
        sources=[DataSource(name="orders", source_type=SourceType.DATABASE,
                            connection_params={"url": pg_url}, table="orders",
                            incremental_column="id", incremental_value=0)],
        targets=[DataTarget(name="orders_api_copy", target_type=TargetType.DATABASE,
                            connection_params={"url": pg_url}, table="orders_api_copy",
                            write_mode="append")],
    ))
    first = manager.execute_job(job_id)
    _add_orders(pg_url, 51, 60)
    second = manager.execute_job(job_id)

    assert (first.status.value, first.rows_loaded) == ("success", 50)
    assert (second.status.value, second.rows_loaded) == ("success", 10)
    assert [m.rows_loaded for m in manager.get_job_metrics(job_id)] == [10, 50]
    assert _scalar(_storage_url(), "SELECT count(*) FROM runs "
                                   "WHERE pipeline_name = 'orders_api'") == 2
    assert _scalar(pg_url, "SELECT count(*) FROM orders_api_copy") == 60
    assert not any(p.suffix == ".db" for p in (workspace / ".dagster").rglob("*"))
