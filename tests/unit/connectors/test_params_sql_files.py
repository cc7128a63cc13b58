"""Typed connection params of the database, file and remote-file connectors: validation with
messages that name the field and never the value, secrets as SecretStr, load-time checks that
skip ``${ENV}``/``enc:`` values, path resolution against the project root, and asset kinds."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
from pydantic import SecretStr

from nexus_dagster.connectors.azure_blob import AzureBlobConnector
from nexus_dagster.connectors.base import Connector, ReadRequest
from nexus_dagster.connectors.database import DatabaseConnector
from nexus_dagster.connectors.file import FileConnector
from nexus_dagster.connectors.ftp import FTPConnector
from nexus_dagster.connectors.gcs import GCSConnector
from nexus_dagster.connectors.registry import connector_class
from nexus_dagster.connectors.s3 import S3Connector
from nexus_dagster.connectors.sftp import SFTPConnector
from nexus_dagster.errors import SpecError
from nexus_dagster.run.endpoints import open_connector
from nexus_dagster.spec.loader import collect

SECRET = "Sup3r-Secret-Value-42"

#: valid params of each connector, with every secret set to SECRET
VALID: dict[type[Connector], dict[str, Any]] = {
    DatabaseConnector: {"type": "postgresql", "host": "db", "port": 5432, "user": "etl",
                        "password": SECRET, "sslpassword": SECRET},
    FileConnector: {"base_dir": "/data", "file_format": "csv"},
    S3Connector: {"bucket": "lake", "access_key": SECRET, "secret_key": SECRET,
                  "session_token": SECRET, "region": "eu-west-1"},
    AzureBlobConnector: {"container": "raw", "account_name": "acme", "account_key": SECRET,
                         "sas_token": SECRET},
    GCSConnector: {"bucket": "lake", "project_id": "acme", "credentials": SECRET},
    SFTPConnector: {"host": "files", "username": "etl", "password": SECRET,
                    "private_key": SECRET, "private_key_passphrase": SECRET},
    FTPConnector: {"host": "ftp", "username": "etl", "password": SECRET},
}

#: a field of each connector and a value of the wrong type for it
WRONG_TYPE = {
    DatabaseConnector: ("port", "abc"),
    FileConnector: ("base_dir", ["a", "b"]),
    S3Connector: ("max_attempts", "three"),
    AzureBlobConnector: ("block_size", "big"),
    GCSConnector: ("block_size", "big"),
    SFTPConnector: ("insecure_skip_host_key_check", "perhaps"),
    FTPConnector: ("port", "abc"),
}

FORBIDDING = [c for c in VALID if c is not DatabaseConnector]


@pytest.mark.parametrize("cls", list(VALID), ids=lambda c: c.__name__)
def test_valid_params_build(cls):
    connector = cls(VALID[cls])
    assert isinstance(connector.config, cls.Params)


@pytest.mark.parametrize("cls", list(WRONG_TYPE), ids=lambda c: c.__name__)
def test_wrong_type_names_the_field_not_the_value(cls):
    name, value = WRONG_TYPE[cls]
    with pytest.raises(SpecError) as info:
        cls({**VALID[cls], name: value})
    message = str(info.value)
    assert f"connection_params.{name}" in message and cls.__name__ in message
    assert str(value) not in message.replace(f"connection_params.{name}", "")
    assert SECRET not in message


@pytest.mark.parametrize("cls", FORBIDDING, ids=lambda c: c.__name__)
def test_unknown_key_is_an_error_without_its_value(cls):
    with pytest.raises(SpecError) as info:
        cls({**VALID[cls], "pasword": SECRET})
    message = str(info.value)
    assert "connection_params.pasword" in message and "Extra inputs" in message
    assert SECRET not in message


def test_database_passes_unknown_keys_to_the_driver():
    connector = DatabaseConnector({"type": "mysql", "host": "h", "ssl_ca": "/ca.pem",
                                   "local_infile": False})
    assert connector.settings.connect_args["ssl_ca"] == "/ca.pem"
    assert connector.settings.connect_args["local_infile"] is False
    assert "encrypted" not in connector.settings.connect_args


@pytest.mark.parametrize(
    ("cls", "params", "missing"),
    [
        (DatabaseConnector, {"host": "h"}, "type"),
        (S3Connector, {"region": "x"}, "connection_params.bucket"),
        (AzureBlobConnector, {"container": "raw"}, "account_name or connection_string"),
        (GCSConnector, {}, "connection_params.bucket"),
        (SFTPConnector, {"host": "h", "username": "u"}, "password or private_key"),
        (SFTPConnector, {"host": "h", "password": SECRET}, "connection_params.username"),
        (FTPConnector, {}, "connection_params.host"),
    ],
)
def test_missing_required_params(cls, params, missing):
    with pytest.raises(SpecError, match=missing) as info:
        cls(params)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    ("cls", "params", "field", "value"),
    [
        (DatabaseConnector, {"type": "pg", "username": "x"}, "user", "x"),
        (DatabaseConnector, {"type": "pg", "dbname": "app"}, "database", "app"),
        (DatabaseConnector, {"type": "pg", "schema": "sales"}, "default_schema", "sales"),
        (FileConnector, {"path": "in.csv"}, "file_path", "in.csv"),
        (SFTPConnector, {"host": "h", "user": "u", "password": SECRET}, "username", "u"),
        (FTPConnector, {"host": "h", "user": "u"}, "username", "u"),
        (AzureBlobConnector, {"container": "c", "account_name": "a", "endpoint": "http://x"},
         "account_url", "http://x"),
    ],
)
def test_second_names_are_accepted(cls, params, field, value):
    assert getattr(cls(params).config, field) == value


def test_two_names_of_one_param_are_an_error():
    with pytest.raises(SpecError, match="user and username"):
        DatabaseConnector({"type": "pg", "user": "a", "username": "b"})
    with pytest.raises(SpecError, match=r"connection_params\.user"):
        SFTPConnector({"host": "h", "username": "a", "user": "b", "password": SECRET})


def test_typed_values_are_coerced():
    sftp = SFTPConnector({"host": "h", "port": "2222", "username": "u", "password": SECRET,
                          "insecure_skip_host_key_check": "true", "timeout": "5"})
    assert sftp.config.port == 2222 and sftp.config.insecure_skip_host_key_check is True
    assert sftp.config.timeout == 5.0
    db = DatabaseConnector({"type": "postgresql", "host": "h", "port": "", "timeout": "2.5"})
    assert db.config.port is None and db.settings.connect_args["connect_timeout"] == 3


@pytest.mark.parametrize("cls", list(VALID), ids=lambda c: c.__name__)
def test_secrets_are_secretstr_and_never_shown(cls):
    connector = cls(VALID[cls])
    secret_fields = [k for k, v in VALID[cls].items() if v == SECRET]
    for name in secret_fields:
        value = getattr(connector.config, name, None)
        if value is None:  # a driver arg of the database connector
            value = connector.config.model_extra[name]
        assert isinstance(value, SecretStr), name
        assert value.get_secret_value() == SECRET
    for shown in (repr(connector.config), str(connector.config), repr(connector),
                  connector.describe(), str(vars(connector).get("settings", ""))):
        assert SECRET not in shown


def test_database_scrubs_driver_secrets():
    connector = DatabaseConnector(VALID[DatabaseConnector])
    assert connector.settings.connect_args["sslpassword"] == SECRET  # plain only for connect()
    assert connector.settings.scrub(f"bad {SECRET}") == "bad ***"


@pytest.mark.parametrize(
    ("cls", "params"),
    [
        (DatabaseConnector, {"type": "postgresql", "port": "${PG_PORT}",
                             "timeout": "${PG_TIMEOUT:-5}"}),
        (S3Connector, {"bucket": "${BUCKET}", "max_attempts": "${S3_TRIES}"}),
        (SFTPConnector, {"host": "h", "port": "${SFTP_PORT}", "username": "u",
                         "password": "enc:gAAAAABexample", "insecure_skip_host_key_check":
                         "${SFTP_INSECURE}"}),
        (FTPConnector, {"host": "h", "port": "enc:gAAAAABport", "tls": "${FTP_TLS}"}),
    ],
)
def test_references_pass_the_load_time_check(cls, params):
    assert cls.params_problems(params) == []


def test_load_time_check_reports_bad_values_and_unknown_keys():
    problems = SFTPConnector.params_problems(
        {"host": "h", "port": "abc", "username": "u", "password": "${PW}", "hostkey": "x"}
    )
    fields = {field for field, _, _ in problems}
    assert fields == {"connection_params.port", "connection_params.hostkey"}
    assert all("abc" not in message for _, message, _ in problems)
    fixes = {field: fix for field, _, fix in problems}
    assert fixes["connection_params.hostkey"].startswith("did you mean 'host_key'? ")
    assert all("SFTPConnector parameters" in fix and "host_key" in fix for fix in fixes.values())
    assert DatabaseConnector.params_problems({"type": "mysql", "port": "abc"})[0][0] == (
        "connection_params.port"
    )


def test_validate_reports_params_with_file_and_line(tmp_path):
    folder = tmp_path / "job_specs"
    folder.mkdir()
    (folder / "connections.yaml").write_text("{}\n")
    (folder / "job.yaml").write_text(textwrap.dedent("""\
        name: bad_params
        sources:
          - name: remote
            source_type: sftp
            connection_params: {host: h, port: abc, username: u, password: "${PW}"}
            file_path: in.csv
        targets:
          - name: out
            target_type: file
            connection_params: {base_dir: out, bucket: nope}
            file_path: out.csv
        """))
    _, problems = collect([folder])
    text = [str(p) for p in problems]
    assert any("job.yaml:5" in t and "connection_params.port" in t for t in text), text
    assert any("job.yaml:10" in t and "connection_params.bucket" in t for t in text), text
    assert not any("PW" in t or "abc" in t.split("port:")[-1] for t in text)


# --- paths ----------------------------------------------------------------------------------


def test_file_paths_resolve_against_the_project_root(tmp_path):
    root = tmp_path / "project"
    file = FileConnector({})
    assert file.resolve_path("data/in.csv", root) == str(root / "data/in.csv")
    assert file.resolve_path("/abs/in.csv", root) == "/abs/in.csv"
    assert file.resolve_path("s3://b/k.csv", root) == "s3://b/k.csv"
    assert file.resolve_path("~/in.csv", root) == "~/in.csv"
    assert file.resolve_path(None, root) is None
    with_base = FileConnector({"base_dir": "/srv/data"})
    assert with_base.resolve_path("in/a.csv", root) == "in/a.csv"  # relative to base_dir


def test_file_prepare_params_resolves_base_dir_and_default_path(tmp_path):
    root = tmp_path / "project"
    prepared = FileConnector.prepare_params({"base_dir": "data"}, root=root, role="source")
    assert prepared == {"base_dir": str(root / "data")}
    for kept in ("/srv/data", "~/data", "file:///srv/data"):
        assert FileConnector.prepare_params(
            {"base_dir": kept}, root=root, role="source"
        ) == {"base_dir": kept}
    assert FileConnector.prepare_params({"path": "in.csv"}, root=root, role="source") == {
        "path": str(root / "in.csv")
    }


def test_open_connector_reads_a_relative_file_under_the_root(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "in.csv").write_text("id\n1\n2\n")
    connector = open_connector("file", {"base_dir": "data"}, root=tmp_path, role="source",
                               where="job.src.connection_params")
    assert connector.config.base_dir == str(tmp_path / "data")
    path = connector.resolve_path("in.csv", tmp_path)
    assert connector.read(ReadRequest(path=path)).to_table().num_rows == 2


def test_sqlite_database_resolves_against_the_root(tmp_path):
    root = tmp_path / "project"
    source = DatabaseConnector.prepare_params(
        {"type": "sqlite", "database": "db/app.db"}, root=root, role="source"
    )
    assert source["database"] == str(root / "db/app.db") and not (root / "db").exists()
    target = DatabaseConnector.prepare_params(
        {"type": "sqlite", "path": "out/w.db"}, root=root, role="target"
    )
    assert target["path"] == str(root / "out/w.db") and (root / "out").is_dir()
    for kept in (
        {"type": "sqlite", "database": ":memory:"},
        {"type": "sqlite", "database": "/abs/app.db"},
        {"type": "sqlite", "url": "sqlite:///rel.db"},
        {"type": "postgresql", "database": "app"},
    ):
        assert DatabaseConnector.prepare_params(kept, root=root, role="target") == kept
    connector = DatabaseConnector(target)
    assert connector.settings.url.database == str(root / "out/w.db")


@pytest.mark.parametrize("kind", ["s3", "azure_blob", "gcs", "sftp", "ftp"])
def test_remote_keys_are_not_resolved(kind, tmp_path):
    cls = connector_class(kind)
    params = {**VALID[cls], "base_dir": "exports"}
    assert cls.prepare_params(params, root=tmp_path, role="target") == params
    connector = cls(params)
    assert connector.resolve_path("raw/orders.csv", tmp_path) == "raw/orders.csv"


# --- asset kinds ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "kinds"),
    [
        ({"type": "postgresql"}, {"postgres"}),
        ({"type": "postgres"}, {"postgres"}),
        ({"type": "mysql"}, {"mysql"}),
        ({"type": "mariadb"}, {"mariadb"}),
        ({"type": "sqlite"}, {"sqlite"}),
        ({"type": "duckdb"}, {"duckdb"}),
        ({"type": "mssql+pyodbc"}, {"sqlserver"}),
        ({"type": "oracle"}, {"oracle"}),
        ({"url": "postgresql+psycopg2://u:pw@h/db"}, {"postgres"}),
        ({"url": "${DATABASE_URL}"}, {"sql"}),
        ({"type": "${DB_TYPE}"}, {"sql"}),
    ],
)
def test_database_asset_kinds(params, kinds):
    assert DatabaseConnector.asset_kinds("database", params) == kinds


@pytest.mark.parametrize(
    ("type_name", "file_format", "kinds"),
    [
        ("file", "csv", {"csv"}),
        ("file", "tsv", {"csv"}),
        ("file", "jsonl", {"json"}),
        ("file", "xlsx", {"excel"}),
        ("file", None, {"file"}),
        ("s3", "parquet", {"s3", "parquet"}),
        ("azure_blob", "csv", {"azure_blob", "csv"}),
        ("gcs", None, {"gcs"}),
        ("sftp", "json", {"sftp", "json"}),
        ("ftp", "gz", {"ftp"}),
    ],
)
def test_file_asset_kinds(type_name, file_format, kinds):
    cls = connector_class(type_name)
    assert cls.asset_kinds(type_name, {}, file_format) == kinds


def test_no_connector_keeps_dagster_kinds():
    for cls in VALID:
        assert not hasattr(cls, "dagster_kinds")


def test_connectors_read_config_not_raw_params():
    """Each connector reads its settings from ``config``: changing the raw dict changes
    nothing."""
    s3 = S3Connector({"bucket": "lake", "endpoint_url": "http://a"})
    s3.params["endpoint_url"] = "http://changed"
    assert s3.endpoint() == "http://a"
    file = FileConnector({"base_dir": "/srv/a"})
    file.params["base_dir"] = "/srv/changed"
    assert file.root() == "/srv/a"
