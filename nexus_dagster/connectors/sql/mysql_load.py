"""MySQL/MariaDB bulk loads through ``LOAD DATA LOCAL INFILE``, fed from Arrow batches.

Batches become the server's default text format (tab-separated, ``\\N`` for NULL, tab, newline,
carriage return, NUL and backslash escaped with a backslash) with Arrow compute kernels, no row
in Python: decimals as their exact text, timestamps as naive UTC ``YYYY-MM-DD HH:MM:SS.ffffff``
(the session time zone is UTC), booleans as ``1``/``0``, binary as hex decoded by ``UNHEX``.
The text goes to a private temporary file in chunks of ~32 MB, each loaded by one ``LOAD DATA``
statement on the caller's connection, inside the caller's transaction (InnoDB rolls it back).

``LOAD DATA LOCAL`` turns errors into warnings (truncation, bad values, duplicate keys skip
rows), so every statement is followed by ``SHOW WARNINGS``: any warning or a row count other
than the chunk's fails the load with :class:`LoadDataWarning`, and the caller rolls back.

The client advertises the LOCAL capability on every connection (:func:`allow_local_infile`),
but pymysql answers a server's file request only while :func:`load` runs its own statement.
When the server refuses LOCAL INFILE (``local_infile=OFF``, or ``local_infile: false`` in the
connection params), the load falls back to multi-row INSERTs with a log line.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy import event

from nexus_dagster.connectors.sql.load import mysql_insert
from nexus_dagster.scratch import scratch_folder

log = logging.getLogger(__name__)

#: bytes of text per LOAD DATA statement
CHUNK_BYTES = 32 << 20
#: server refusals of LOCAL INFILE: MySQL 5.x/MariaDB < 10.5, MariaDB >= 10.5, MySQL 8, client
REFUSED = frozenset({1148, 4166, 3948, 2068})
_NULL = "\\N"
_SPECIAL = "[\\\\\t\n\r\x00]"
_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"), ("\x00", "\\0"))


class LoadDataWarning(Exception):
    """A LOAD DATA statement warned (or stored another row count); the load must fail.

    The database connector reports it as a :class:`~nexus_dagster.errors.LoadError` naming the
    table, and its transaction rolls back.
    """


def allow_local_infile(engine: sa.Engine) -> None:
    """Advertise the LOCAL INFILE capability on the engine's pymysql connections.

    Only the handshake flag is set: pymysql keeps refusing file requests (its ``local_infile``
    stays off) except during :func:`load`'s own statement. An explicit ``local_infile`` in the
    connection params wins (``false`` makes every load use INSERTs).
    """

    @event.listens_for(engine, "do_connect")
    def _local_files(_dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
        if "local_infile" not in cparams:
            from pymysql.constants import CLIENT

            cparams["client_flag"] = int(cparams.get("client_flag", 0)) | CLIENT.LOCAL_FILES


def _escape(col: pa.Array) -> pa.Array:
    if pc.any(pc.match_substring_regex(col, _SPECIAL)).as_py():
        for old, new in _ESCAPES:
            col = pc.replace_substring(col, old, new)
    return col


def _text(col: pa.Array) -> pa.Array:
    """One column as LOAD DATA text, NULL as ``\\N``."""
    t = col.type
    if pa.types.is_string(t):
        text = _escape(col)
    elif pa.types.is_binary(t):
        text = pa.array([None if v is None else v.hex() for v in col.to_pylist()], pa.string())
    elif pa.types.is_boolean(t):
        text = pc.cast(pc.cast(col, pa.int8()), pa.string())
    elif pa.types.is_timestamp(t):
        text = pc.cast(pc.cast(col, pa.timestamp("us")), pa.string())
    elif pa.types.is_float32(t):
        # the INSERT path sends float32 values as Python floats: same digits here
        text = pc.cast(pc.cast(col, pa.float64()), pa.string())
    else:
        text = pc.cast(col, pa.string())
    return pc.fill_null(text, _NULL) if text.null_count else text


def batch_text(batch: pa.RecordBatch) -> pa.Buffer:
    """The rows of a batch as LOAD DATA text (one line per row), as one Arrow buffer."""
    columns = [_text(c) for c in batch.columns]
    columns[-1] = pc.binary_join_element_wise(columns[-1], "\n", "")
    lines = columns[0] if len(columns) == 1 else pc.binary_join_element_wise(*columns, "\t")
    lines = pc.cast(lines, pa.large_string())  # 64-bit offsets whatever the batch size
    _, offsets, data = lines.buffers()
    first, last = (
        int.from_bytes(offsets[i * 8 : i * 8 + 8], "little", signed=True)
        for i in (lines.offset, lines.offset + len(lines))
    )
    return data.slice(first, last - first)


def _statement(
    connection: Any, table_sql: str, columns_sql: Sequence[str], schema: pa.Schema, path: str
) -> str:
    targets, sets = [], []
    for i, (column, field) in enumerate(zip(columns_sql, schema, strict=True)):
        if pa.types.is_binary(field.type):
            targets.append(f"@nexus_{i}")
            sets.append(f"{column} = UNHEX(@nexus_{i})")
        else:
            targets.append(column)
    set_sql = f" SET {', '.join(sets)}" if sets else ""
    return (
        f"LOAD DATA LOCAL INFILE {connection.escape(path)} INTO TABLE {table_sql} "
        "CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' "
        f"LINES TERMINATED BY '\\n' ({', '.join(targets)}){set_sql}"
    )


@contextlib.contextmanager
def _answering_file_requests(connection: Any) -> Iterator[None]:
    before = getattr(connection, "_local_infile", False)
    connection._local_infile = True  # pymysql sends the file only while this is on
    try:
        yield
    finally:
        connection._local_infile = before


def _run(connection: Any, sql: str, expected: int) -> None:
    """One LOAD DATA; any warning, or fewer/more rows than sent, fails the load."""
    with connection.cursor() as cursor:
        with _answering_file_requests(connection):
            cursor.execute(sql)
        loaded = cursor.rowcount
        cursor.execute("SHOW WARNINGS")
        warnings = cursor.fetchall()
    if warnings or loaded != expected:
        shown = "; ".join(f"{level} {code}: {text}" for level, code, text in warnings[:3])
        more = f" (and {len(warnings) - 3} more)" if len(warnings) > 3 else ""
        raise LoadDataWarning(
            f"LOAD DATA stored {loaded} of {expected} rows with {len(warnings)} warning(s): "
            f"{shown or 'none'}{more}"
        )


def _refused(exc: BaseException) -> bool:
    args = getattr(exc, "args", ())
    return bool(args) and isinstance(args[0], int) and args[0] in REFUSED


def load(
    dbapi_connection: Any, table_sql: str, columns_sql: Sequence[str],
    batches: Iterable[pa.RecordBatch],
) -> int:  # fmt: skip
    """LOAD DATA LOCAL INFILE the batches into a table, in the caller's transaction.

    Args:
        dbapi_connection: the pymysql connection under the caller's (open) transaction.
        table_sql: the table name, already quoted by the dialect.
        columns_sql: the column names, already quoted, in the batches' column order.
        batches: normalized batches (see ``normalize_for_write``).

    Returns:
        The number of rows loaded.

    Raises:
        LoadDataWarning: the server reported a warning (truncation, bad value, duplicate key) or
            stored another number of rows; the caller must roll back.
    """
    batches = iter(batches)
    with scratch_folder("nexus-load-") as folder:
        path = os.path.join(folder, "rows.tsv")
        open(path, "wb").close()  # an empty file for the probe
        probe = _statement(dbapi_connection, table_sql, columns_sql,
                           pa.schema([pa.field(f"c{i}", pa.string())
                                      for i in range(len(columns_sql))]), path)  # fmt: skip
        try:
            _run(dbapi_connection, probe, 0)
        except Exception as exc:
            if not _refused(exc):
                raise
            log.warning(
                "the server refused LOAD DATA LOCAL INFILE into %s (%s); loading with "
                "multi-row INSERTs instead (slower; enable local_infile on the server)",
                table_sql, exc.args[-1],
            )
            return mysql_insert(dbapi_connection, table_sql, columns_sql, batches)
        total = pending = 0
        schema: pa.Schema | None = None
        with open(path, "r+b") as sink:
            for batch in batches:
                if not batch.num_rows:
                    continue
                schema = batch.schema
                sink.write(batch_text(batch))
                pending += batch.num_rows
                if sink.tell() >= CHUNK_BYTES:
                    total += _flush(dbapi_connection, sink, table_sql, columns_sql, schema,
                                    path, pending)
                    pending = 0
            if pending and schema is not None:
                total += _flush(dbapi_connection, sink, table_sql, columns_sql, schema, path,
                                pending)
    return total


def _flush(
    connection: Any, sink: Any, table_sql: str, columns_sql: Sequence[str], schema: pa.Schema,
    path: str, rows: int,
) -> int:  # fmt: skip
    sink.flush()
    _run(connection, _statement(connection, table_sql, columns_sql, schema, path), rows)
    sink.seek(0)
    sink.truncate()
    return rows
