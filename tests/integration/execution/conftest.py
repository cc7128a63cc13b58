"""Fixtures of the split-job tests: a PostgreSQL database with customers, a persistent
instance."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa


@pytest.fixture
def pg(pg_url: str) -> Iterator[sa.Engine]:
    """The test database with a ``customers`` table."""
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, "
                             "name TEXT)"))
        conn.execute(sa.text("INSERT INTO customers VALUES (1, 'Ann'), (2, 'Bob'), (3, 'Cy')"))
    yield engine
    engine.dispose()


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """A persistent instance (the multiprocess executor's steps share it)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as found:
        yield found
