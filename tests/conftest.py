"""Shared pytest fixtures: per-test databases on the real servers started by scripts/test.sh.

``scripts/services.py start`` writes ``.services/env`` with admin URLs; ``scripts/test.sh``
sources it. Each ``pg_url`` / ``mariadb_url`` use gets a fresh, uniquely named database that is
dropped afterwards. Tests using them are marked ``postgres`` / ``mariadb`` automatically, so
``pytest -m "not postgres and not mariadb"`` runs without any server. ``mongo_db`` (FerretDB),
``index_prefix`` (OpenSearch), ``elasticsearch_index_prefix`` (Elasticsearch) and ``api`` (the
local REST API test server) give fresh places on the other servers, for every test folder that
needs them.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from tests.integration.api.server import ApiServer
from tests.support import service_env

PG_ENV = "NEXUS_TEST_PG_URL"
MARIADB_ENV = "NEXUS_TEST_MARIADB_URL"

_MARKED_FIXTURES = {
    "postgres": {"postgres_admin_url", "pg_url"},
    "mariadb": {"mariadb_admin_url", "mariadb_url"},
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for marker, fixtures in _MARKED_FIXTURES.items():
            if used & fixtures:
                item.add_marker(getattr(pytest.mark, marker))


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """Superuser URL (``postgresql+psycopg2://``) of the test PostgreSQL server."""
    return service_env(PG_ENV, "postgres")


@pytest.fixture(scope="session")
def mariadb_admin_url() -> str:
    """URL (``mysql+pymysql://``) of a MariaDB account with all privileges."""
    return service_env(MARIADB_ENV, "mariadb")


@pytest.fixture(scope="session")
def _pg_admin_engine(postgres_admin_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT",
                              poolclass=sa.pool.NullPool)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def _mariadb_admin_engine(mariadb_admin_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(mariadb_admin_url, isolation_level="AUTOCOMMIT",
                              poolclass=sa.pool.NullPool)
    yield engine
    engine.dispose()


def _unique_db_name() -> str:
    return f"t_{uuid.uuid4().hex[:10]}"


def _with_database(admin_url: str, name: str) -> str:
    url: URL = make_url(admin_url).set(database=name)
    return url.render_as_string(hide_password=False)


@pytest.fixture
def pg_url(_pg_admin_engine: sa.Engine) -> Iterator[str]:
    """A fresh PostgreSQL database for this test; yields its SQLAlchemy URL string."""
    name = _unique_db_name()
    with _pg_admin_engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(_pg_admin_engine.url.render_as_string(hide_password=False), name)
    finally:
        with _pg_admin_engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def mariadb_url(_mariadb_admin_engine: sa.Engine) -> Iterator[str]:
    """A fresh MariaDB database (utf8mb4) for this test; yields its SQLAlchemy URL string."""
    name = _unique_db_name()
    with _mariadb_admin_engine.connect() as conn:
        conn.execute(sa.text(
            f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        ))
    try:
        yield _with_database(
            _mariadb_admin_engine.url.render_as_string(hide_password=False), name
        )
    finally:
        with _mariadb_admin_engine.connect() as conn:
            # Connections a test leaked (open transactions hold metadata locks) would make
            # DROP DATABASE wait; end them first.
            ids = conn.execute(
                sa.text("SELECT id FROM information_schema.processlist "
                        "WHERE db = :db AND id <> CONNECTION_ID()"),
                {"db": name},
            ).scalars().all()
            for conn_id in ids:
                with contextlib.suppress(sa.exc.DBAPIError):  # already gone
                    conn.execute(sa.text(f"KILL CONNECTION {int(conn_id)}"))
            conn.execute(sa.text("SET SESSION lock_wait_timeout = 30"))
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    """SQLAlchemy URL of a fresh SQLite file database in the test's tmp dir."""
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture(scope="session")
def mongo_uri() -> str:
    """``mongodb://`` URI of the FerretDB test server."""
    return service_env("NEXUS_TEST_MONGODB_URI", "ferretdb")


@pytest.fixture
def mongo_db(mongo_uri: str) -> Iterator[str]:
    """A unique database name for this test, dropped afterwards."""
    import pymongo

    name = f"t_{uuid.uuid4().hex[:10]}"
    yield name
    client = pymongo.MongoClient(mongo_uri, serverSelectionTimeoutMS=5000)
    client.drop_database(name)
    client.close()


@pytest.fixture(scope="session")
def opensearch_url() -> str:
    """``http://127.0.0.1:PORT`` of the OpenSearch test node."""
    return service_env("NEXUS_TEST_OPENSEARCH_URL", "opensearch")


@pytest.fixture
def index_prefix(opensearch_url: str) -> Iterator[str]:
    """A unique index-name prefix for this test; every index under it is deleted afterwards."""
    from opensearchpy import OpenSearch

    prefix = f"t_{uuid.uuid4().hex[:10]}"
    yield prefix
    client = OpenSearch([opensearch_url])
    client.indices.delete(index=f"{prefix}*", ignore_unavailable=True)
    client.close()


@pytest.fixture(scope="session")
def elasticsearch_url() -> str:
    """``http://127.0.0.1:PORT`` of the Elasticsearch test node."""
    return service_env("NEXUS_TEST_ELASTICSEARCH_URL", "elasticsearch")


@pytest.fixture
def elasticsearch_index_prefix(elasticsearch_url: str) -> Iterator[str]:
    """A unique index-name prefix on the Elasticsearch node; its indices are deleted afterwards."""
    from elasticsearch import Elasticsearch

    prefix = f"t_{uuid.uuid4().hex[:10]}"
    yield prefix
    client = Elasticsearch(elasticsearch_url)
    client.indices.delete(index=f"{prefix}*", ignore_unavailable=True)
    client.close()


@pytest.fixture(scope="session")
def _api_server() -> Iterator[ApiServer]:
    server = ApiServer().start()
    yield server
    server.stop()


@pytest.fixture
def api(_api_server: ApiServer) -> ApiServer:
    """The test API on http://127.0.0.1:<port>, with fresh counters and sinks."""
    _api_server.reset()
    return _api_server
