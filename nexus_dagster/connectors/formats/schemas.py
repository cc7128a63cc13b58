"""Schemas of what is read and written: inferred types made robust, several files' schemas unified,
``column_types`` applied, and the check that a text format can hold a schema."""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa

from nexus_dagster.errors import DataError, LoadError


def normalize_inferred(schema: pa.Schema, explicit: Mapping[str, pa.DataType]) -> pa.Schema:
    """Make inferred types robust for the blocks not yet seen (``explicit`` types are kept).

    An all-empty column (inferred ``null``) becomes string; second/millisecond timestamps become
    microseconds so that later values with fractions still parse.
    """
    fields = []
    for f in schema:
        t = f.type
        if f.name not in explicit:
            if pa.types.is_null(t):
                t = pa.string()
            elif pa.types.is_timestamp(t) and t.unit in ("s", "ms"):
                t = pa.timestamp("us", tz=t.tz)
        fields.append(pa.field(f.name, t))
    return pa.schema(fields)


def unify_schemas(schemas: list[tuple[str, pa.Schema]]) -> pa.Schema:
    """One schema for several files/sheets, columns matched by name, types promoted.

    int64 + float64 -> float64, timestamp units -> the finest, date + timestamp -> timestamp,
    null + anything -> anything.

    Raises:
        DataError: a column has incompatible types; the message names it, the sources and
            suggests ``column_types``.
    """
    if not schemas:
        return pa.schema([])
    fields: dict[str, pa.DataType] = {}
    origin: dict[str, str] = {}
    for where, schema in schemas:
        for f in schema:
            if f.name not in fields:
                fields[f.name], origin[f.name] = f.type, where
                continue
            old = fields[f.name]
            if old == f.type:
                continue
            fields[f.name] = _promote(f.name, old, f.type, origin[f.name], where)
    return pa.schema([pa.field(n, t) for n, t in fields.items()])


def _promote(name: str, a: pa.DataType, b: pa.DataType, where_a: str, where_b: str) -> pa.DataType:
    for x, y in ((a, b), (b, a)):
        if pa.types.is_date(x) and pa.types.is_timestamp(y):
            return y
    try:
        merged = pa.unify_schemas(
            [pa.schema([(name, a)]), pa.schema([(name, b)])], promote_options="permissive"
        )
        return merged.field(name).type
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        raise DataError(
            f"column {name!r} is {a} in {where_a} but {b} in {where_b}; set "
            f"options.column_types: {{{name}: <type>}} to read it with one type"
        ) from None


def apply_types(schema: pa.Schema, types: Mapping[str, pa.DataType]) -> pa.Schema:
    """``schema`` with the columns named in ``types`` retyped (``options.column_types``)."""
    return pa.schema([pa.field(f.name, types.get(f.name, f.type)) for f in schema])


def check_text_types(schema: pa.Schema, fmt: str) -> None:
    """Reject nested columns for text tabular formats before anything is written.

    Raises:
        LoadError: names the columns that the format cannot hold.
    """
    bad = [f"{f.name} ({f.type})" for f in schema if pa.types.is_nested(f.type)]
    if bad:
        raise LoadError(
            f"{fmt} cannot hold nested columns: {', '.join(bad)}; write jsonl or parquet instead"
        )
