"""Connections are Dagster resources that do the work: typed fields, no secret in what the UI
gets, and overriding a resource (Definitions, execute_in_process, a test double) changes
where the rows go."""

from __future__ import annotations

import sqlite3
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import dagster as dg
import pyarrow as pa
import pytest
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster._serdes import serialize_value

from nexus_dagster.connectors.base import Connector, LoadResult, ReadRequest, WriteRequest
from nexus_dagster.dagster.factory import build_definitions
from nexus_dagster.dagster.resources import (
    ConnectionResource,
    ConnectorSource,
    job_resources,
    resource_class,
)
from nexus_dagster.relation import Relation
from nexus_dagster.spec.loader import load_project

SECRETS = ["hunter2-literal", "S3cretKeyLiteral/abc", "urlpass-9876", "default-pw-55"]

CONNECTIONS = """\
warehouse:
  type: sqlite
  database: out/w.db
  password: hunter2-literal
reporting:
  type: postgresql
  url: postgresql://etl:urlpass-9876@db.example.com:5432/reports
  password: "${REPORTING_PW}"
  port: "${REPORTING_PORT}"
  api_token: "${TOKEN:-default-pw-55}"
unused_lake:
  type: s3
  bucket: archive
"""

JOB = """\
name: copy_orders
sources:
  - name: orders
    source_type: file
    file_path: data/orders.csv
  - name: lake
    source_type: s3
    connection_params: {bucket: lake, access_key: AKIAEXAMPLE00,
                        secret_key: S3cretKeyLiteral/abc, endpoint_url: "http://127.0.0.1:1"}
    file_path: in/x.csv
targets:
  - name: out
    target_type: database
    connection: warehouse
    table: orders
    write_mode: overwrite
"""


def project(tmp_path: Path) -> Path:
    folder = tmp_path / "job_specs"
    folder.mkdir()
    (folder / "connections.yaml").write_text(CONNECTIONS)
    (folder / "copy_orders.yaml").write_text(textwrap.dedent(JOB))
    other = (JOB.replace("copy_orders", "report").replace("connection: warehouse",
                                                          "connection: reporting")
             .replace("table: orders", "table: report_orders"))
    (folder / "report.yaml").write_text(other)
    return folder


def test_every_connection_is_a_typed_resource_under_its_name(tmp_path: Path):
    defs = build_definitions(load_project(project(tmp_path)))
    found = defs.resources
    # named connections under their names (also one no job uses yet); every other endpoint
    # (inline params, a plain local file) under <job>__<endpoint>
    assert set(found) == {"warehouse", "reporting", "unused_lake", "copy_orders__lake",
                          "report__lake", "copy_orders__orders", "report__orders"}
    warehouse = found["warehouse"]
    assert isinstance(warehouse, resource_class("database"))
    assert warehouse.connector_type == "database" and warehouse.database == "out/w.db"
    assert type(found["unused_lake"]).__name__ == "S3Resource"
    assert found["unused_lake"].bucket == "archive"
    reporting = found["reporting"]
    assert reporting.password == dg.EnvVar("REPORTING_PW")  # Dagster resolves it at run time
    assert reporting.port == dg.EnvVar.int("REPORTING_PORT")
    # the ETL step requires its job's resources (linked on the asset page)
    etl = defs.resolve_assets_def(dg.AssetKey(["warehouse", "orders"]))
    assert {"warehouse", "copy_orders__lake"} <= etl.required_resource_keys


def test_what_the_ui_gets_holds_no_secret(tmp_path: Path):
    defs = build_definitions(load_project(project(tmp_path)))
    found = defs.resources
    assert found["warehouse"].password == "<secret: connections.yaml warehouse.password>"
    assert found["reporting"].url == "<secret: connections.yaml reporting.url>"
    assert found["copy_orders__lake"].secret_key.startswith("<secret: ")
    assert found["reporting"].more_params["api_token"].startswith("<secret: ")
    snapshot = serialize_value(RepositorySnap.from_def(defs.get_repository_def()))
    assert "reporting" in snapshot and "REPORTING_PW" in snapshot
    for secret in SECRETS:
        assert secret not in snapshot, secret


def write_orders_job(tmp_path: Path) -> Path:
    folder = tmp_path / "job_specs"
    folder.mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "orders.csv").write_text("id,amount\n1,10\n2,20\n")
    (folder / "connections.yaml").write_text("warehouse:\n  type: sqlite\n  database: w.db\n")
    (folder / "copy_orders.yaml").write_text(textwrap.dedent("""\
        name: copy_orders
        sources:
          - {name: orders, source_type: file, file_path: data/orders.csv}
        targets:
          - {name: out, target_type: database, connection: warehouse, table: orders,
             write_mode: overwrite}
        """))
    return folder


def rows(database: Path) -> list[tuple]:
    with sqlite3.connect(database) as con:
        return con.execute("SELECT id, amount FROM orders ORDER BY id").fetchall()


def test_the_job_writes_through_its_resource(tmp_path: Path):
    defs = build_definitions(load_project(write_orders_job(tmp_path)))
    result = defs.resolve_job_def("copy_orders").execute_in_process(
        instance=dg.DagsterInstance.ephemeral())
    assert result.success
    assert rows(tmp_path / "w.db") == [(1, 10), (2, 20)]


def test_overriding_the_resource_sends_the_rows_elsewhere(tmp_path: Path):
    defs = build_definitions(load_project(write_orders_job(tmp_path)))
    other = tmp_path / "elsewhere" / "staging.db"
    staging = resource_class("database")(type="sqlite", database=str(other))
    result = defs.resolve_job_def("copy_orders").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), resources={"warehouse": staging})
    assert result.success
    assert rows(other) == [(1, 10), (2, 20)]
    assert not (tmp_path / "w.db").exists()


def test_launchpad_config_replaces_the_connection(tmp_path: Path):
    defs = build_definitions(load_project(write_orders_job(tmp_path)))
    other = tmp_path / "from_config.db"
    result = defs.resolve_job_def("copy_orders").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        # Dagster takes a resource's config from the launchpad whole: give every field
        run_config={"resources": {"warehouse": {"config": {"type": "sqlite",
                                                           "database": str(other)}}}},
    )
    assert result.success
    assert rows(other) == [(1, 10), (2, 20)]


class MemoryTarget(Connector):
    """A target keeping what it is given, for the test double below."""

    is_target: ClassVar[bool] = True
    write_modes: ClassVar[frozenset[str]] = frozenset({"overwrite"})
    written: ClassVar[list[pa.Table]] = []

    def describe(self) -> str:
        return "memory"

    def write(self, relation: Relation, request: WriteRequest) -> LoadResult:
        table = relation.to_table()
        self.written.append(table)
        return LoadResult(rows_loaded=table.num_rows, location="memory")


class FakeWarehouse(dg.ConfigurableResource):
    """A test double: any resource with ``open_connector`` can stand in for a connection."""

    def open_connector(self, type_name: str, *, root: Path, role: str, where: str,
                       extra: Any = None) -> Connector:
        return MemoryTarget({})


def test_a_test_double_resource_receives_the_rows(tmp_path: Path):
    assert isinstance(FakeWarehouse(), ConnectorSource)
    defs = build_definitions(load_project(write_orders_job(tmp_path)))
    MemoryTarget.written.clear()
    result = defs.resolve_job_def("copy_orders").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), resources={"warehouse": FakeWarehouse()})
    assert result.success
    (table,) = MemoryTarget.written
    assert table.to_pydict() == {"id": [1, 2], "amount": [10, 20]}
    assert not (tmp_path / "w.db").exists()


def test_definitions_built_with_a_resource_override_write_there(tmp_path: Path):
    other = tmp_path / "deployment.db"
    defs = build_definitions(load_project(write_orders_job(tmp_path)), resources={
        "warehouse": resource_class("database")(type="sqlite", database=str(other))})
    assert defs.resolve_job_def("copy_orders").execute_in_process(
        instance=dg.DagsterInstance.ephemeral()).success
    assert rows(other) == [(1, 10), (2, 20)]


def test_merged_definitions_share_the_connection_with_hand_written_assets(tmp_path: Path):
    """Definitions.merge with the user's own code: their assets use the nexus resource."""
    defs = build_definitions(load_project(write_orders_job(tmp_path)))

    @dg.asset(required_resource_keys={"warehouse"})
    def order_count(context) -> int:
        connector = context.resources.warehouse.open_connector(
            "database", root=tmp_path, role="source", where="order_count")
        try:
            return connector.read(ReadRequest(table="orders")).to_table().num_rows
        finally:
            connector.close()

    merged = dg.Definitions.merge(defs, dg.Definitions(assets=[order_count]))
    instance = dg.DagsterInstance.ephemeral()
    assert merged.resolve_job_def("copy_orders").execute_in_process(instance=instance).success
    result = merged.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection={order_count.key}).execute_in_process(instance=instance)
    assert result.output_for_node("order_count") == 2


@pytest.fixture
def no_env(monkeypatch) -> Iterator[None]:
    monkeypatch.delenv("UNSET_PW_FOR_TEST", raising=False)
    yield


def test_an_unset_env_var_is_a_config_error_naming_it(tmp_path: Path, no_env):
    folder = write_orders_job(tmp_path)
    (folder / "connections.yaml").write_text(
        "warehouse:\n  type: sqlite\n  database: w.db\n  password: ${UNSET_PW_FOR_TEST}\n")
    defs = build_definitions(load_project(folder))
    with pytest.raises(dg.DagsterInvalidConfigError, match="UNSET_PW_FOR_TEST"):
        defs.resolve_job_def("copy_orders").execute_in_process(
            instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)


def test_resource_fields_follow_the_connector_params():
    database = resource_class("database")
    assert issubclass(database, ConnectionResource)
    assert {"host", "port", "database", "password", "more_params"} <= set(database.model_fields)
    kafka = resource_class("kafka")
    assert kafka is resource_class("kafka")  # one class per connector type



def test_a_connection_used_by_several_jobs_is_one_resource_made_once(tmp_path: Path):
    """Both jobs write through ``warehouse``: one resource object for both, and a second
    definitions load in the process gets that object again instead of making a new one."""
    folder = project(tmp_path)
    (folder / "report.yaml").write_text(textwrap.dedent(JOB).replace("copy_orders", "report")
                                        .replace("table: orders", "table: report_orders"))
    loaded = load_project(folder)
    first, second = (job_resources(spec.job, loaded.connections)["warehouse"]
                     for spec in loaded.jobs)
    assert first is second
    assert build_definitions(loaded).resources["warehouse"] is first
    assert build_definitions(load_project(folder)).resources["warehouse"] is first
