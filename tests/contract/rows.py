"""The data every contract writes and the one way rows are compared.

``SAMPLE`` holds what connectors get wrong first: nulls in every non-key column, unicode
(accents, CJK, characters outside the Basic Multilingual Plane, an empty string, a delimiter,
quotes and a line break), decimals (negative, zero, twelve digits), floats and time-zone-aware
timestamps (Europe/Paris, on both sides of a DST change). ``CHANGED`` rewrites two of its keys
and adds one (overwrite, upsert); :func:`large` builds a relation of many rows.

Rows are compared as sorted lists of dicts (:func:`canonical`): timestamps as UTC instants,
truncated to the precision the system keeps; columns a system adds (``_id``, ``_key``) are
dropped; columns a system returns as text are read as the type that was written.
:func:`arrow_rows` compares many rows fast.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from nexus_dagster.relation import Relation

UTC = dt.UTC
D = decimal.Decimal

SCHEMA = pa.schema([
    ("id", pa.int64()),
    ("name", pa.string()),
    ("amount", pa.decimal128(12, 2)),
    ("score", pa.float64()),
    ("flag", pa.bool_()),
    ("ts", pa.timestamp("us", tz="Europe/Paris")),
])

#: ``options.column_types`` that give typed reads of untyped formats (CSV, JSON, messages)
TYPES = {"amount": "decimal128(12, 2)", "ts": "timestamp[us, tz=UTC]"}
#: for systems where every value is text (Redis hashes)
ALL_TYPES = {**TYPES, "id": "int64", "score": "float64", "flag": "bool"}


def _table(rows: Sequence[tuple[Any, ...]]) -> pa.Table:
    columns = list(zip(*rows, strict=True))
    return pa.table(
        [pa.array(values, field.type) for values, field in zip(columns, SCHEMA, strict=True)],
        schema=SCHEMA,
    )


SAMPLE = _table([
    (1, "Zoë", D("1.10"), 0.5, True, dt.datetime(2024, 1, 1, 10, 0, tzinfo=UTC)),
    (2, "東京 \U00020bb7野家 \U0001d11e 😀", None, None, False, None),  # non-BMP: 𠮷 𝄞
    (3, None, D("-12345.67"), 1.25, None, dt.datetime(2024, 6, 30, 23, 59, 59, 123456, tzinfo=UTC)),
    (4, "", D("0.00"), -3.0, True, dt.datetime(1999, 12, 31, 0, 0, tzinfo=UTC)),
    (5, 'comma, "quote"\nline', D("9999999999.99"), 0.001, False,
     dt.datetime(2024, 3, 31, 0, 59, 59, 999000, tzinfo=UTC)),
    (6, "🦄", D("0.01"), None, True, dt.datetime(2024, 3, 31, 1, 0, 0, 1000, tzinfo=UTC)),
])

#: keys 3 and 4 rewritten (a null becomes a value and back), key 7 new
CHANGED = _table([
    (3, "changed ✓", D("3.30"), None, True, dt.datetime(2025, 2, 3, 4, 5, 6, tzinfo=UTC)),
    (4, None, None, 4.5, False, None),
    (7, "new 🆕", D("-0.07"), 7.0, None, dt.datetime(2025, 7, 7, 7, 7, 7, 7000, tzinfo=UTC)),
])


def relation(table: pa.Table, batch_size: int = 4) -> Relation:
    """A re-iterable relation over ``table`` in small batches (several per write)."""
    return Relation.from_table(table, batch_size=batch_size)


def upserted(base: pa.Table, changes: pa.Table) -> pa.Table:
    """``base`` with the rows of ``changes`` replacing those of the same ``id``, new ones added."""
    changed = set(changes["id"].to_pylist())
    kept = base.filter(pc.invert(pc.is_in(base["id"], pa.array(sorted(changed), pa.int64()))))
    return pa.concat_tables([kept, changes])


def large(rows: int) -> pa.Table:
    """``rows`` distinct rows of the sample's schema (built column-wise: fast)."""
    ids = pa.array(range(rows), pa.int64())
    start = dt.datetime(2020, 1, 1, tzinfo=UTC)
    seconds = pc.multiply(ids, pa.scalar(37, pa.int64()))
    micros = pc.add(pc.multiply(seconds, pa.scalar(1_000_000, pa.int64())),
                    pa.scalar(int(start.timestamp()) * 1_000_000, pa.int64()))
    return pa.table(
        [
            ids,
            pc.binary_join_element_wise("row ", pc.cast(ids, pa.string()), " ✓", ""),
            pc.cast(pc.cast(ids, pa.decimal128(19, 0)), pa.decimal128(12, 2)),
            pc.divide(pc.cast(ids, pa.float64()), pa.scalar(4.0)),
            pc.equal(pc.bit_wise_and(ids, pa.scalar(1, pa.int64())), pa.scalar(0, pa.int64())),
            pc.cast(micros, pa.int64()).cast(pa.timestamp("us", tz="Europe/Paris")),
        ],
        schema=SCHEMA,
    )


def _instant(value: Any, unit: str) -> dt.datetime:
    value = value.to_pydatetime() if hasattr(value, "to_pydatetime") else value
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    if unit == "ms":
        value = value.replace(microsecond=value.microsecond // 1000 * 1000)
    return value


def _as_written(value: Any, type_: pa.DataType) -> Any:
    """A value that came back as text (or a looser type) as the type it was written with."""
    if value is None:
        return None
    if pa.types.is_boolean(type_):
        return value if isinstance(value, bool) else str(value).lower() == "true"
    if pa.types.is_integer(type_):
        return int(value)
    if pa.types.is_floating(type_):
        return float(value)
    if pa.types.is_decimal(type_):
        return decimal.Decimal(str(value))
    if pa.types.is_timestamp(type_) and isinstance(value, str):
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value


def canonical(
    table: pa.Table,
    drop: Iterable[str] = (),
    ts_unit: str = "us",
    as_text: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """Rows as dicts sorted by ``id``: columns in ``drop`` removed, the columns in ``as_text``
    (``"*"``: every column) read as the type :data:`SCHEMA` gives them, timestamps as UTC
    instants at ``ts_unit`` precision (``us`` or ``ms``)."""
    gone, text = set(drop), set(as_text)
    types = {f.name: f.type for f in SCHEMA}
    out = []
    for row in table.to_pylist():
        item = {}
        for name, value in row.items():
            if name in gone:
                continue
            if ("*" in text or name in text) and name in types:
                value = _as_written(value, types[name])
            if isinstance(value, dt.datetime):
                value = _instant(value, ts_unit)
            item[name] = value
        out.append(item)
    return sorted(out, key=lambda r: (r.get("id") is None, r.get("id"), repr(sorted(r.items()))))


def arrow_rows(table: pa.Table, like: pa.Schema = SCHEMA) -> pa.Table:
    """``table`` with the columns and types of ``like`` (timestamps as UTC), sorted by ``id``:
    two of them are equal when the rows are (fast, for many rows)."""
    fields = [
        pa.field(f.name, pa.timestamp("us", tz="UTC") if pa.types.is_timestamp(f.type) else f.type)
        for f in like
    ]
    columns = [table[f.name].cast(f.type) for f in fields]
    return pa.table(columns, schema=pa.schema(fields)).sort_by("id")
