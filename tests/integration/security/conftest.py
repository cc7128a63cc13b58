"""Fixtures of the security tests: a dedicated PostgreSQL server (restarted and killed by the
fault tests, never the shared one)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.dedicated_pg import DedicatedPostgres, dedicated_postgres


@pytest.fixture(scope="module")
def dedicated_pg() -> Iterator[DedicatedPostgres]:
    """A PostgreSQL server of this module's own, TLS on, on a free port of 127.0.0.1."""
    with dedicated_postgres() as server:
        yield server
