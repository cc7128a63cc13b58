"""Helpers of the use-case tests: a spec folder on the test servers, tables in and out."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import sqlalchemy as sa

from tests.support import run_job


def project(tmp_path: Path, job: str, **urls: str) -> Path:
    """A spec folder with one job and a connection per keyword (name -> SQLAlchemy URL)."""
    folder = tmp_path / "job_specs"
    folder.mkdir()
    connections = "".join(
        f"{name}:\n  type: {sa.engine.make_url(url).get_backend_name()}\n  url: '{url}'\n"
        for name, url in urls.items()
    )
    (folder / "connections.yaml").write_text(connections)
    (folder / "job.yaml").write_text(textwrap.dedent(job))
    return folder


def run(folder: Path, job: str) -> dg.ExecuteInProcessResult:
    """Run the job through Dagster (in process); fails the test when the run fails."""
    result = run_job(folder, job, dg.DagsterInstance.ephemeral())
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return result


def execute(url: str, *statements: str) -> None:
    """Run SQL statements in one transaction."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as con:
        for statement in statements:
            con.execute(sa.text(statement))
    engine.dispose()


def insert(url: str, table: str, values: Sequence[Sequence[Any]]) -> None:
    """Insert rows (tuples in the table's column order, None for null) into ``table``, the
    values bound as parameters (the driver quotes them)."""
    names = [f"c{i}" for i in range(len(values[0]))]
    statement = sa.text(f"insert into {table} values ({', '.join(':' + n for n in names)})")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as con:
        con.execute(statement, [dict(zip(names, row, strict=True)) for row in values])
    engine.dispose()


def rows(url: str, query: str) -> list[tuple[Any, ...]]:
    """The rows of a query, as tuples."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as con:
        found = [tuple(r) for r in con.execute(sa.text(query))]
    engine.dispose()
    return found
