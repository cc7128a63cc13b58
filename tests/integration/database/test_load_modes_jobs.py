"""scd2, sync, delete_where and database after_load as jobs: counts in the materialization,
source rows deleted only after the targets committed, and which plan ran on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from nexus_dagster.connectors.database import DatabaseConnector
from nexus_dagster.errors import LoadError
from nexus_dagster.run import execute
from nexus_dagster.run.events import SourceExtracted, TargetLoaded
from nexus_dagster.spec.loader import load_project
from tests.integration.database.helpers import execute as sql
from tests.integration.database.helpers import fetch
from tests.support import endpoint_events, run_job, write_job


def _run(folder: Path) -> list:
    project = load_project(folder)
    return list(execute(project.jobs[0], project.connections, run_id="r1"))


def _source(db: DatabaseConnector, **extra) -> dict:
    return {"name": "src", "source_type": "database", "connection_params": dict(db.params),
            "table": "customers", **extra}


def _target(db: DatabaseConnector, **extra) -> dict:
    return {"name": "dim", "target_type": "database", "connection_params": dict(db.params),
            "table": "dim_customers", "key_columns": ["id"], **extra}


def _customers(db: DatabaseConnector, *rows: str) -> None:
    sql(db, "DROP TABLE IF EXISTS customers",
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name VARCHAR(20), city VARCHAR(20))",
        *[f"INSERT INTO customers VALUES {row}" for row in rows])


def test_scd2_job_reports_inserted_closed_and_unchanged(lite: DatabaseConnector,
                                                        tmp_path: Path) -> None:
    _customers(lite, "(1, 'Ann', 'Oslo')", "(2, 'Bob', 'Rome')")
    job = {"name": "dim_job", "sources": [_source(lite)],
           "targets": [_target(lite, write_mode="scd2",
                               scd2={"valid_from": "start_at", "close_missing": True})]}
    folder = write_job(tmp_path, job)
    instance = dg.DagsterInstance.ephemeral()
    assert run_job(folder, "dim_job", instance).success
    sql(lite, "UPDATE customers SET city = 'Bergen' WHERE id = 1",
        "INSERT INTO customers VALUES (3, 'Cy', 'Nice')")
    result = run_job(folder, "dim_job", instance)
    assert result.success
    meta = endpoint_events(result)["dim_job/dim"]
    assert meta["nexus/rows_inserted"].value == 2
    assert meta["nexus/rows_closed"].value == 1
    assert meta["nexus/rows_unchanged"].value == 1
    assert meta["nexus/write_mode"].value == "scd2"
    assert fetch(lite, "SELECT id, city, is_current FROM dim_customers ORDER BY id, start_at") \
        == [(1, "Oslo", 0), (1, "Bergen", 1), (2, "Rome", 1), (3, "Nice", 1)]


def test_sync_job_refused_above_max_delete_fraction_leaves_the_target(
    lite: DatabaseConnector, tmp_path: Path
) -> None:
    _customers(lite, "(1, 'Ann', 'Oslo')", "(2, 'Bob', 'Rome')", "(3, 'Cy', 'Nice')")
    job = {"name": "sync_job", "sources": [_source(lite)],
           "targets": [_target(lite, write_mode="sync", max_delete_fraction=0.4,
                               delete_where="city == 'Nice'")]}
    folder = write_job(tmp_path, job)
    loaded = next(e for e in _run(folder) if isinstance(e, TargetLoaded)).result
    assert loaded.extra["rows_deleted_where"] == 1
    assert fetch(lite, "SELECT id FROM dim_customers ORDER BY id") == [(1,), (2,)]
    sql(lite, "DELETE FROM customers WHERE id = 2")  # 1 of 2 target rows: 50% > 40%
    with pytest.raises(LoadError, match="max_delete_fraction"):
        _run(folder)
    assert fetch(lite, "SELECT id FROM dim_customers ORDER BY id") == [(1,), (2,)]


def test_database_source_after_load_deletes_the_keys_read_even_if_filtered(
    db: DatabaseConnector, tmp_path: Path
) -> None:
    _customers(db, "(1, 'Ann', 'Oslo')", "(2, 'Bob', 'Rome')", "(3, 'Cy', 'Nice')")
    job = {"name": "drain", "sources": [_source(db, after_load={"delete": True,
                                                                  "key_columns": ["id"]})],
           "transformations": [{"name": "no_rome", "transformation_type": "filter",
                                "config": {"condition": "city != 'Rome'"}}],
           "targets": [_target(db, write_mode="upsert")]}
    events = _run(write_job(tmp_path, job))
    done = next(e for e in events if isinstance(e, SourceExtracted))
    assert done.after_load == {"rows_deleted": 3}
    assert fetch(db, "SELECT id FROM customers") == []
    assert sorted(fetch(db, "SELECT id FROM dim_customers")) == [(1,), (3,)]


def test_database_source_after_load_by_window_deletes_only_the_window(
    db: DatabaseConnector, tmp_path: Path
) -> None:
    _customers(db, "(1, 'Ann', 'Oslo')", "(2, 'Bob', 'Rome')", "(3, 'Cy', 'Nice')")
    job = {"name": "drain", "sources": [_source(db, incremental_column="id",
                                                incremental_value=2,
                                                after_load={"delete": True})],
           "targets": [_target(db, write_mode="append")]}
    events = _run(write_job(tmp_path, job))
    assert next(e for e in events if isinstance(e, SourceExtracted)).after_load == {
        "rows_deleted": 2}
    assert fetch(db, "SELECT id FROM customers") == [(1,)]


def test_database_source_rows_stay_when_a_target_fails(lite: DatabaseConnector,
                                                       tmp_path: Path) -> None:
    _customers(lite, "(1, 'Ann', 'Oslo')")
    sql(lite, "CREATE TABLE broken (other INTEGER)")
    job = {"name": "drain", "sources": [_source(lite, after_load={"delete": True,
                                                                    "key_columns": "id"})],
           "targets": [_target(lite, write_mode="upsert"),
                       {**_target(lite), "name": "broken", "table": "broken"}]}
    with pytest.raises(LoadError):
        _run(write_job(tmp_path, job))
    assert fetch(lite, "SELECT id FROM customers") == [(1,)]


def test_pg_pipe_runs_scd2_and_sync_and_declines_after_load(pg: DatabaseConnector,
                                                            tmp_path: Path) -> None:
    _customers(pg, "(1, 'Ann', 'Oslo')", "(2, 'Bob', 'Rome')")
    for mode, extra in (("scd2", {}), ("sync", {"max_delete_fraction": 1})):
        job = {"name": f"pg_{mode}", "sources": [_source(pg)],
               "targets": [_target(pg, write_mode=mode, table=f"dim_{mode}", **extra)]}
        folder = write_job(tmp_path / mode, job)
        _run(folder)
        sql(pg, "UPDATE customers SET city = 'Bergen' WHERE id = 1")
        loaded = next(e for e in _run(folder) if isinstance(e, TargetLoaded)).result
        sql(pg, "UPDATE customers SET city = 'Oslo' WHERE id = 1")
        assert loaded.extra.get("pushdown") is True  # the COPY pipe filled the staging table
        if mode == "scd2":
            assert (loaded.rows_inserted, loaded.extra["rows_closed"]) == (1, 1)
            assert fetch(pg, "SELECT id, city, is_current FROM dim_scd2 ORDER BY id, valid_from") \
                == [(1, "Oslo", False), (1, "Bergen", True), (2, "Rome", True)]
        else:
            assert (loaded.rows_updated, loaded.extra["rows_deleted"]) == (1, 0)
    job = {"name": "pg_drain", "sources": [_source(pg, after_load={"delete": True,
                                                                     "key_columns": ["id"]})],
           "targets": [_target(pg, write_mode="upsert", table="dim_drain")]}
    loaded = next(e for e in _run(write_job(tmp_path / "drain", job))
                  if isinstance(e, TargetLoaded)).result
    assert "pushdown" not in loaded.extra  # the general path, which collects the keys
    assert fetch(pg, "SELECT count(*) FROM customers") == [(0,)]
