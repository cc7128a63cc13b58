"""Every connection a job uses is a Dagster resource, with its config free of secrets."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import dagster as dg
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster._serdes import serialize_value

from nexus_dagster.dagster.factory import build_definitions
from nexus_dagster.dagster.resources import NexusConnection, shown_params
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
  api_token: "${TOKEN:-default-pw-55}"
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
    other = JOB.replace("copy_orders", "report").replace("connection: warehouse",
                                                         "connection: reporting")
    (folder / "report.yaml").write_text(other)
    return folder


def test_connections_are_resources_without_secrets(tmp_path: Path):
    defs = build_definitions(load_project(project(tmp_path)))
    repo = defs.get_repository_def()
    assert set(repo.get_top_level_resources()) == set(defs.resources)
    found = defs.resources
    assert set(found) == {"connection__warehouse", "connection__reporting",
                          "copy_orders__lake", "report__lake"}
    lake = found["copy_orders__lake"]
    assert isinstance(lake, NexusConnection) and lake.kind == "s3" and lake.connection == ""
    assert lake.params["bucket"] == "lake" and lake.params["secret_key"] == "***"
    assert lake.params["endpoint_url"] == "http://127.0.0.1:1"
    reporting = found["connection__reporting"]
    assert reporting.kind == "database" and reporting.connection == "reporting"
    assert reporting.params["password"] == "${REPORTING_PW}"  # a reference, shown as is
    assert reporting.params["api_token"] == "***"  # a reference with a literal default
    assert reporting.params["url"] == "postgresql://etl:***@db.example.com:5432/reports"
    assert found["connection__warehouse"].params["password"] == "***"

    # the ETL step requires its job's resources (linked on the asset page)
    etl = defs.resolve_assets_def(dg.AssetKey(["copy_orders", "out"]))
    assert {"connection__warehouse", "copy_orders__lake"} <= etl.required_resource_keys

    # what the UI gets (the repository snapshot) holds no secret anywhere
    snapshot = serialize_value(RepositorySnap.from_def(repo))
    assert "connection__reporting" in snapshot and "db.example.com" in snapshot
    for secret in SECRETS:
        assert secret not in snapshot, secret


def test_nested_and_non_string_params():
    shown = shown_params({"port": 5432, "ssl": True, "headers": {"Authorization": "Bearer x1"},
                          "options": {"region": "eu", "token": "${T}"}, "dsn": "enc:gAAAA"})
    assert shown["port"] == "5432" and shown["ssl"] == "true"
    assert json.loads(shown["headers"]) == {"Authorization": "***"}
    assert json.loads(shown["options"]) == {"region": "eu", "token": "${T}"}
    assert shown["dsn"] == "enc:gAAAA"


def test_a_job_with_resources_still_runs(tmp_path: Path):
    folder = tmp_path / "job_specs"
    folder.mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "orders.csv").write_text("id\n1\n2\n")
    (folder / "connections.yaml").write_text(CONNECTIONS)
    job = JOB.split("  - name: lake")[0] + JOB.split("in/x.csv\n")[1]
    (folder / "copy_orders.yaml").write_text(job.replace("data/orders.csv",
                                                         str(tmp_path / "data" / "orders.csv")))
    defs = build_definitions(load_project(folder))
    assert set(defs.get_repository_def().get_top_level_resources()) == {"connection__warehouse"}
    result = defs.resolve_job_def("copy_orders").execute_in_process(
        instance=dg.DagsterInstance.ephemeral())
    assert result.success
