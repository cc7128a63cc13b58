"""Bulk loaders: Arrow batches into one table on an open connection (inside the caller's
transaction). Each returns the number of rows sent.

- PostgreSQL: one ``COPY ... FROM STDIN`` fed batch by batch through a file-like stream, so the
  whole load is a single COPY and never held in memory: ``FORMAT binary`` (pgpq) when every
  column's Arrow type has the target column's binary form (:mod:`.pg_binary`), ``FORMAT csv``
  otherwise. The COPY runs on a thread of its own that also encodes, so the server parses and
  the caller's side (reading, transforming) computes the next batches at the same time; at most
  ``QUEUED_BATCHES`` batches wait between the two.
- MySQL/MariaDB: pymysql ``executemany``, which packs rows into multi-row INSERTs (~1 MB each).
- Anything else (SQLite, ...): SQLAlchemy Core ``executemany`` with the table's types, so the
  dialect's own value processing applies.
"""

from __future__ import annotations

import io
import itertools
import queue
import threading
from collections.abc import Iterable, Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import sqlalchemy as sa

from nexus_dagster.connectors.sql import pg_binary

_CSV_OPTIONS = pacsv.WriteOptions(include_header=False, quoting_style="all_valid")


#: rows formatted into one CSV (or binary) chunk: ~1 MB for a 9-column row, so a large batch
#: never becomes one large buffer
CSV_ROWS = 8192
#: batches waiting between the caller's thread and the COPY thread (one: 5-10 MB less peak RSS
#: than two on the 2M-row general-path benchmark, no slower)
QUEUED_BATCHES = 1
#: bytes psycopg2 reads per call (each a new ``bytes`` object, sent as one CopyData message)
_READ_SIZE = 64 << 10
_END = object()


class _CopyAborted(Exception):
    """Raised inside ``copy_expert`` when the caller's side failed: the COPY is cancelled."""


class _ChunkStream(io.RawIOBase):
    """A read-only file over an iterator of byte buffers (what ``copy_expert`` reads from)."""

    def __init__(self, chunks: Iterator[pa.Buffer | bytes]):
        self._chunks = chunks
        self._buffer = memoryview(b"")  # the rest of the current chunk (no copy per read)

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            try:
                self._buffer = memoryview(next(self._chunks)).cast("B")
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


def _csv_chunks(batch: pa.RecordBatch) -> Iterator[pa.Buffer]:
    """A batch as CSV text COPY reads, ``CSV_ROWS`` rows a buffer."""
    batch = _pg_csv_batch(batch)
    for offset in range(0, batch.num_rows, CSV_ROWS):
        sink = pa.BufferOutputStream()
        pacsv.write_csv(batch.slice(offset, CSV_ROWS), sink, _CSV_OPTIONS)
        yield sink.getvalue()


def pg_copy(
    dbapi_connection: object, table_sql: str, columns_sql: Sequence[str],
    batches: Iterable[pa.RecordBatch],
) -> int:  # fmt: skip
    """COPY batches into a PostgreSQL table through psycopg2 ``copy_expert``.

    The first non-empty batch decides the format: binary when its columns have the target
    columns' binary forms (:func:`.pg_binary.encoded_schema`), CSV otherwise. The batches are
    read on the caller's thread; a second thread encodes and sends them (pgpq, pyarrow's CSV
    writer and libpq release the GIL). An error on either side cancels the COPY and is raised
    here (the caller's own error first).

    Args:
        dbapi_connection: the psycopg2 connection under the caller's transaction.
        table_sql: the table name, already quoted by the dialect.
        columns_sql: the column names, already quoted, in the batches' column order.
        batches: normalized batches (see ``normalize_for_write``) whose column names are the
            target's.
    """
    pending = iter(batches)
    first = next((batch for batch in pending if batch.num_rows), None)
    if first is None:
        return 0
    binary = None
    if pg_binary.enabled():
        oids = pg_binary.column_type_oids(dbapi_connection, table_sql)
        schema = pg_binary.encoded_schema(first.schema, oids)
        binary = None if schema is None else pg_binary.BinaryChunks(schema, CSV_ROWS)
    form = "binary" if binary else "csv"
    sql = f"COPY {table_sql} ({', '.join(columns_sql)}) FROM STDIN WITH (FORMAT {form})"
    handed: queue.Queue[object] = queue.Queue(QUEUED_BATCHES)
    stop = threading.Event()
    failures: list[BaseException] = []

    def received() -> Iterator[pa.Buffer | bytes]:
        if binary:
            yield binary.header()
        while True:
            try:
                item = handed.get(timeout=0.1)
            except queue.Empty:
                if stop.is_set():
                    raise _CopyAborted("the rows to load failed; COPY cancelled") from None
                continue
            if item is _END:
                break
            yield from binary.batch(item) if binary else _csv_chunks(item)  # type: ignore[arg-type]
        if binary:
            yield binary.trailer()

    def send() -> None:
        try:
            with dbapi_connection.cursor() as cursor:  # type: ignore[attr-defined]
                cursor.copy_expert(sql, _ChunkStream(received()), size=_READ_SIZE)
        except BaseException as exc:  # raised by the caller's thread
            failures.append(exc)

    sender = threading.Thread(target=send, name="nexus-copy-in", daemon=True)
    sender.start()
    count = 0
    try:
        for batch in itertools.chain([first], pending):
            if batch.num_rows == 0:
                continue
            if not _hand_over(handed, batch, sender):
                break  # the COPY failed: its error is raised below
            count += batch.num_rows
        else:
            _hand_over(handed, _END, sender)
    finally:
        stop.set()
        sender.join()
    if failures:
        raise failures[0]
    return count


def _hand_over(handed: queue.Queue[object], item: object, sender: threading.Thread) -> bool:
    """Put ``item`` for the COPY thread; False when that thread has ended (failed)."""
    while sender.is_alive():
        try:
            handed.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


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
