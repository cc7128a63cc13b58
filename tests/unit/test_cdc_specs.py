"""Spec checks of change data capture sources (cdc: true): misuse is reported with file:line,
the field and the fix; a good cdc spec loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from nexus_dagster.errors import SpecError
from nexus_dagster.spec.loader import collect, load_project
from tests.unit.test_spec_loader import write_specs

CONNECTIONS = """\
app_db:
  type: postgresql
  host: 127.0.0.1
  database: app
  user: etl
  password: ${APP_DB_PASSWORD}
warehouse:
  type: sqlite
  database: output/w.db
"""
JOB = """\
name: job
sources:
  - name: orders
    source_type: database
    connection: {connection}
{source}
targets:
  - name: out
    target_type: database
    connection: warehouse
    table: orders_copy
{target}
"""
CDC = "    table: orders\n    cdc: true\n    publication: orders_pub\n    slot: nexus_orders\n"
SYNC = "    write_mode: sync\n    key_columns: [id]\n"


def _problems(tmp_path: Path, source: str, target: str = SYNC, connection: str = "app_db"):
    job = JOB.format(source=source.rstrip("\n"), target=target.rstrip("\n"),
                     connection=connection)
    _, problems = collect([write_specs(tmp_path, job, CONNECTIONS)])
    return [str(p) for p in problems]


def test_a_cdc_source_with_publication_and_slot_loads(tmp_path: Path) -> None:
    job = JOB.format(source=CDC.rstrip("\n"), target=SYNC.rstrip("\n"), connection="app_db")
    source = load_project(write_specs(tmp_path, job, CONNECTIONS)).jobs[0].job.sources[0]
    assert (source.cdc, source.publication, source.slot) == (True, "orders_pub", "nexus_orders")


@pytest.mark.parametrize(("source", "target", "connection", "expected"), [
    (CDC, SYNC, "warehouse",
     "job.yaml:7: sources[0].cdc: cdc needs PostgreSQL logical replication; connection "
     "'warehouse' is sqlite"),
    (CDC + "    incremental_column: updated_at\n", SYNC, "app_db",
     "job.yaml:10: sources[0].incremental_column: cdc keeps its position in the replication "
     "slot"),
    (CDC.replace("    table: orders\n", "    query: SELECT * FROM orders\n"), SYNC, "app_db",
     "job.yaml:6: sources[0].query: cdc reads the changes of a table, not of a query"),
    (CDC.replace("    slot: nexus_orders\n", ""), SYNC, "app_db",
     "sources[0].cdc: a cdc source needs a slot name"),
    (CDC, "    write_mode: overwrite\n", "app_db",
     "job.yaml:15: targets[0].write_mode: write_mode overwrite cannot apply changes"),
    ("    table: orders\n    slot: nexus_orders\n", SYNC, "app_db",
     "sources[0].slot: slot is for change data capture (cdc: true)"),
])
def test_cdc_misuse_is_reported_with_file_line_and_fix(
    tmp_path: Path, source: str, target: str, connection: str, expected: str
) -> None:
    problems = _problems(tmp_path, source, target, connection)
    assert any(expected in p for p in problems), problems


def test_a_slot_name_postgresql_refuses_is_a_spec_error(tmp_path: Path) -> None:
    job = JOB.format(source=CDC.replace("nexus_orders", "Nexus-Orders").rstrip("\n"),
                     target=SYNC.rstrip("\n"), connection="app_db")
    with pytest.raises(SpecError, match=r"sources\[0\]\.slot"):
        load_project(write_specs(tmp_path, job, CONNECTIONS))


def test_changes_upserted_into_a_non_database_target_are_refused(tmp_path: Path) -> None:
    job = JOB.format(source=CDC.rstrip("\n"), target=SYNC.replace("sync", "upsert").rstrip("\n"),
                     connection="app_db").replace(
        "target_type: database\n    connection: warehouse",
        "target_type: mongodb\n    connection_params: {uri: 'mongodb://127.0.0.1', "
        "database: app}")
    _, problems = collect([write_specs(tmp_path, job, CONNECTIONS)])
    assert any("targets[0].write_mode: only database targets apply changes by _op" in str(p)
               for p in problems), [str(p) for p in problems]
