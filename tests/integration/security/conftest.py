"""Fixtures of the security tests: a dedicated PostgreSQL server (restarted and killed by the
fault tests, never the shared one)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.security.dedicated_pg import PG_BIN, DedicatedPostgres


@pytest.fixture(scope="module")
def dedicated_pg() -> Iterator[DedicatedPostgres]:
    """A PostgreSQL server of this module's own, TLS on, on a free port of 127.0.0.1."""
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL 15 is not installed at {PG_BIN}: run scripts/test.sh")
    server = DedicatedPostgres()
    server.init()
    try:
        yield server
    finally:
        server.close()
