"""Jobs from specs run through Dagster: demo, incremental cursor, failure safety, CLI."""

from __future__ import annotations

import csv
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq
import pytest

from nexus_dagster.dagster.factory import CURSOR_KEY
from tests.support import endpoint_events, last_endpoint_metadata, run_job

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
DAGSTER_EXECUTE = [str(VENV_BIN / "dagster"), "job", "execute", "-m", "nexus_dagster.definitions",
                   "-j", "demo_orders"]


@pytest.fixture
def demo_project(tmp_path: Path) -> Path:
    """A copy of the repo's specs and demo data, so outputs land in tmp_path."""
    shutil.copytree(REPO / "job_specs", tmp_path / "job_specs")
    shutil.copytree(REPO / "data", tmp_path / "data")
    return tmp_path


def expected_demo() -> pd.DataFrame:
    df = pd.read_csv(REPO / "data/demo/orders.csv")
    df = df[(df.status == "paid") & (df.quantity > 0)].copy()
    df["revenue"] = df.quantity * df.unit_price
    df["net_revenue"] = df.revenue * (1 - df.discount_rate)
    df["order_day"] = pd.to_datetime(df.order_date).dt.date
    out = df.groupby(["order_day", "category"], as_index=False).agg(
        orders=("order_id", "count"),
        items=("quantity", "sum"),
        revenue=("revenue", "sum"),
        net_revenue=("net_revenue", "sum"),
        avg_order_value=("revenue", "mean"),
    )
    return out.sort_values(["order_day", "revenue"], ascending=[False, False]).reset_index(
        drop=True
    )


def test_demo_job_end_to_end(demo_project: Path):
    instance = dg.DagsterInstance.ephemeral()
    result = run_job(demo_project / "job_specs", "demo_orders", instance)
    assert result.success
    expected = expected_demo()

    parquet = pq.read_table(demo_project / "output/daily_revenue.parquet").to_pandas()
    assert list(parquet.columns) == list(expected.columns)
    assert len(parquet) == len(expected)
    assert list(parquet["category"]) == list(expected["category"])
    assert [float(x) for x in parquet["revenue"]] == pytest.approx(list(expected["revenue"]))

    with sqlite3.connect(demo_project / "output/warehouse.db") as con:
        rows = con.execute("select count(*), sum(orders) from daily_revenue").fetchone()
    assert rows == (len(expected), int(expected["orders"].sum()))

    mats = endpoint_events(result)
    target = mats["demo_orders/daily_revenue"]
    assert target["dagster/row_count"].value == len(expected)
    assert target["nexus/rows_extracted"].value == 5000
    assert target["nexus/rows_transformed"].value == len(expected)
    assert [c.name for c in target["dagster/column_schema"].schema.columns] == list(
        expected.columns
    )
    assert mats["demo_orders/orders"]["nexus/rows_extracted"].value == 5000

    # overwrite: a second run leaves the same rows, not twice as many
    assert run_job(demo_project / "job_specs", "demo_orders", instance).success
    with sqlite3.connect(demo_project / "output/warehouse.db") as con:
        assert con.execute("select count(*) from daily_revenue").fetchone()[0] == len(expected)


INCREMENTAL = """\
name: events_sync
sources:
  - name: events
    source_type: file
    file_path: data/events.csv
    incremental_column: updated_at
    incremental_value: "2024-01-02 00:00:00"
targets:
  - name: events_table
    target_type: database
    connection_params: {{type: sqlite, database: {db}}}
    table: events
    write_mode: {mode}
{keys}
"""


def write_events(path: Path, rows: list[tuple[int, str, str]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "name", "updated_at"])
        writer.writerows(rows)


def incremental_project(tmp_path: Path, mode: str = "append") -> Path:
    (tmp_path / "data").mkdir()
    folder = tmp_path / "job_specs"
    folder.mkdir()
    keys = "    key_columns: [id]" if mode == "upsert" else ""
    (folder / "events_sync.yaml").write_text(
        INCREMENTAL.format(db="output/events.db", mode=mode, keys=keys)
    )
    return folder


def table_rows(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute("select id, name from events order by id").fetchall()


def test_incremental_second_run_loads_only_new_rows(tmp_path: Path):
    folder = incremental_project(tmp_path)
    events = tmp_path / "data/events.csv"
    write_events(events, [(1, "old", "2024-01-01 10:00:00"), (2, "a", "2024-01-02 00:00:00"),
                          (3, "b", "2024-01-03 09:00:00")])
    instance = dg.DagsterInstance.ephemeral()
    assert run_job(folder, "events_sync", instance).success
    db = tmp_path / "output/events.db"
    assert table_rows(db) == [(2, "a"), (3, "b")]  # start value is inclusive
    cursor = last_endpoint_metadata(instance, "events_sync", "events")[CURSOR_KEY]
    assert cursor.data["column"] == "updated_at"

    write_events(events, [(1, "old", "2024-01-01 10:00:00"), (2, "a", "2024-01-02 00:00:00"),
                          (3, "b", "2024-01-03 09:00:00"), (4, "c", "2024-01-04 00:00:00")])
    result = run_job(folder, "events_sync", instance)
    assert result.success
    assert table_rows(db) == [(2, "a"), (3, "b"), (4, "c")]
    assert endpoint_events(result)["events_sync/events_table"]["nexus/rows_extracted"].value == 1

    # nothing new: nothing loaded, cursor unchanged
    result = run_job(folder, "events_sync", instance)
    assert result.success and table_rows(db) == [(2, "a"), (3, "b"), (4, "c")]


def test_failed_load_keeps_cursor_and_target(tmp_path: Path):
    folder = incremental_project(tmp_path, mode="upsert")
    events = tmp_path / "data/events.csv"
    write_events(events, [(1, "a", "2024-01-02 00:00:00"), (2, "b", "2024-01-03 00:00:00")])
    instance = dg.DagsterInstance.ephemeral()
    assert run_job(folder, "events_sync", instance).success
    cursor_before = last_endpoint_metadata(instance, "events_sync", "events")[CURSOR_KEY].data

    # a row with a NULL key makes the upsert fail after the new rows were staged
    write_events(events, [(1, "a", "2024-01-02 00:00:00"), (2, "b2", "2024-01-04 00:00:00"),
                          ("", "broken", "2024-01-05 00:00:00")])
    result = run_job(folder, "events_sync", instance)
    assert not result.success
    db = tmp_path / "output/events.db"
    assert table_rows(db) == [(1, "a"), (2, "b")]
    cursor_after = last_endpoint_metadata(instance, "events_sync", "events")[CURSOR_KEY].data
    assert cursor_after == cursor_before

    # fixed input: the next run loads exactly the pending rows
    write_events(events, [(1, "a", "2024-01-02 00:00:00"), (2, "b2", "2024-01-04 00:00:00")])
    assert run_job(folder, "events_sync", instance).success
    assert table_rows(db) == [(1, "a"), (2, "b2")]


def test_dagster_job_execute_cli(demo_project: Path):
    env = {**os.environ, "DAGSTER_HOME": str(demo_project / "home")}
    (demo_project / "home").mkdir()
    shutil.copy(REPO / "dagster.yaml", demo_project / "home/dagster.yaml")
    shutil.copy(REPO / "workspace.yaml", demo_project / "workspace.yaml")
    ok = subprocess.run(
        DAGSTER_EXECUTE,
        cwd=demo_project, env=env, capture_output=True, text=True, timeout=240,
    )
    assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr[-3000:]
    assert (demo_project / "output/daily_revenue.parquet").exists()

    broken = (demo_project / "job_specs/demo_orders.yaml").read_text().replace(
        "data/demo/orders.csv", "data/demo/missing.csv"
    )
    (demo_project / "job_specs/demo_orders.yaml").write_text(broken)
    failed = subprocess.run(
        DAGSTER_EXECUTE,
        cwd=demo_project, env=env, capture_output=True, text=True, timeout=240,
    )
    assert failed.returncode != 0
    assert "missing.csv" in failed.stdout + failed.stderr


def test_nexus_run_cli_prints_summary(demo_project: Path):
    env = {**os.environ, "DAGSTER_HOME": str(demo_project / "home")}
    done = subprocess.run(
        [str(VENV_BIN / "nexus"), "run", "demo_orders"],
        cwd=demo_project, env=env, capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "job demo_orders: SUCCESS" in done.stdout
    assert "5000 extracted" in done.stdout
    assert "nexus ui" in done.stdout


def test_pg_to_mariadb_job_with_env_credentials(tmp_path: Path, pg_url: str, mariadb_url: str,
                                                monkeypatch):
    import sqlalchemy as sa

    pg = sa.create_engine(pg_url)
    with pg.begin() as con:
        con.execute(sa.text(
            "create table orders (id bigint primary key, amount numeric(12,2), note text, "
            "paid boolean, created timestamptz)"))
        con.execute(sa.text(
            "insert into orders values (1, 10.25, 'Zoë 東京', true, '2024-01-01 10:00+02'),"
            "(2, 0.10, null, false, '2024-01-02 00:00+00'), (3, -5.00, 'x', null, null)"))
    pg.dispose()
    maria = sa.engine.make_url(mariadb_url)
    monkeypatch.setenv("TEST_MARIA_PASSWORD", maria.password)
    folder = tmp_path / "job_specs"
    folder.mkdir()
    pg_parts = sa.engine.make_url(pg_url)
    (folder / "connections.yaml").write_text(textwrap.dedent(f"""\
        source_db:
          type: postgresql
          host: {pg_parts.host}
          port: {pg_parts.port}
          database: {pg_parts.database}
          user: {pg_parts.username}
          password: {pg_parts.password}
        target_db:
          type: mysql
          host: {maria.host}
          port: {maria.port}
          database: {maria.database}
          user: {maria.username}
          password: ${{TEST_MARIA_PASSWORD}}
        """))
    (folder / "copy.yaml").write_text(textwrap.dedent("""\
        name: pg_to_maria
        sources:
          - {name: orders, source_type: database, connection: source_db, table: orders}
        transformations:
          - name: positive
            transformation_type: filter
            config: {condition: amount > 0}
        targets:
          - {name: orders_copy, target_type: database, connection: target_db,
             table: orders_copy, write_mode: overwrite}
        """))
    result = run_job(folder, "pg_to_maria", dg.DagsterInstance.ephemeral())
    assert result.success
    engine = sa.create_engine(mariadb_url)
    with engine.connect() as con:
        rows = con.execute(sa.text("select id, amount, note from orders_copy order by id")).all()
    engine.dispose()
    assert rows == [(1, Decimal("10.25"), "Zoë 東京"), (2, Decimal("0.10"), None)]


def test_file_connection_base_dir(tmp_path: Path):
    """Relative paths under a connection's base_dir resolve there; escapes are refused."""
    (tmp_path / "files").mkdir()
    write_events(tmp_path / "files/events.csv", [(1, "a", "2024-01-01 00:00:00")])
    folder = tmp_path / "job_specs"
    folder.mkdir()
    (folder / "connections.yaml").write_text("drop_zone: {type: file, base_dir: files}\n")
    job = textwrap.dedent("""\
        name: from_drop_zone
        sources:
          - {name: events, source_type: file, connection: drop_zone, file_path: events.csv}
        targets:
          - {name: copy, target_type: file, connection: drop_zone, file_path: OUT,
             write_mode: overwrite}
        """)
    (folder / "job.yaml").write_text(job.replace("OUT", "out/events.parquet"))
    instance = dg.DagsterInstance.ephemeral()
    assert run_job(folder, "from_drop_zone", instance).success
    assert pq.read_table(tmp_path / "files/out/events.parquet").num_rows == 1

    (folder / "job.yaml").write_text(job.replace("OUT", "../escaped.parquet"))
    result = run_job(folder, "from_drop_zone", instance)
    assert not result.success
    assert not (tmp_path / "escaped.parquet").exists()
