"""The test servers and the per-test database fixtures work (see tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

ROWS = [(1, "alpha"), (2, "ünïcødé ✓"), (3, None)]


def _round_trip(url: str) -> list[tuple]:
    engine = sa.create_engine(url)
    try:
        meta = sa.MetaData()
        table = sa.Table(
            "items", meta,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("name", sa.String(50), nullable=True),
        )
        meta.create_all(engine)
        with engine.begin() as conn:
            conn.execute(table.insert(), [{"id": i, "name": n} for i, n in ROWS])
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.select(table).order_by(table.c.id))]
    finally:
        engine.dispose()


def test_postgres_fresh_database_round_trip(pg_url: str) -> None:
    assert pg_url.startswith("postgresql+psycopg2://")
    assert _round_trip(pg_url) == ROWS
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT current_database()")).scalar() == \
            sa.make_url(pg_url).database
    engine.dispose()


def test_mariadb_fresh_database_round_trip(mariadb_url: str) -> None:
    assert mariadb_url.startswith("mysql+pymysql://")
    assert _round_trip(mariadb_url) == ROWS
    engine = sa.create_engine(mariadb_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT DATABASE()")).scalar() == \
            sa.make_url(mariadb_url).database
    engine.dispose()


def test_each_test_gets_its_own_database(pg_url: str, mariadb_url: str) -> None:
    # A table created by another test must not be visible here.
    for url in (pg_url, mariadb_url):
        engine = sa.create_engine(url)
        assert sa.inspect(engine).get_table_names() == []
        engine.dispose()


def test_sqlite_url(sqlite_url: str) -> None:
    assert _round_trip(sqlite_url) == ROWS


def _listen_addresses(port: int) -> list[str]:
    """Local addresses (hex, as in /proc/net/tcp*) of LISTEN sockets on ``port``."""
    found = []
    for table in ("tcp", "tcp6"):
        path = Path("/proc/net") / table
        if not path.exists():
            continue
        for row in path.read_text().splitlines()[1:]:
            fields = row.split()
            addr, port_hex = fields[1].rsplit(":", 1)
            if fields[3] == "0A" and int(port_hex, 16) == port:
                found.append(f"{table}:{addr}")
    return found


LOOPBACK = "tcp:0100007F"  # 127.0.0.1, little-endian hex


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_servers_listen_on_loopback_only(postgres_admin_url: str,
                                         mariadb_admin_url: str) -> None:
    for admin_url in (postgres_admin_url, mariadb_admin_url):
        url = sa.make_url(admin_url)
        assert url.host == "127.0.0.1"
        assert _listen_addresses(url.port) == [LOOPBACK], admin_url

    pg = sa.create_engine(postgres_admin_url)
    with pg.connect() as conn:
        assert conn.execute(sa.text("SHOW listen_addresses")).scalar() == "127.0.0.1"
    pg.dispose()
    maria = sa.create_engine(mariadb_admin_url)
    with maria.connect() as conn:
        row = conn.execute(sa.text("SHOW GLOBAL VARIABLES LIKE 'bind_address'")).one()
        assert row[1] == "127.0.0.1"
    maria.dispose()


def test_markers_applied(request: pytest.FixtureRequest, pg_url: str) -> None:
    assert request.node.get_closest_marker("postgres") is not None
    assert request.node.get_closest_marker("mariadb") is None


# a Java server bound to 127.0.0.1 listens on the IPv4-mapped IPv6 address ::ffff:127.0.0.1
LOOPBACK_V4_MAPPED = "tcp6:0000000000000000FFFF00000100007F"


@pytest.mark.elasticsearch
@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_elasticsearch_node_is_8_19_and_listens_on_loopback_only(elasticsearch_url: str) -> None:
    import json
    import urllib.request

    with urllib.request.urlopen(f"{elasticsearch_url}/", timeout=10) as response:
        product = response.headers["X-Elastic-Product"]
        info = json.load(response)
    assert product == "Elasticsearch"  # what the elasticsearch Python client insists on
    assert info["version"]["number"] == "8.19.5"
    http_port = int(elasticsearch_url.rsplit(":", 1)[1])
    for port in (http_port, http_port + 100):  # HTTP, transport
        assert _listen_addresses(port) == [LOOPBACK_V4_MAPPED], port
