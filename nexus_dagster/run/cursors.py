"""Incremental cursors: how they are stored (JSON-safe), where a read starts, where the next one
starts, and a row counter that tracks the cursor column's maximum while rows flow.

A cursor advances only after every target committed (the plans emit
:class:`~nexus_dagster.run.events.SourceExtracted` last), so it never runs ahead of the data.

Example:
    >>> stored = encode_cursor("updated_at", 41)
    >>> stored
    {'column': 'updated_at', 'type': 'int', 'value': '41'}
    >>> decode_cursor(stored)
    41
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterator, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from nexus_dagster.connectors.base import Cursor
from nexus_dagster.errors import DataError
from nexus_dagster.relation import Relation
from nexus_dagster.spec.models import DataSource

__all__ = [
    "RowCounter",
    "cursor_scalar",
    "decode_cursor",
    "encode_cursor",
    "filter_cursor",
    "next_cursor",
    "start_cursor",
    "window_cursor",
]


def encode_cursor(column: str, value: Any) -> dict[str, Any]:
    """A JSON-safe cursor: the column, the value as text and its type."""
    if isinstance(value, dt.datetime):
        kind, text = "datetime", value.isoformat()
    elif isinstance(value, dt.date):
        kind, text = "date", value.isoformat()
    elif isinstance(value, decimal.Decimal):
        kind, text = "decimal", str(value)
    elif isinstance(value, bool):
        kind, text = "bool", str(value)
    elif isinstance(value, int):
        kind, text = "int", str(value)
    elif isinstance(value, float):
        kind, text = "float", repr(value)
    else:
        kind, text = "str", str(value)
    return {"column": column, "type": kind, "value": text}


def decode_cursor(data: Mapping[str, Any]) -> Any:
    """The Python value of a cursor made by :func:`encode_cursor`."""
    kind, text = data["type"], data["value"]
    if kind == "datetime":
        return dt.datetime.fromisoformat(text)
    if kind == "date":
        return dt.date.fromisoformat(text)
    if kind == "decimal":
        return decimal.Decimal(text)
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    if kind == "bool":
        return text == "True"
    return text


def start_cursor(source: DataSource, stored: Mapping[str, Any] | None) -> Cursor | None:
    """Where an incremental read starts: the stored cursor, else the spec's start value."""
    if not source.incremental_column:
        return None
    if stored and stored.get("column") == source.incremental_column:
        return Cursor(source.incremental_column, decode_cursor(stored), inclusive=False)
    if source.incremental_value is not None:
        return Cursor(source.incremental_column, source.incremental_value, inclusive=True)
    return None


def window_cursor(column: str | None, window: tuple[Any, Any] | None) -> Cursor | None:
    """The read of a partition window: ``start <= column < end`` (None without both)."""
    if window is None or not column:
        return None
    return Cursor(column, window[0], True, upper=window[1])


class RowCounter:
    """Counts the rows flowing through a relation and tracks the max of the cursor column.

    Example:
        >>> counter = RowCounter(relation, "updated_at")  # doctest: +SKIP
        >>> list(counter.wrapped()); counter.rows, counter.cursor_max  # doctest: +SKIP
    """

    def __init__(self, relation: Relation, cursor_column: str | None = None):
        self.relation = relation
        self.rows = 0
        self.cursor_column = cursor_column
        self.cursor_max: Any = None

    def see(self, rows: int, cursor_max: Any = None) -> None:
        """Count rows moved elsewhere (a pipe that never decodes them) and their max cursor."""
        self.rows += rows
        if cursor_max is not None and (self.cursor_max is None or cursor_max > self.cursor_max):
            self.cursor_max = cursor_max

    def wrapped(self) -> Relation:
        """The same relation, counted as it is read."""

        def open_() -> Iterator[pa.RecordBatch]:
            for batch in self.relation:
                value = None
                if self.cursor_column and batch.num_rows:
                    value = pc.max(batch.column(self.cursor_column)).as_py()
                self.see(batch.num_rows, value)
                yield batch

        return Relation(self.relation.schema, open_, self.relation.name, self.relation.stats)


def next_cursor(
    source: DataSource, counter: RowCounter, before: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The cursor after a committed run: the max seen, else the one before (same column)."""
    if not source.incremental_column:
        return None
    if counter.cursor_max is not None:
        return encode_cursor(source.incremental_column, counter.cursor_max)
    if before is not None and before.get("column") == source.incremental_column:
        return dict(before)
    return None


def cursor_scalar(value: Any, type_: pa.DataType) -> pa.Scalar:
    """The cursor value as an Arrow scalar of the column's type (ISO text accepted)."""
    if isinstance(value, str) and pa.types.is_timestamp(type_):
        parsed = dt.datetime.fromisoformat(value)
        if type_.tz and parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        elif not type_.tz and parsed.tzinfo is not None:
            parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
        return pa.scalar(parsed, type=type_)
    if isinstance(value, str) and pa.types.is_date(type_):
        return pa.scalar(dt.date.fromisoformat(value[:10]), type=type_)
    return pa.scalar(value).cast(type_)


def filter_cursor(relation: Relation, cursor: Cursor, name: str) -> Relation:
    """Keep rows past the cursor, for sources that cannot filter themselves (files, APIs)."""
    index = relation.schema.get_field_index(cursor.column)
    if index < 0:
        raise DataError(
            f"source {name}: incremental_column {cursor.column!r} is not in the data; "
            f"columns: {', '.join(relation.schema.names)}"
        )
    type_ = relation.schema.field(index).type
    try:
        bound = cursor_scalar(cursor.value, type_)
    except (ValueError, TypeError, pa.ArrowException) as exc:
        raise DataError(
            f"source {name}: cursor value {cursor.value!r} does not fit column "
            f"{cursor.column!r} of type {type_}: {exc}"
        ) from None
    compare = pc.greater_equal if cursor.inclusive else pc.greater
    upper = cursor_scalar(cursor.upper, type_) if cursor.upper is not None else None

    def open_() -> Iterator[pa.RecordBatch]:
        for batch in relation:
            mask = compare(batch.column(index), bound)
            if upper is not None:
                mask = pc.and_(mask, pc.less(batch.column(index), upper))
            kept = batch.filter(mask)
            if kept.num_rows:
                yield kept

    return Relation(relation.schema, open_, relation.name, relation.stats)
