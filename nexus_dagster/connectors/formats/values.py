"""Python values to Arrow and Arrow rows to JSON: the conversions shared by the readers that
build batches from Python objects (Excel, stream and key-value records) and the JSON writers."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
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


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
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


def json_rows(
    batches: Iterable[pa.RecordBatch],
) -> Iterator[tuple[pa.RecordBatch, list[str]]]:
    """Each batch with its rows as JSON objects (dates ISO, decimals as text, NaN as null)."""
    for batch in batches:
        rows = _json_safe(batch).to_pylist()
        yield (
            batch,
            [
                json.dumps(r, ensure_ascii=False, default=_json_default, allow_nan=False)
                for r in rows
            ],
        )
