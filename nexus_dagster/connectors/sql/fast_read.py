"""Which bulk reader a database read can use instead of fetching rows into Python.

PostgreSQL results whose columns are all plain scalars (see :func:`pg_copy_readable`) stream
through ``COPY ... TO STDOUT (FORMAT csv)`` parsed by pyarrow (:mod:`.pg_copy`); MySQL/MariaDB
results of such columns as server-made CSV lines parsed by pyarrow (:mod:`.mysql_read`). Other
results, and every other system, keep the row-by-row reader. ``NEXUS_FAST_READ=0`` turns the
bulk readers off (to compare both paths).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from nexus_dagster.connectors.sql import mysql_read, pg_copy
from nexus_dagster.connectors.sql.types import UNCONSTRAINED_DECIMAL, ColumnInfo
from nexus_dagster.switches import switched_on

ENV_SWITCH = pg_copy.FAST_READ_SWITCH

Reader = Callable[[sa.Select[Any], pa.Schema, int], Iterator[pa.RecordBatch]]


def enabled() -> bool:
    """False when ``NEXUS_FAST_READ`` is ``0``/``false``/``no``/``off``."""
    return switched_on(ENV_SWITCH)


def _plain(t: pa.DataType) -> bool:
    if pa.types.is_decimal(t):
        return t != UNCONSTRAINED_DECIMAL
    if pa.types.is_timestamp(t):
        return t.unit == "us" and t.tz in (None, "UTC")
    return (
        pa.types.is_boolean(t) or pa.types.is_integer(t) or pa.types.is_floating(t)
        or pa.types.is_string(t) or pa.types.is_date32(t)
    )  # fmt: skip


def pg_copy_readable(columns: Sequence[ColumnInfo]) -> bool:
    """True when COPY csv text parses into exactly what the row reader makes for each column
    (no per-value conversion, a plain scalar type, a declared numeric precision)."""
    return all(c.convert is None and _plain(c.arrow) for c in columns)


def fast_reader(
    backend: str, engine: sa.Engine, columns: Sequence[ColumnInfo]
) -> Reader | None:
    """A bulk reader for a result of ``columns`` on ``engine`` (a ``backend`` database:
    ``postgresql``, ``mysql`` ...), or None for the row reader."""
    if not enabled():
        return None
    if backend == "mysql" and mysql_read.readable(columns):

        def read_lines(stmt: sa.Select[Any], schema: pa.Schema, batch_size: int
                       ) -> Iterator[pa.RecordBatch]:  # fmt: skip
            return mysql_read.read_batches(engine, stmt, columns, schema, batch_size)

        return read_lines
    if backend != "postgresql" or not pg_copy_readable(columns):
        return None

    def read(stmt: sa.Select[Any], schema: pa.Schema, batch_size: int) -> Iterator[pa.RecordBatch]:
        with engine.connect() as connection:
            yield from pg_copy.read_batches(connection, stmt, schema, batch_size)

    return read
