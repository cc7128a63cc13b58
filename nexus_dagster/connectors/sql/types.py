"""Type mapping between database columns and Arrow, both ways, and row -> batch conversion.

Reading: PostgreSQL and MySQL/MariaDB columns are typed from the DBAPI ``cursor.description``
(type OIDs / field types with precision, scale, flags and charset), which serves tables and
arbitrary queries alike; other dialects (SQLite, ...) from SQLAlchemy types (reflection).
Writing: Arrow types become SQLAlchemy types for ``CREATE TABLE``, and batches are normalized
(UTC microsecond timestamps, nested values as JSON text) before a bulk loader sees them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_types

from nexus_dagster.errors import DataError

#: numeric columns without a declared precision (PostgreSQL ``numeric``, expressions)
UNCONSTRAINED_DECIMAL = pa.decimal128(38, 10)
UTC_TS = pa.timestamp("us", tz="UTC")
NAIVE_TS = pa.timestamp("us")


@dataclass(frozen=True)
class ColumnInfo:
    """A result column: its name, Arrow type and an optional per-value conversion."""

    name: str
    arrow: pa.DataType
    convert: Callable[[Any], Any] | None = None


def _decimal_type(precision: int | None, scale: int | None) -> pa.DataType:
    if not precision or precision > 76 or scale is None or scale > precision or scale < 0:
        return UNCONSTRAINED_DECIMAL
    return pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)


def to_json(value: Any) -> str:
    """A JSON/array value as JSON text (text values as they are)."""
    return value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)


def _timedelta_to_time(value: Any) -> dt.time | None:
    if isinstance(value, dt.timedelta):
        if not dt.timedelta(0) <= value < dt.timedelta(days=1):
            raise DataError(f"TIME value {value} is outside 00:00:00-23:59:59.999999")
        return (dt.datetime.min + value).time()
    return value


def _zero_date_to_none(value: Any) -> Any:
    # MySQL "zero dates" ('0000-00-00') arrive as strings; they mean "no date"
    return None if isinstance(value, str) else value


# --- PostgreSQL (psycopg2 type OIDs) -------------------------------------------------------
_PG_SIMPLE: dict[int, pa.DataType] = {
    16: pa.bool_(),
    20: pa.int64(),
    21: pa.int16(),
    23: pa.int32(),
    26: pa.int64(),
    700: pa.float32(),
    701: pa.float64(),
    1082: pa.date32(),
    1083: pa.time64("us"),
    1114: NAIVE_TS,
    1184: UTC_TS,
    1186: pa.duration("us"),
    18: pa.string(),
    19: pa.string(),
    25: pa.string(),
    1042: pa.string(),
    1043: pa.string(),
}


def pg_column(desc: Any) -> ColumnInfo:
    """The Arrow column for a psycopg2 ``cursor.description`` entry."""
    oid = desc.type_code
    if oid in _PG_SIMPLE:
        return ColumnInfo(desc.name, _PG_SIMPLE[oid])
    if oid == 1700:
        precision = desc.precision if desc.precision not in (None, 65535) else None
        return ColumnInfo(desc.name, _decimal_type(precision, desc.scale))
    if oid == 17:
        return ColumnInfo(desc.name, pa.binary(), bytes)
    if oid in (114, 3802):
        return ColumnInfo(desc.name, pa.string(), to_json)
    return ColumnInfo(desc.name, pa.string(), to_json if oid in _PG_ARRAYS else str)


#: common array type OIDs; arrays are carried as JSON text
_PG_ARRAYS = frozenset({1000, 1005, 1007, 1009, 1015, 1016, 1021, 1022, 1231, 1115, 1182, 1185,
                        199, 3807, 2951})  # fmt: skip


# --- MySQL / MariaDB (pymysql field types) --------------------------------------------------
_BINARY_CHARSET = 63
_UNSIGNED_FLAG = 32


def mysql_column(desc: Sequence[Any], field: Any) -> ColumnInfo:
    """The Arrow column for a pymysql ``cursor.description`` entry and its result field."""
    name, code, _, length, _, scale = desc[:6]
    unsigned = bool(field.flags & _UNSIGNED_FLAG) if field is not None else False
    binary = field is not None and field.charsetnr == _BINARY_CHARSET
    if code in (0, 246):
        precision = (length or 0) - (1 if scale else 0) - (0 if unsigned else 1)
        return ColumnInfo(name, _decimal_type(precision, scale))
    if code == 1:
        if length == 1:
            return ColumnInfo(name, pa.bool_(), bool)
        return ColumnInfo(name, pa.int16() if unsigned else pa.int8())
    simple = {
        2: pa.int32() if unsigned else pa.int16(),
        9: pa.int32(),
        3: pa.int64() if unsigned else pa.int32(),
        8: pa.uint64() if unsigned else pa.int64(),
        4: pa.float32(),
        5: pa.float64(),
        13: pa.int16(),
    }
    if code in simple:
        return ColumnInfo(name, simple[code])
    if code == 7:
        return ColumnInfo(name, UTC_TS, _zero_date_to_none)
    if code == 12:
        return ColumnInfo(name, NAIVE_TS, _zero_date_to_none)
    if code in (10, 14):
        return ColumnInfo(name, pa.date32(), _zero_date_to_none)
    if code == 11:
        return ColumnInfo(name, pa.time64("us"), _timedelta_to_time)
    if code == 16:
        return ColumnInfo(name, pa.int64(), lambda v: int.from_bytes(v, "big"))
    if code == 245:
        return ColumnInfo(name, pa.string(), to_json)
    if code in (15, 249, 250, 251, 252, 253, 254):
        return ColumnInfo(name, pa.binary(), bytes) if binary else ColumnInfo(name, pa.string())
    if code == 255:
        return ColumnInfo(name, pa.binary(), bytes)
    return ColumnInfo(name, pa.string(), str)


# --- SQLAlchemy types (SQLite and other dialects) -------------------------------------------
def sa_column(name: str, sa_type: sa.types.TypeEngine[Any]) -> ColumnInfo | None:
    """The Arrow column for a SQLAlchemy type, or None when the type is unknown (NullType)."""
    t = sa_type
    if isinstance(t, sa.types.NullType):
        return None
    if isinstance(t, sa.Boolean):
        return ColumnInfo(name, pa.bool_(), bool)
    if isinstance(t, sa.SmallInteger):
        return ColumnInfo(name, pa.int16())
    if isinstance(t, sa.Integer):
        return ColumnInfo(name, pa.int64())
    if isinstance(t, sa.Float):
        return ColumnInfo(name, pa.float64(), float)
    if isinstance(t, sa.Numeric):
        return ColumnInfo(name, _decimal_type(t.precision, t.scale), _as_decimal)
    if isinstance(t, sa.DateTime):
        return ColumnInfo(name, UTC_TS if t.timezone else NAIVE_TS)
    if isinstance(t, sa.Date):
        return ColumnInfo(name, pa.date32())
    if isinstance(t, sa.Time):
        return ColumnInfo(name, pa.time64("us"))
    if isinstance(t, sa.Interval):
        return ColumnInfo(name, pa.duration("us"))
    if isinstance(t, sa.LargeBinary | sa.types._Binary):
        return ColumnInfo(name, pa.binary(), bytes)
    if isinstance(t, sa.JSON):
        return ColumnInfo(name, pa.string(), to_json)
    if isinstance(t, sa.String):
        return ColumnInfo(name, pa.string(), str)
    return ColumnInfo(name, pa.string(), str)


def _as_decimal(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(repr(value))


def infer_column(name: str, value: Any) -> ColumnInfo:
    """The Arrow column for a sample Python value (untyped expressions in SQLite queries)."""
    if isinstance(value, bool):
        return ColumnInfo(name, pa.bool_())
    if isinstance(value, int):
        return ColumnInfo(name, pa.int64())
    if isinstance(value, float):
        return ColumnInfo(name, pa.float64())
    if isinstance(value, Decimal):
        return ColumnInfo(name, UNCONSTRAINED_DECIMAL)
    if isinstance(value, bytes | memoryview):
        return ColumnInfo(name, pa.binary(), bytes)
    return ColumnInfo(name, pa.string(), str)


def rows_to_batch(
    rows: Sequence[Sequence[Any]], columns: Sequence[ColumnInfo], schema: pa.Schema
) -> pa.RecordBatch:
    """Turn fetched rows into a record batch of ``schema``.

    Raises:
        DataError: naming the column when a value does not fit its type (e.g. a decimal with
            more digits than the unconstrained numeric fallback keeps).
    """
    values_by_column = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
    arrays = []
    for info, values in zip(columns, values_by_column, strict=True):
        if info.convert is not None:
            convert = info.convert
            values = [None if v is None else convert(v) for v in values]
        try:
            arrays.append(pa.array(values, type=info.arrow))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as exc:
            hint = ""
            if info.arrow == UNCONSTRAINED_DECIMAL:
                hint = " (cast it in the query, e.g. CAST(x AS NUMERIC(18, 4)))"
            raise DataError(
                f"column {info.name!r}: value does not fit {info.arrow}{hint}: {exc}"
            ) from exc
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


# --- writing ----------------------------------------------------------------------------------
def sa_type_for(arrow_type: pa.DataType, backend: str, key: bool = False) -> sa.types.TypeEngine:
    """The column type ``CREATE TABLE`` uses for an Arrow type on ``backend``.

    Args:
        arrow_type: the Arrow type of the data.
        backend: ``postgresql``, ``mysql``, ``sqlite`` or another dialect name.
        key: the column is part of the primary key (MySQL cannot index TEXT/BLOB whole).
    """
    t = arrow_type
    mysql = backend in ("mysql", "mariadb")
    if mysql:  # MySQL's own types; the dialect is loaded only for MySQL/MariaDB
        from sqlalchemy.dialects import mysql as mysql_types
    if pa.types.is_dictionary(t):
        return sa_type_for(t.value_type, backend, key)
    if pa.types.is_boolean(t):
        return sa.Boolean()
    if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_uint8(t):
        return sa.SmallInteger()
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return sa.Integer()
    if pa.types.is_int64(t) or pa.types.is_uint32(t):
        return sa.BigInteger()
    if pa.types.is_uint64(t):
        return sa.Numeric(20, 0)
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return sa.REAL()
    if pa.types.is_floating(t):
        return sa.Double()
    if pa.types.is_decimal(t):
        return sa.Numeric(t.precision, t.scale)
    if pa.types.is_timestamp(t):
        if mysql:
            return mysql_types.DATETIME(fsp=6)
        return sa.DateTime(timezone=t.tz is not None)
    if pa.types.is_date(t):
        return sa.Date()
    if pa.types.is_time(t):
        return mysql_types.TIME(fsp=6) if mysql else sa.Time()
    if pa.types.is_duration(t) and backend == "postgresql":
        return pg_types.INTERVAL()
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        if mysql:
            return mysql_types.VARBINARY(255) if key else mysql_types.LONGBLOB()
        return sa.LargeBinary()
    if mysql:
        return sa.String(255) if key else mysql_types.LONGTEXT()
    if key and backend not in ("postgresql", "sqlite"):
        return sa.String(255)
    return sa.Text()


def normalize_for_write(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Make a batch loadable everywhere: UTC microsecond timestamps, JSON text for nested data."""
    arrays, fields, changed = [], [], False
    for f, col in zip(batch.schema, batch.columns, strict=True):
        t, new = f.type, col
        if pa.types.is_dictionary(t):
            new = col.dictionary_decode()
            t = new.type
        if pa.types.is_timestamp(t):
            target = pa.timestamp("us", tz="UTC" if t.tz else None)
            if t != target:
                new = pc.cast(new, target, safe=False)
        elif pa.types.is_time(t) and t != pa.time64("us"):
            new = pc.cast(new, pa.time64("us"), safe=False)
        elif pa.types.is_float16(t):
            new = pc.cast(new, pa.float32())
        elif pa.types.is_large_string(t) or pa.types.is_string_view(t):
            new = pc.cast(new, pa.string())
        elif pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
            new = pc.cast(new, pa.binary())
        elif pa.types.is_nested(t) or pa.types.is_null(t) or pa.types.is_duration(t):
            new = pa.array(
                [None if v is None else to_json(v) for v in col.to_pylist()], type=pa.string()
            )
        if new is not col:
            changed = True
        arrays.append(new)
        fields.append(pa.field(f.name, new.type))
    if not changed:
        return batch
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


def is_naive_timestamp(arrow_type: pa.DataType) -> bool:
    """True for a timestamp type without a time zone."""
    return pa.types.is_timestamp(arrow_type) and arrow_type.tz is None


def assume_timezone(batch: pa.RecordBatch, zone: str) -> pa.RecordBatch:
    """Read the batch's naive timestamps as wall time in ``zone`` (e.g. UTC from MySQL)."""
    arrays = [
        pc.assume_timezone(col, zone) if is_naive_timestamp(col.type) else col
        for col in batch.columns
    ]
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def sa_type_for_read(info: ColumnInfo) -> sa.types.TypeEngine[Any] | None:
    """SQLAlchemy type whose result processing yields what the Arrow type expects."""
    t = info.arrow
    if pa.types.is_timestamp(t):
        return sa.DateTime(timezone=t.tz is not None)
    if pa.types.is_decimal(t):
        return sa.Numeric(t.precision, t.scale, asdecimal=True)
    if pa.types.is_date(t):
        return sa.Date()
    if pa.types.is_time(t):
        return sa.Time()
    if pa.types.is_boolean(t):
        return sa.Boolean()
    return None


def coerce_cursor_value(value: Any, arrow_type: pa.DataType) -> Any:
    """A cursor value (often a string from the spec) as the Python type of its column."""
    if value is None:
        return None
    if pa.types.is_timestamp(arrow_type):
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value.strip())
        elif isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            value = dt.datetime.combine(value, dt.time())
        if isinstance(value, dt.datetime):
            if arrow_type.tz and value.tzinfo is None:
                value = value.replace(tzinfo=dt.UTC)
            elif not arrow_type.tz and value.tzinfo is not None:
                value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value
    if pa.types.is_date(arrow_type) and isinstance(value, str):
        # a partition window bound is a timestamp ("2024-03-01T00:00:00+01:00"): its own
        # calendar date, not the UTC one
        text = value.strip()
        return (dt.datetime.fromisoformat(text).date() if "T" in text or " " in text
                else dt.date.fromisoformat(text))
    if pa.types.is_date(arrow_type) and isinstance(value, dt.datetime):
        return value.date()
    if pa.types.is_integer(arrow_type) and isinstance(value, str | float | Decimal):
        return int(value)
    if pa.types.is_decimal(arrow_type) and not isinstance(value, Decimal):
        return Decimal(str(value))
    if pa.types.is_floating(arrow_type) and isinstance(value, str | Decimal):
        return float(value)
    return value
