"""Applying a change stream (rows with an operation column, as change data capture reads them)
to a table with key columns, inside the load's transaction.

The changes are staged in stream order; per key only the last change counts (a row inserted,
updated and deleted within one read ends deleted; deleted and inserted again ends present).
Keys whose last change is a ``delete`` are deleted from the target; the last row of every other
key goes to a second staging table that the caller merges like any upsert::

    changes(cols..., op, seq)                       every change, in order
    latest(seq) = SELECT max(seq) FROM changes GROUP BY keys
    DELETE FROM target WHERE key IN (latest rows with op = 'delete')
    upserts(cols...) = latest rows with op <> 'delete'    -> merged by the caller

Each staging table is used once per statement (MySQL cannot reopen a temporary table).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from nexus_dagster.errors import LoadError

__all__ = ["OPERATIONS", "OP_COLUMN", "SEQUENCE_COLUMN", "stage_changes"]

#: the column of a change data capture read saying what happened to a row (one of OPERATIONS)
OP_COLUMN = "_op"
#: the values an operation column may hold
OPERATIONS = ("insert", "update", "delete")
#: the order of the changes in the staging table
SEQUENCE_COLUMN = "nexus_change_seq"

Bulk = Callable[[sa.Connection, sa.Table, Sequence[str], Iterator[pa.RecordBatch]], int]


def _temp_table(connection: sa.Connection, select: sa.Select, columns: Sequence[str]) -> sa.Table:
    name = f"nexus_chg_{uuid.uuid4().hex[:12]}"
    connection.execute(sa.CreateTableAs(select, name, temporary=True))
    types = {c.name: c.type for c in select.selected_columns}
    return sa.Table(name, sa.MetaData(), *[sa.Column(c, types[c]) for c in columns])


def _numbered(
    batches: Iterator[pa.RecordBatch], columns: Sequence[str], op_column: str, label: str
) -> Iterator[pa.RecordBatch]:
    """The batches' ``columns`` and operation, with the stream position appended."""
    position = 0
    for batch in batches:
        ops = batch.column(op_column)
        bad = pc.invert(pc.fill_null(pc.is_in(ops, pa.array(OPERATIONS)), False))
        if pc.any(bad).as_py():
            wrong = pc.unique(pc.filter(ops, bad)).to_pylist()
            raise LoadError(
                f"column {op_column!r} of the changes loaded into {label!r} holds {wrong}; "
                f"each change must be one of {list(OPERATIONS)} (do not transform {op_column})"
            )
        numbers = pa.array(range(position, position + batch.num_rows), pa.int64())
        position += batch.num_rows
        arrays = [batch.column(c) for c in (*columns, op_column)]
        yield pa.RecordBatch.from_arrays([*arrays, numbers],
                                         names=[*columns, op_column, SEQUENCE_COLUMN])


def stage_changes(
    connection: sa.Connection, target: sa.Table, columns: Sequence[str], keys: Sequence[str],
    batches: Iterator[pa.RecordBatch], op_column: str, bulk: Bulk, label: str,
) -> tuple[sa.Table, int, int, int]:  # fmt: skip
    """Stage the change ``batches`` and delete the keys whose last change is a delete.

    Args:
        connection: the load's connection (and transaction).
        target: the target table (reflected).
        columns: the data columns (without ``op_column``), all in ``target``.
        keys: the key columns.
        batches: the changes, in stream order, each with ``columns`` and ``op_column``.
        op_column: the column holding ``insert``, ``update`` or ``delete``.
        bulk: the connector's bulk loader (moves batches into a table in this transaction).
        label: the target's name for messages.

    Returns:
        (the staging table of the rows to upsert, its row count, changes read, rows deleted).

    Raises:
        LoadError: an operation value that is none of :data:`OPERATIONS`.
    """
    changes = _temp_table(connection, sa.select(
        *[target.c[c] for c in columns],
        sa.cast(sa.null(), sa.String(8)).label(op_column),
        sa.cast(sa.null(), sa.BigInteger()).label(SEQUENCE_COLUMN),
    ).where(sa.false()), [*columns, op_column, SEQUENCE_COLUMN])  # fmt: skip
    read = bulk(connection, changes, [*columns, op_column, SEQUENCE_COLUMN],
                _numbered(batches, columns, op_column, label))  # fmt: skip
    seq = changes.c[SEQUENCE_COLUMN]
    latest = _temp_table(
        connection,
        sa.select(sa.func.max(seq).label(SEQUENCE_COLUMN)).group_by(*[changes.c[k] for k in keys]),
        [SEQUENCE_COLUMN],
    )
    last = changes.join(latest, latest.c[SEQUENCE_COLUMN] == seq)
    gone = sa.exists(
        sa.select(sa.literal(1)).select_from(last).where(
            changes.c[op_column] == "delete", *[changes.c[k] == target.c[k] for k in keys]
        )
    )  # fmt: skip
    deleted = int(connection.execute(sa.delete(target).where(gone)).rowcount or 0)
    upserts = _temp_table(
        connection,
        sa.select(*[changes.c[c] for c in columns]).select_from(last)
        .where(changes.c[op_column] != "delete"),
        columns,
    )  # fmt: skip
    staged = connection.execute(sa.select(sa.func.count()).select_from(upserts)).scalar_one()
    return upserts, int(staged), int(read), deleted
