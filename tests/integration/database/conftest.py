"""Fixtures for the database connector tests: one connector per server, data helpers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from nexus_dagster.connectors.database import DatabaseConnector

BACKENDS = [
    pytest.param("pg_url", id="postgresql", marks=pytest.mark.postgres),
    pytest.param("mariadb_url", id="mariadb", marks=pytest.mark.mariadb),
    pytest.param("sqlite_url", id="sqlite"),
]


def _connector(url: str) -> Iterator[DatabaseConnector]:
    """A connector on ``url``, disposed after the test."""
    connector = DatabaseConnector({"url": url})
    yield connector
    connector.dispose()


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest) -> Iterator[DatabaseConnector]:
    """A connector on a fresh database of each kind (PostgreSQL, MariaDB, SQLite)."""
    yield from _connector(request.getfixturevalue(request.param))


@pytest.fixture
def pg(pg_url: str) -> Iterator[DatabaseConnector]:
    """A connector on a fresh PostgreSQL database."""
    yield from _connector(pg_url)


@pytest.fixture
def maria(mariadb_url: str) -> Iterator[DatabaseConnector]:
    """A connector on a fresh MariaDB database."""
    yield from _connector(mariadb_url)


@pytest.fixture
def lite(sqlite_url: str) -> Iterator[DatabaseConnector]:
    """A connector on a fresh SQLite file."""
    yield from _connector(sqlite_url)
