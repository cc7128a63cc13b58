"""Fixtures for the database connector tests: one connector per server, data helpers."""

from __future__ import annotations

import pytest

from nexus_dagster.connectors.database import DatabaseConnector

BACKENDS = [
    pytest.param("pg_url", id="postgresql", marks=pytest.mark.postgres),
    pytest.param("mariadb_url", id="mariadb", marks=pytest.mark.mariadb),
    pytest.param("sqlite_url", id="sqlite"),
]


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest):
    """A connector on a fresh database of each kind (PostgreSQL, MariaDB, SQLite)."""
    connector = DatabaseConnector({"url": request.getfixturevalue(request.param)})
    yield connector
    connector.dispose()


@pytest.fixture
def pg(pg_url: str):
    """A connector on a fresh PostgreSQL database."""
    connector = DatabaseConnector({"url": pg_url})
    yield connector
    connector.dispose()


@pytest.fixture
def maria(mariadb_url: str):
    """A connector on a fresh MariaDB database."""
    connector = DatabaseConnector({"url": mariadb_url})
    yield connector
    connector.dispose()


@pytest.fixture
def lite(sqlite_url: str):
    """A connector on a fresh SQLite file."""
    connector = DatabaseConnector({"url": sqlite_url})
    yield connector
    connector.dispose()
