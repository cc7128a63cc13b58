"""``after_load: {delete: true}`` on a database source: delete exactly the rows this run read,
once every target committed.

By keys: the key values read are bulk-loaded into a temporary table and the source rows with
those keys deleted (``DELETE ... WHERE EXISTS``). By window: the rows of the read's incremental
window, ``cursor (>= | >) start AND column <= largest value read [AND column < upper]``, the
same rows the cursor moves past (rows whose column is null are never in a window).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from nexus_dagster.connectors.base import AfterLoad, Cursor
from nexus_dagster.connectors.sql.sync import keys_match
from nexus_dagster.connectors.sql.types import coerce_cursor_value, normalize_for_write

__all__ = ["delete_keys", "delete_window"]

#: the bulk step of the source connector: (connection, table, columns, batches) -> rows
Bulk = Callable[[sa.Connection, sa.Table, Sequence[str], Iterator[pa.RecordBatch]], int]


def delete_keys(connection: sa.Connection, table: sa.Table, keys: pa.Table, bulk: Bulk) -> int:
    """Delete the rows of ``table`` whose key columns match a row of ``keys``; returns how
    many."""
    columns = list(keys.column_names)
    if keys.num_rows == 0:
        return 0
    name = f"nexus_del_{uuid.uuid4().hex[:12]}"
    select = sa.select(*[table.c[c] for c in columns]).where(sa.false())
    connection.execute(sa.CreateTableAs(select, name, temporary=True))
    read = sa.Table(name, sa.MetaData(), *[sa.Column(c, table.c[c].type) for c in columns])
    bulk(connection, read, columns, (normalize_for_write(b) for b in keys.to_batches(65536)))
    matched = sa.exists(sa.select(sa.literal(1)).select_from(read)
                        .where(keys_match(read, table, columns)))
    # the temporary table goes with the session (a DROP would commit on MySQL)
    return int(connection.execute(sa.delete(table).where(matched)).rowcount or 0)


def delete_window(
    connection: sa.Connection, table: sa.Table, cursor: Cursor | None, action: AfterLoad,
    arrow_type: pa.DataType,
) -> int:  # fmt: skip
    """Delete the rows of the read's incremental window (see the module docstring)."""
    if action.window_column is None or action.window_max is None:
        return 0
    column = table.c[action.window_column]

    def bound(name: str, value: Any) -> sa.BindParameter:
        return sa.bindparam(name, coerce_cursor_value(value, arrow_type), type_=column.type)

    conditions = [column <= bound("nexus_max", action.window_max)]
    if cursor is not None:
        start = bound("nexus_start", cursor.value)
        conditions.append(column >= start if cursor.inclusive else column > start)
        if cursor.upper is not None:
            conditions.append(column < bound("nexus_upper", cursor.upper))
    return int(connection.execute(sa.delete(table).where(*conditions)).rowcount or 0)
