"""Python values to Arrow and Arrow rows to JSON: the conversions shared by the readers that
build batches from Python objects (Excel, stream and key-value records) and the JSON writers."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import secrets
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from nexus_dagster.errors import DataError


def infer_python_type(values: list[Any]) -> pa.DataType:
    """The Arrow type for a column of Python values (``None`` ignored; string when mixed).

    bool, int, float (int + float), datetime/date (a datetime makes it a timestamp), time,
    timedelta; Decimal (alone or with int) reads as float64, anything else as string.
    """
    kinds = {type(v) for v in values if v is not None}
    if not kinds:
        return pa.string()
    if kinds <= {bool}:
        return pa.bool_()
    if kinds <= {int}:
        return pa.int64()
    if kinds <= {int, float}:
        return pa.float64()
    if kinds <= {dt.datetime, dt.date}:
        return pa.timestamp("us") if dt.datetime in kinds else pa.date32()
    if kinds <= {dt.time}:
        return pa.time64("us")
    if kinds <= {dt.timedelta}:
        return pa.duration("us")
    if kinds <= {decimal.Decimal, int}:
        return pa.float64()
    return pa.string()


def _as_text(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def python_array(values: list[Any], t: pa.DataType, column: str, where: str) -> pa.Array:
    """Python values as an Arrow array of type ``t``.

    Non-text values in a string column become text, dates in a timestamp column midnight,
    datetimes in a date column their date; what Arrow does not take directly is parsed from
    its text (``"12"`` in a number column).

    Args:
        values: the column's values.
        t: the column's type.
        column: the column's name, for the error.
        where: who reads (``"orders.xlsx[Sheet1]"``), for the error.

    Raises:
        DataError: a value does not fit ``t``; names the column and the ``column_types`` fix.
    """
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        values = [v if v is None or isinstance(v, str) else _as_text(v) for v in values]
    elif pa.types.is_timestamp(t):
        values = [
            dt.datetime(v.year, v.month, v.day)
            if isinstance(v, dt.date) and not isinstance(v, dt.datetime)
            else v
            for v in values
        ]
    elif pa.types.is_date(t):
        values = [v.date() if isinstance(v, dt.datetime) else v for v in values]
    try:
        return pa.array(values, type=t)
    except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
        try:  # e.g. text "12" in a number column: let Arrow's cast parse it
            return pa.array([None if v is None else _as_text(v) for v in values]).cast(t)
        except (pa.ArrowException, TypeError, ValueError):
            pass
        raise DataError(
            f"{where}: column {column!r} has a value that is not {t} ({exc}); set "
            f"options.column_types: {{{column}: string}} (or another type) to read it"
        ) from exc


class _DecimalMarks:
    """Decimals as exact JSON numbers: each is dumped as a string ``"<nonce>digits<nonce>"``
    (the nonce random per writer, so user text cannot hold it) and :meth:`unquote` turns
    those strings into the bare number literals afterwards."""

    def __init__(self) -> None:
        self.nonce = secrets.token_hex(16)
        self.used = False

    def wrap(self, text: str) -> str:
        """``text`` (a decimal's plain digits) as the marked string."""
        self.used = True
        return f"{self.nonce}{text}{self.nonce}"

    def column(self, array: pa.Array) -> pa.Array:
        """A decimal column as marked strings (nulls stay null), in plain notation."""
        text = pc.cast(array, pa.string())
        if pc.any(pc.match_substring(text, "E")).as_py():  # Arrow's scientific notation
            text = pa.array([None if d is None else _plain(d) for d in array.to_pylist()])
        self.used = True
        return pc.binary_join_element_wise(self.nonce, text, self.nonce, "")

    def default(self, value: Any) -> Any:
        """``json.dumps`` default: decimals marked (NaN and infinities as null)."""
        if isinstance(value, decimal.Decimal):
            return self.wrap(_plain(value)) if value.is_finite() else None
        return _json_default(value)

    def unquote(self, line: str) -> str:
        """``line`` with the marked strings as bare numbers."""
        if not self.used:
            return line
        return line.replace(f'"{self.nonce}', "").replace(f'{self.nonce}"', "")


def _plain(value: decimal.Decimal) -> str:
    """A finite decimal's digits without exponent (``Decimal("1E-10")`` -> ``0.0000000001``)."""
    return format(value, "f")


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if hasattr(value, "isoformat"):  # pandas Timestamp for nanosecond values
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _json_safe(batch: pa.RecordBatch) -> pa.RecordBatch:
    """NaN and infinities are not JSON: write them as null."""
    columns = list(batch.columns)
    changed = False
    for i, column in enumerate(columns):
        if pa.types.is_floating(column.type) and column.null_count < len(column):
            finite = pc.is_finite(column)
            if not pc.all(pc.fill_null(finite, True)).as_py():
                columns[i] = pc.if_else(finite, column, pa.scalar(None, column.type))
                changed = True
    return pa.RecordBatch.from_arrays(columns, schema=batch.schema) if changed else batch


def json_text(value: Any, *, separators: tuple[str, str] | None = None) -> str:
    """``value`` (a Python value, e.g. a JSON row parsed with ``parse_float=Decimal``) as JSON
    text the way :func:`json_rows` writes values: decimals as exact number literals (a NaN
    decimal as null), dates ISO.

    Args:
        value: what to write.
        separators: ``json.dumps``'s, e.g. ``(",", ":")`` for compact text.

    Example:
        >>> json_text({"amount": decimal.Decimal("900.10"), "tags": ["a"]})
        '{"amount": 900.10, "tags": ["a"]}'
    """
    marks = _DecimalMarks()
    text = json.dumps(value, ensure_ascii=False, default=marks.default, separators=separators)
    return marks.unquote(text)


def json_rows(
    batches: Iterable[pa.RecordBatch],
) -> Iterator[tuple[pa.RecordBatch, list[str]]]:
    """Each batch with its rows as JSON objects (dates ISO, NaN as null, decimals as exact
    number literals: ``900.10`` keeps its digits, ``json.loads(line, parse_float=Decimal)``
    gives the same ``Decimal`` back)."""
    marks = _DecimalMarks()
    # one encoder for all rows: json.dumps with options builds a new one per call
    encode = json.JSONEncoder(ensure_ascii=False, default=marks.default, allow_nan=False).encode
    for batch in batches:
        safe = _json_safe(batch)
        decimals = [i for i, f in enumerate(safe.schema) if pa.types.is_decimal(f.type)]
        if decimals:
            columns = list(safe.columns)
            for i in decimals:
                columns[i] = marks.column(columns[i])
            safe = pa.RecordBatch.from_arrays(columns, names=safe.schema.names)
        rows = safe.to_pylist()
        del safe
        lines = [encode(r) for r in rows]
        del rows
        if marks.used:
            lines = [marks.unquote(line) for line in lines]
        yield batch, lines
