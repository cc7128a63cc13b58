"""Database connector pieces that need no server: URLs, masking, type mapping, SQLite memory."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest
import sqlalchemy as sa

from nexus_dagster.connectors.base import Cursor, ReadRequest, WriteRequest
from nexus_dagster.connectors.database import DatabaseConnector
from nexus_dagster.connectors.registry import connector_class
from nexus_dagster.connectors.sql.types import coerce_cursor_value, sa_type_for
from nexus_dagster.connectors.sql.url import DatabaseParams, connection_settings
from nexus_dagster.errors import ConnectorError, LoadError, SpecError
from nexus_dagster.relation import Relation

SECRET = "p@ss:w/rd?&%"


def settings_of(params: dict):
    """The connection settings of raw ``connection_params``."""
    return connection_settings(DatabaseParams.model_validate(params))


def test_registry_serves_database():
    cls = connector_class("database")
    assert cls is DatabaseConnector
    assert cls.is_source and cls.is_target and cls.supports_incremental
    assert cls.write_modes == {"append", "overwrite", "upsert", "sync", "scd2"}


@pytest.mark.parametrize(
    ("kind", "driver"),
    [
        ("postgresql", "postgresql+psycopg2"),
        ("postgres", "postgresql+psycopg2"),
        ("mysql", "mysql+pymysql"),
        ("mariadb", "mysql+pymysql"),
        ("mssql+pyodbc", "mssql+pyodbc"),
    ],
)
def test_type_selects_driver(kind, driver):
    settings = settings_of(
        {"type": kind, "host": "db.local", "port": "5432", "database": "app", "user": "u",
         "password": SECRET}
    )  # fmt: skip
    assert settings.url.drivername == driver
    assert settings.url.host == "db.local" and settings.url.port == 5432
    assert settings.url.database == "app" and settings.url.username == "u"
    assert settings.url.password == SECRET
    assert SECRET not in settings.masked and "***" in settings.masked


def test_username_alias_and_sqlite_path(tmp_path):
    assert settings_of({"type": "pg", "username": "x"}).url.username == "x"
    settings = settings_of({"type": "sqlite", "database": str(tmp_path / "a.db")})
    assert settings.url.render_as_string() == f"sqlite:///{tmp_path / 'a.db'}"
    assert settings.connect_args == {"timeout": 60.0}  # SQLite: how long a writer waits


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgresql://u:pw@h/db", "postgresql+psycopg2"),
        ("mysql://u:pw@h/db", "mysql+pymysql"),
        ("mariadb://u:pw@h/db", "mysql+pymysql"),
        ("postgresql+psycopg2://u:pw@h/db", "postgresql+psycopg2"),
    ],
)
def test_bare_url_gets_shipped_driver(url, driver):
    assert settings_of({"url": url}).url.drivername == driver


def test_url_with_separate_password():
    settings = settings_of({"url": "postgresql://u@h:5433/db", "password": SECRET})
    assert settings.url.password == SECRET and settings.url.port == 5433
    assert settings.masked == "postgresql+psycopg2://u:***@h:5433/db"


def test_driver_options_become_connect_args():
    settings = settings_of(
        {"type": "postgresql", "host": "h", "sslmode": "verify-full", "sslrootcert": "/ca.pem",
         "sslpassword": "keypw", "timeout": 30, "schema": "sales"}
    )  # fmt: skip
    assert settings.connect_args == {
        "sslmode": "verify-full",
        "sslrootcert": "/ca.pem",
        "sslpassword": "keypw",
        "connect_timeout": 30,
    }
    assert settings.schema == "sales"
    assert settings.scrub("bad key keypw") == "bad key ***"
    mysql = settings_of({"type": "mysql", "host": "h", "ssl_ca": "/ca.pem"})
    assert mysql.connect_args == {"ssl_ca": "/ca.pem", "connect_timeout": 10, "charset": "utf8mb4"}


def test_scrub_removes_raw_and_encoded_password():
    settings = settings_of({"type": "postgresql", "host": "h", "password": SECRET})
    encoded = settings.url.render_as_string(hide_password=False)
    assert SECRET not in encoded  # URL-encoded in the string form
    assert SECRET not in settings.scrub(f"{SECRET} and {encoded}")
    assert "p%40ss" not in settings.scrub(encoded)


def test_missing_type_is_a_spec_error():
    with pytest.raises(SpecError, match="type") as info:
        DatabaseConnector({"host": "h"})
    assert "connection_params" in str(info.value)


def test_describe_and_errors_hide_password():
    connector = DatabaseConnector(
        {
            "type": "postgresql",
            "host": "127.0.0.1",
            "port": 1,
            "user": "u",
            "password": SECRET,
            "timeout": 1,
        }
    )
    assert SECRET not in connector.describe() and "***" in connector.describe()
    assert connector.test_connection() is False
    with pytest.raises(ConnectorError) as info:
        connector.read(ReadRequest(table="t"))
    assert SECRET not in str(info.value) and "p%40ss" not in str(info.value)


@pytest.mark.parametrize(
    ("arrow_type", "backend", "expected"),
    [
        (pa.decimal128(12, 2), "postgresql", "NUMERIC(12, 2)"),
        (pa.timestamp("us", tz="UTC"), "postgresql", "TIMESTAMP WITH TIME ZONE"),
        (pa.timestamp("ns"), "postgresql", "TIMESTAMP WITHOUT TIME ZONE"),
        (pa.timestamp("us", tz="UTC"), "mysql", "DATETIME(fsp=6)"),
        (pa.string(), "postgresql", "TEXT"),
        (pa.string(), "mysql", "LONGTEXT"),
        (pa.int64(), "postgresql", "BIGINT"),
        (pa.int32(), "postgresql", "INTEGER"),
        (pa.bool_(), "postgresql", "BOOLEAN"),
        (pa.binary(), "postgresql", "BYTEA"),
        (pa.date32(), "mysql", "DATE"),
    ],
)
def test_arrow_to_column_type(arrow_type, backend, expected):
    from sqlalchemy.dialects import mysql, postgresql

    dialect = postgresql.dialect() if backend == "postgresql" else mysql.dialect()
    compiled = sa_type_for(arrow_type, backend).compile(dialect=dialect)
    assert compiled.replace("DATETIME(6)", "DATETIME(fsp=6)") == expected


def test_mysql_key_strings_are_indexable():
    assert isinstance(sa_type_for(pa.string(), "mysql", key=True), sa.String)
    assert sa_type_for(pa.string(), "mysql", key=True).length == 255


def test_coerce_cursor_values():
    utc = pa.timestamp("us", tz="UTC")
    assert coerce_cursor_value("2024-01-01 00:00:00", utc) == dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    aware = dt.datetime(2024, 1, 1, 2, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert coerce_cursor_value(aware, pa.timestamp("us")) == dt.datetime(2024, 1, 1)
    assert coerce_cursor_value("2024-01-02", pa.date32()) == dt.date(2024, 1, 2)
    # a partition window bound on a date column: its own calendar date, not the UTC one
    assert coerce_cursor_value("2024-03-01T00:00:00+01:00", pa.date32()) == dt.date(2024, 3, 1)
    assert coerce_cursor_value("42", pa.int64()) == 42
    assert coerce_cursor_value(1.5, pa.decimal128(5, 2)) == Decimal("1.5")


def test_sqlite_memory_round_trip_and_lazy_stats():
    connector = DatabaseConnector({"type": "sqlite"})
    table = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "v": ["a", "b", None]})
    connector.write(Relation.from_table(table), WriteRequest(table="t"))
    relation = connector.read(ReadRequest(table="t", cursor=Cursor("id", 1), batch_size=1))
    assert relation.stats["rows_read"] == 0
    assert relation.to_table().to_pylist() == [{"id": 2, "v": "b"}, {"id": 3, "v": None}]
    assert relation.stats == {"rows_read": 2, "batches": 2, "cursor_max": 3, "cursor_column": "id"}


def test_read_needs_exactly_one_of_table_or_query():
    connector = DatabaseConnector({"type": "sqlite"})
    with pytest.raises(SpecError):
        connector.read(ReadRequest())
    with pytest.raises(SpecError):
        connector.read(ReadRequest(table="a", query="select 1"))


def test_upsert_without_keys_is_refused():
    connector = DatabaseConnector({"type": "sqlite"})
    relation = Relation.from_table(pa.table({"id": [1]}))
    with pytest.raises(LoadError, match="key_columns"):
        connector.write(relation, WriteRequest(table="t", write_mode="upsert"))
    with pytest.raises(SpecError, match="merge"):
        connector.write(relation, WriteRequest(table="t", write_mode="merge"))
