"""Fixtures for the NexusIOManager tests: a fresh place on each system in turn."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.io_manager.helpers import Backend, make_backend
from tests.support import cleanup

DATABASES = [
    pytest.param("postgresql", marks=pytest.mark.postgres),
    pytest.param("mariadb", marks=pytest.mark.mariadb),
    "sqlite",
]
EVERY_BACKEND = [*DATABASES, "parquet", pytest.param("s3", marks=pytest.mark.s3)]


@pytest.fixture(params=EVERY_BACKEND)
def backend(request: pytest.FixtureRequest, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    """A fresh database, folder or bucket on each system in turn."""
    made = make_backend(request.param, request, tmp_path, monkeypatch)
    yield made
    for store in made.closers:
        cleanup(store)


@pytest.fixture(params=DATABASES)
def database(request: pytest.FixtureRequest, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> Backend:
    """A fresh PostgreSQL, MariaDB and SQLite database in turn."""
    return make_backend(request.param, request, tmp_path, monkeypatch)


@pytest.fixture(params=[d for d in DATABASES if d != "sqlite"])
def server_database(request: pytest.FixtureRequest, tmp_path: Path,
                    monkeypatch: pytest.MonkeyPatch) -> Backend:
    """A fresh PostgreSQL and MariaDB database in turn (servers that take a password)."""
    return make_backend(request.param, request, tmp_path, monkeypatch)
