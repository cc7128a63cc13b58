"""MySQL/MariaDB reads into Arrow without decoding values in Python.

The server formats each row as one CSV line (``CONCAT_WS``): text quoted with doubled quotes
(so an empty string is ``""`` and NULL is an empty field), numbers, decimals and dates as the
same text the row protocol carries, booleans (``TINYINT(1)``) as ``c <> 0``, zero dates as NULL.
The row packets of that one-field result are cut out of the socket stream in bulk
(:func:`_lines`; pymysql's per-row decoding costs ~4 us a row), and ``pyarrow.csv`` parses each
block of ``batch_size`` lines into the column types known from the result description: exact
``decimal128(p, s)``, timestamps, dates, integers, text. Only columns whose text maps exactly
are read this way (see :func:`readable`); other results keep the row-by-row reader.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import sqlalchemy as sa

from nexus_dagster.connectors.sql.session import compile_statement
from nexus_dagster.connectors.sql.types import ColumnInfo, to_json
from nexus_dagster.errors import DataError

_DATE_CONVERTS = frozenset({None, "_zero_date_to_none"})


def _kind(info: ColumnInfo) -> str | None:
    """How the column is formatted server-side, or None when it cannot be read this way."""
    t, convert = info.arrow, info.convert
    name = getattr(convert, "__name__", None)
    if pa.types.is_boolean(t):
        return "bool" if convert is bool else None
    if pa.types.is_timestamp(t) or pa.types.is_date32(t):
        if name not in _DATE_CONVERTS or (pa.types.is_timestamp(t) and t.unit != "us"):
            return None
        return "date"
    if pa.types.is_string(t):
        return "text" if convert is None or convert is to_json else None
    if convert is not None:
        return None
    if pa.types.is_decimal(t) or pa.types.is_integer(t) or pa.types.is_floating(t):
        return "plain"
    return None


def readable(columns: Sequence[ColumnInfo]) -> bool:
    """True when every column's server text parses into exactly what the row reader makes."""
    return bool(columns) and all(_kind(c) is not None for c in columns)


def _expression(info: ColumnInfo, quoted: str) -> str:
    kind = _kind(info)
    if kind == "text":
        return (f"IF({quoted} IS NULL, '', CONCAT('\"', "
                f"REPLACE(CONVERT({quoted} USING utf8mb4), '\"', '\"\"'), '\"'))")
    if kind == "bool":
        return f"IF({quoted} IS NULL, '', {quoted} <> 0)"
    if kind == "date":  # zero and partial-zero dates read as NULL, as the row reader does
        return (f"IF({quoted} IS NULL OR YEAR({quoted}) = 0 OR MONTH({quoted}) = 0 "
                f"OR DAYOFMONTH({quoted}) = 0, '', {quoted})")
    return f"IFNULL({quoted}, '')"


def line_query(statement: sa.Select[Any], columns: Sequence[ColumnInfo], dialect: sa.Dialect
               ) -> tuple[str, Any]:  # fmt: skip
    """The SQL (and parameters) returning one CSV line (bytes) per row of ``statement``."""
    sql, params = compile_statement(statement, dialect)
    quote = dialect.identifier_preparer.quote
    fields = ", ".join(_expression(c, f"nexus_rows.{quote(c.name)}") for c in columns)
    return (f"SELECT CAST(CONCAT_WS(',', {fields}) AS BINARY) FROM ({sql}) AS nexus_rows",
            params)


def _parse_types(schema: pa.Schema) -> dict[str, pa.DataType]:
    # CSV cannot parse zone-less text into a zoned timestamp: parse naive, then mark UTC
    return {
        f.name: pa.timestamp(f.type.unit) if pa.types.is_timestamp(f.type) else f.type
        for f in schema
    }


def _block(lines: list[bytes], schema: pa.Schema) -> pa.RecordBatch:
    data = b"\n".join(lines) + b"\n"  # every line ends: a last empty line (NULL) counts
    try:
        table = _parse(data, schema)
    except pa.ArrowInvalid as exc:
        raise DataError(
            f"a value does not fit its column type ({exc}); cast it in the query, e.g. "
            "CAST(x AS DECIMAL(18, 4)), or read with NEXUS_FAST_READ=0"
        ) from exc
    arrays = [
        pc.cast(col, f.type) if col.type != f.type else col
        for col, f in zip(table.columns, schema, strict=True)
    ]
    return pa.Table.from_arrays(arrays, schema=schema).combine_chunks().to_batches()[0]


def _parse(data: bytes, schema: pa.Schema) -> pa.Table:
    return pacsv.read_csv(
        pa.BufferReader(data),
        # 1 MB blocks: one block of the whole batch parses ~3x slower
        read_options=pacsv.ReadOptions(column_names=schema.names, block_size=1 << 20,
                                       use_threads=False),
        parse_options=pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(
            column_types=_parse_types(schema),
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            true_values=["1"],
            false_values=["0"],
        ),
    )


def read_batches(
    engine: sa.Engine, statement: sa.Select[Any], columns: Sequence[ColumnInfo],
    schema: pa.Schema, batch_size: int,
) -> Iterator[pa.RecordBatch]:  # fmt: skip
    """Stream a statement's rows as Arrow batches of ``schema`` (``batch_size`` rows each)."""
    import pymysql.cursors

    connection = engine.connect()
    finished = False
    try:
        sql, params = line_query(statement, columns, connection.dialect)
        dbapi = connection.connection.dbapi_connection
        cursor = dbapi.cursor(pymysql.cursors.SSCursor)  # type: ignore[union-attr]
        cursor.execute(sql, params)
        for lines in _lines(cursor, batch_size):
            yield _block(lines, schema)
        cursor.close()
        finished = True
    finally:
        if not finished:
            # an unfinished stream would be drained row by row on close: drop the connection
            connection.invalidate()
        connection.close()


_MAX_PACKET = 0xFFFFFF


def _lines(cursor: Any, batch_size: int) -> Iterator[list[bytes]]:
    """The rows of a one-column unbuffered pymysql result, ``batch_size`` at a time.

    Reads the text-protocol row packets straight from the connection's socket buffer (header:
    3-byte length and a sequence id; payload: a length-encoded string) and hands the result
    back to pymysql as finished at the EOF packet. Rows of 16 MB or more (split packets) and
    results pymysql already started reading fall back to ``fetchmany``.
    """
    result = getattr(cursor, "_result", None)
    conn = getattr(result, "connection", None)
    rfile = getattr(conn, "_rfile", None)
    if conn is None or rfile is None or not getattr(result, "unbuffered_active", False):
        while rows := cursor.fetchmany(batch_size):
            yield [row[0] for row in rows]
        return
    buf, pos, packets, lines = b"", 0, 0, []
    while True:
        end = len(buf)
        while pos + 4 <= end:
            size = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
            stop = pos + 4 + size
            if stop > end:
                break
            first = buf[pos + 4]
            if first < 0xFB:
                lines.append(buf[pos + 5 : stop])
            elif first == 0xFE and size < 9:  # EOF: the result is complete
                conn._next_seq_id = (conn._next_seq_id + packets + 1) % 256
                result.unbuffered_active = False
                result.connection = None
                result.rows = None
                if lines:
                    yield lines
                return
            elif first == 0xFF:
                conn._force_close()
                from pymysql import err

                err.raise_mysql_exception(buf[pos + 4 : stop])
            elif size == _MAX_PACKET:
                conn._force_close()
                raise ValueError("a row of 16 MB or more: read it with NEXUS_FAST_READ=0")
            else:  # 0xFC / 0xFD / 0xFE: 2-, 3- or 8-byte length prefix
                lines.append(buf[pos + 5 + {0xFC: 2, 0xFD: 3, 0xFE: 8}[first] : stop])
            packets += 1
            pos = stop
            if len(lines) >= batch_size:
                yield lines
                lines = []
        chunk = rfile.read1(1 << 20)
        if not chunk:
            conn._force_close()
            from pymysql import err

            raise err.OperationalError(2013, "Lost connection to MySQL server during query")
        buf = buf[pos:] + chunk
        pos = 0
