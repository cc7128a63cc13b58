"""TLS options pass through to the drivers: sslmode/sslrootcert (PostgreSQL), ssl_ca (MySQL)."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from nexus_dagster.connectors.database import DatabaseConnector
from tests.integration.dedicated_pg import self_signed

pytestmark = pytest.mark.postgres


def _check(params: dict) -> list:
    connector = DatabaseConnector(params)
    try:
        with connector.engine.connect() as conn:
            return list(conn.exec_driver_sql("SELECT 1").fetchall())
    finally:
        connector.close()


def _pg_params(url: str, **extra) -> dict:
    u = make_url(url)
    return {"type": "postgresql", "host": u.host, "port": u.port, "database": u.database,
            "user": u.username, "password": u.password, **extra}


def test_pg_verify_full_with_the_right_ca_connects_over_tls(dedicated_pg):
    params = {**dedicated_pg.params(), "sslmode": "verify-full",
              "sslrootcert": str(dedicated_pg.cert)}
    connector = DatabaseConnector(params)
    try:
        with connector.engine.connect() as conn:
            ssl = conn.exec_driver_sql(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").scalar()
    finally:
        connector.close()
    assert ssl is True


def test_pg_verify_full_with_another_ca_is_refused(dedicated_pg, tmp_path):
    other_ca, _ = self_signed(tmp_path)
    params = {**dedicated_pg.params(), "sslmode": "verify-full", "sslrootcert": str(other_ca)}
    with pytest.raises(Exception, match="certificate verify failed"):
        _check(params)


def test_pg_sslmode_require_reaches_the_driver(pg_url):
    # the shared test server speaks no TLS: psycopg2 refuses when TLS is required
    with pytest.raises(Exception, match="server does not support SSL"):
        _check(_pg_params(pg_url, sslmode="require"))
    assert _check(_pg_params(pg_url, sslmode="disable")) == [(1,)]


def test_mysql_ssl_options_reach_the_driver(mariadb_url, tmp_path):
    ca, _ = self_signed(tmp_path)
    u = make_url(mariadb_url)
    params = {"type": "mariadb", "host": u.host, "port": u.port, "database": u.database,
              "user": u.username, "password": u.password}
    assert _check(params) == [(1,)]
    with pytest.raises(Exception, match=r"SSL is required but the server doesn.t support it"):
        _check({**params, "ssl_ca": str(ca), "ssl_verify_cert": True})
