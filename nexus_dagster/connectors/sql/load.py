"""Bulk loaders: Arrow batches into one table on an open connection (inside the caller's
transaction). Each returns the number of rows sent.

- PostgreSQL: one ``COPY ... FROM STDIN (FORMAT csv)`` fed batch by batch through a file-like
  stream, so the whole load is a single COPY and never held in memory.
- MySQL/MariaDB: pymysql ``executemany``, which packs rows into multi-row INSERTs (~1 MB each).
- Anything else (SQLite, ...): SQLAlchemy Core ``executemany`` with the table's types, so the
  dialect's own value processing applies.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import sqlalchemy as sa

_CSV_OPTIONS = pacsv.WriteOptions(include_header=False, quoting_style="all_valid")


class _ChunkStream(io.RawIOBase):
    """A read-only file over an iterator of byte chunks (what ``copy_expert`` reads from)."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = chunks
        self._buffer = memoryview(b"")  # the rest of the current chunk (no copy per read)

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            try:
                self._buffer = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


def _pg_csv_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    """bytea values as PostgreSQL hex text; everything else pyarrow writes the way COPY reads."""
    arrays = []
    for col in batch.columns:
        if pa.types.is_binary(col.type):
            col = pa.array(
                [None if v is None else "\\x" + v.hex() for v in col.to_pylist()], pa.string()
            )
        elif pa.types.is_timestamp(col.type) and col.type.tz == "UTC":
            # the same text pyarrow writes for a UTC timestamp ("... 10:00:00.000000Z"), made
            # from the naive value: formatting through the time zone is ~4x slower
            naive = col.cast(pa.timestamp(col.type.unit))
            col = pc.binary_join_element_wise(naive.cast(pa.string()), "Z", "")
        arrays.append(col)
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def pg_copy(
    dbapi_connection: object, table_sql: str, columns_sql: Sequence[str],
    batches: Iterable[pa.RecordBatch],
) -> int:  # fmt: skip
    """COPY batches into a PostgreSQL table through psycopg2 ``copy_expert``.

    Args:
        dbapi_connection: the psycopg2 connection under the caller's transaction.
        table_sql: the table name, already quoted by the dialect.
        columns_sql: the column names, already quoted, in the batches' column order.
        batches: normalized batches (see ``normalize_for_write``).
    """
    count = 0

    def chunks() -> Iterator[bytes]:
        nonlocal count
        for batch in batches:
            if batch.num_rows == 0:
                continue
            sink = pa.BufferOutputStream()
            pacsv.write_csv(_pg_csv_batch(batch), sink, _CSV_OPTIONS)
            count += batch.num_rows
            yield sink.getvalue().to_pybytes()

    sql = f"COPY {table_sql} ({', '.join(columns_sql)}) FROM STDIN WITH (FORMAT csv)"
    with dbapi_connection.cursor() as cursor:  # type: ignore[attr-defined]
        cursor.copy_expert(sql, _ChunkStream(chunks()), size=1 << 20)
    return count


def _python_rows(batch: pa.RecordBatch) -> list[tuple]:
    columns = []
    for col in batch.columns:
        if pa.types.is_timestamp(col.type) and col.type.tz:
            # pymysql drops tzinfo: send naive UTC wall time (the session time zone is UTC)
            col = pc.cast(col, pa.timestamp("us"))
        columns.append(col.to_pylist())
    return list(zip(*columns, strict=True))


def mysql_insert(
    dbapi_connection: object, table_sql: str, columns_sql: Sequence[str],
    batches: Iterable[pa.RecordBatch],
) -> int:  # fmt: skip
    """Insert batches with pymysql ``executemany`` (multi-row INSERT statements)."""
    placeholders = ", ".join(["%s"] * len(columns_sql))
    sql = f"INSERT INTO {table_sql} ({', '.join(columns_sql)}) VALUES ({placeholders})"
    count = 0
    with dbapi_connection.cursor() as cursor:  # type: ignore[attr-defined]
        for batch in batches:
            if batch.num_rows:
                cursor.executemany(sql, _python_rows(batch))
                count += batch.num_rows
    return count


def sa_insert(connection: sa.Connection, table: sa.Table, batches: Iterable[pa.RecordBatch]) -> int:
    """Insert batches through SQLAlchemy Core executemany (dialect type processing applies)."""
    count = 0
    statement = table.insert()
    for batch in batches:
        if batch.num_rows:
            rows = [dict(zip(batch.schema.names, row, strict=True)) for row in _python_rows(batch)]
            connection.execute(statement, rows)
            count += batch.num_rows
    return count
