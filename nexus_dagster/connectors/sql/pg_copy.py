"""PostgreSQL COPY paths that keep rows out of Python.

- :func:`pipe`: ``COPY (SELECT ...) TO STDOUT (FORMAT binary)`` on a source connection (in a
  thread, REPEATABLE READ so a follow-up ``count``/``max`` sees the same snapshot) streamed
  through an OS pipe into ``COPY ... FROM STDIN (FORMAT binary)`` on the target connection, in
  the caller's transaction. Memory stays at the pipe's buffers.
- :func:`read_batches`: ``COPY (SELECT ...) TO STDOUT (FORMAT csv)`` parsed by ``pyarrow.csv``
  with the column types known from the query's description (exact decimals, UTC timestamps),
  block by block, so a read never decodes a row in Python and never holds the result.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa

from nexus_dagster.connectors.sql.session import compile_statement
from nexus_dagster.relation import rebatch

#: type OIDs whose COPY csv text pyarrow parses into what the row-by-row reader makes:
#: bool, int2/4/8, oid, float4/8, text, varchar, name, char, bpchar, date, timestamp(tz),
#: numeric, json/jsonb (kept as text), uuid
CSV_OIDS = frozenset({16, 18, 19, 20, 21, 23, 26, 700, 701, 25, 1042, 1043, 1082, 1114, 1184,
                      1700, 114, 3802, 2950})  # fmt: skip

_PIPE_BUFFER = 1 << 20
#: the CSV text pyarrow parses at once (a row must fit in one block)
_BLOCK = 1 << 20
#: blocks read from the pipe ahead of the batches taken from the reader, at most
READ_AHEAD_BLOCKS = 4
#: seconds without a batch taken, the consumer waiting, after which a block is read anyway
_STALL = 0.2
#: the environment variable that turns the bulk readers off (see ``fast_read``)
FAST_READ_SWITCH = "NEXUS_FAST_READ"


@dataclass
class PipeResult:
    """What a pipe moved: rows loaded, rows of the source query before transformations
    (``source_rows``) and the largest cursor value (None without a cursor or rows)."""

    rows: int
    source_rows: int
    cursor_max: Any = None


def result_oids(dbapi: Any, dialect: sa.Dialect, statement: sa.Select[Any]) -> list[int]:
    """The type OIDs of a statement's result columns (``LIMIT 0``, nothing fetched), on a
    psycopg2 connection; its transaction is rolled back."""
    sql, params = compile_statement(statement.limit(0), dialect)
    try:
        with dbapi.cursor() as dbapi_cursor:
            dbapi_cursor.execute(sql, params)
            return [d.type_code for d in dbapi_cursor.description]
    finally:
        dbapi.rollback()


def pipe(
    source_engine: sa.Engine, select_sql: str, target_dbapi: Any, copy_in_sql: str,
    stats_sql: str | None = None, on_read: Callable[[int], None] | None = None,
    source_dbapi: Any = None,
) -> PipeResult:  # fmt: skip
    """Stream ``select_sql`` from the source into ``copy_in_sql`` on ``target_dbapi``.

    Args:
        source_engine: engine of the source database (a new connection is opened unless
            ``source_dbapi`` is given).
        select_sql: a SELECT with its values already inlined (COPY takes no parameters).
        target_dbapi: the psycopg2 connection of the caller's (open) target transaction.
        copy_in_sql: ``COPY table (cols) FROM STDIN (FORMAT binary)``.
        stats_sql: an optional ``SELECT count(*)[, max(col)]`` run after the COPY in the same
            snapshot; without it ``source_rows`` is the number of rows copied.
        on_read: called with the size of each chunk the target reads from the pipe (progress).
        source_dbapi: an open psycopg2 connection of the source, outside any transaction (the
            caller's probes rolled back), used instead of a new one; the caller closes it.

    Raises:
        The source's error when the source failed (the target then saw a short stream), else
        the target's. The caller's transaction must roll back on any error.
    """
    read_fd, write_fd = os.pipe()
    reader = os.fdopen(read_fd, "rb", buffering=_PIPE_BUFFER)
    writer = os.fdopen(write_fd, "wb", buffering=_PIPE_BUFFER)
    failures: list[BaseException] = []
    out: dict[str, Any] = {}

    def produce() -> None:
        try:
            fairy = source_engine.raw_connection() if source_dbapi is None else None
            try:
                dbapi = source_dbapi if fairy is None else fairy.dbapi_connection
                dbapi.set_session(isolation_level="REPEATABLE READ", readonly=True)  # type: ignore[union-attr]
                with dbapi.cursor() as cursor:  # type: ignore[union-attr]
                    cursor.copy_expert(
                        f"COPY ({select_sql}) TO STDOUT (FORMAT binary)", writer, _PIPE_BUFFER
                    )
                    writer.close()
                    out["copied"] = cursor.rowcount
                    if stats_sql:
                        cursor.execute(stats_sql)
                        row = cursor.fetchone()
                        out["source_rows"] = int(row[0])
                        out["cursor_max"] = row[1] if len(row) > 1 else None
                dbapi.rollback()  # type: ignore[union-attr]
            finally:
                if fairy is not None:
                    fairy.close()
        except BaseException as exc:  # handed to the caller's thread
            failures.append(exc)
        finally:
            with contextlib.suppress(OSError):
                writer.close()

    thread = threading.Thread(target=produce, name="nexus-copy-out", daemon=True)
    thread.start()
    target_error: BaseException | None = None
    rows = 0
    try:
        with target_dbapi.cursor() as cursor:
            source = _CountedReader(reader, on_read) if on_read else reader
            cursor.copy_expert(copy_in_sql, source, _PIPE_BUFFER)
            rows = cursor.rowcount
    except BaseException as exc:
        target_error = exc
    finally:
        reader.close()
        thread.join()
    if failures:
        raise failures[0]
    if target_error is not None:
        raise target_error
    copied = int(out.get("copied", rows))
    return PipeResult(rows, int(out.get("source_rows", copied)), out.get("cursor_max"))


class _CountedReader:
    """A binary file whose reads are reported (size of each chunk) to a callback."""

    def __init__(self, file: Any, on_read: Callable[[int], None]):
        self.file = file
        self.on_read = on_read

    def read(self, size: int = -1) -> bytes:
        data = self.file.read(size)
        self.on_read(len(data))
        return data


def readable(oids: list[int]) -> bool:
    """True when :func:`read_batches` can read every column of these types."""
    return set(oids) <= CSV_OIDS


class _ArrowPipe:
    """The read end of a pipe as the file ``pyarrow.csv`` reads, at most ``ahead`` blocks ahead
    of its consumer.

    Each block is read straight into a buffer of Arrow's memory pool, not into a Python
    ``bytes`` object made in the C heap of whichever pyarrow I/O thread asked for it (so the
    blocks in flight show in ``pyarrow.total_allocated_bytes()`` with the rest of the read).
    pyarrow's reader reads up to 32 blocks ahead on a background thread (32 MB of text and
    their parsed columns while the target is the slower side): :meth:`read` waits while
    ``ahead`` blocks are read and not yet taken by :meth:`batches` (pyarrow needs the block
    after a batch's own to finish it, so a batch never waits for more than two); should the
    consumer itself wait ``_STALL`` seconds with no batch taken, it reads on, so a reader that
    needs more can never wait for itself.
    """

    def __init__(self, file: io.FileIO, ahead: int):
        self.file = file
        self.ahead = ahead
        self.closed = False
        self.blocks_read = 0
        self.batches_taken = 0
        self.consumer_waiting = False
        self.changed = threading.Condition()

    def read(self, size: int = -1) -> pa.Buffer:
        """Up to ``size`` bytes (fewer only at the end of the stream; none once closed)."""
        with self.changed:
            while not self.closed and self.blocks_read - self.batches_taken >= self.ahead:
                if not self.changed.wait(_STALL) and self.consumer_waiting:
                    break  # no batch taken for a while and the consumer waits: read on
            if self.closed:
                return pa.py_buffer(b"")
            self.blocks_read += 1
        if size < 0:
            return pa.py_buffer(self.file.read())
        buffer = pa.allocate_buffer(size, resizable=True)
        view = memoryview(buffer).cast("B")  # type: ignore[arg-type]
        filled = 0
        while filled < size:
            got = self.file.readinto(view[filled:])
            if not got:
                break
            filled += got
        view.release()
        buffer.resize(filled)
        return buffer

    def waiting(self, get: Callable[[], Any]) -> Any:
        """``get()`` (opening the CSV reader, or its next batch), the consumer marked as waiting
        for the reader meanwhile."""
        with self.changed:
            self.consumer_waiting = True
        try:
            return get()
        finally:
            with self.changed:
                self.consumer_waiting = False

    def batches(self, stream: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
        """The batches of the CSV reader reading this pipe, each counted as taken."""
        while True:
            try:
                batch = self.waiting(stream.read_next_batch)
            except StopIteration:
                return
            with self.changed:
                self.batches_taken += 1
                self.changed.notify_all()
            yield batch

    def close(self) -> None:
        """Close the pipe's read end (the COPY thread then stops with a broken pipe)."""
        with self.changed:
            self.closed = True
            self.changed.notify_all()
        self.file.close()


def read_batches(
    connection: sa.Connection, statement: sa.Select[Any], schema: pa.Schema, batch_size: int
) -> Iterator[pa.RecordBatch]:
    """Stream a statement's rows as Arrow batches of ``schema`` through COPY csv.

    The COPY runs in a thread writing into an OS pipe that ``pyarrow.csv`` reads in blocks
    of ``_BLOCK`` bytes, at most ``READ_AHEAD_BLOCKS`` ahead of the caller, re-cut into
    batches of ``batch_size`` rows; memory stays at a few blocks and one batch.
    """
    sql, params = compile_statement(statement, connection.dialect)
    dbapi = connection.connection.dbapi_connection
    with dbapi.cursor() as cursor:  # type: ignore[union-attr]
        cursor.execute("SET DateStyle TO ISO")
        text = cursor.mogrify(sql, params).decode()
    read_fd, write_fd = os.pipe()
    reader = _ArrowPipe(os.fdopen(read_fd, "rb", buffering=0), READ_AHEAD_BLOCKS)
    writer = os.fdopen(write_fd, "wb", buffering=_PIPE_BUFFER)
    failures: list[BaseException] = []

    def produce() -> None:
        try:
            with dbapi.cursor() as cursor:  # type: ignore[union-attr]
                cursor.copy_expert(f"COPY ({text}) TO STDOUT (FORMAT csv)", writer, _PIPE_BUFFER)
        except BaseException as exc:
            failures.append(exc)
        finally:
            with contextlib.suppress(OSError):
                writer.close()

    thread = threading.Thread(target=produce, name="nexus-copy-csv", daemon=True)
    thread.start()
    try:
        # 4 MB blocks held 169 MB of Arrow memory (pyarrow read 32 ahead of the load) where
        # 1 MB blocks held 55 MB, no slower; 1 MB blocks at most 4 ahead hold 6-13 MB
        # (test_pg_copy_threads.py); the batches are re-cut to batch_size rows below
        open_reader = functools.partial(
            pacsv.open_csv,
            reader,
            read_options=pacsv.ReadOptions(column_names=schema.names, block_size=_BLOCK),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={f.name: f.type for f in schema},
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
                true_values=["t"],
                false_values=["f"],
            ),
        )
        stream = reader.waiting(open_reader)
        yield from rebatch(reader.batches(stream), batch_size)
    except pa.ArrowInvalid as exc:
        if not failures and "straddl" in str(exc):
            raise ValueError(  # the connector adds the table and database
                f"a row of the result is longer than the {_BLOCK >> 20} MB of CSV text the "
                f"COPY reader parses at once; set {FAST_READ_SWITCH}=0 to read this source row "
                "by row"
            ) from exc
        if not failures and "Empty CSV file" not in str(exc):
            raise
    finally:
        reader.close()
        thread.join()
    if failures:
        raise failures[0]
