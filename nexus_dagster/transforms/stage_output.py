"""What a stage hands on: its Arrow types given back the inputs' flavours, and one-shot results.

DuckDB returns every string as ``string`` and every TIMESTAMPTZ in its session zone; pandas
turns integers with nulls into floats and dates into timestamps. The values are the same, so
the output takes the input's type of a same-name column back where only the label changed.

Example:
    >>> import pyarrow as pa
    >>> refs = {"name": pa.large_string()}
    >>> restore_schema(pa.schema([("name", pa.string())]), refs).field("name").type
    DataType(large_string)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

import pyarrow as pa

from nexus_dagster.errors import TransformError
from nexus_dagster.relation import Relation

__all__ = ["read_once", "reference_types", "restorable", "restore_schema"]


def _stringish(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def reference_types(relations: Iterable[Relation]) -> dict[str, pa.DataType]:
    """Column name -> its type in the first of ``relations`` that has it."""
    refs: dict[str, pa.DataType] = {}
    for relation in relations:
        for f in relation.schema:
            refs.setdefault(f.name, f.type)
    return refs


def restore_schema(schema: pa.Schema, refs: Mapping[str, pa.DataType]) -> pa.Schema:
    """Give SQL results back the input's string flavour and time zone of same-name columns.

    DuckDB returns every string as ``string`` and every TIMESTAMPTZ in its session zone;
    the instant is the same, so only the label changes.
    """
    fields = []
    for f in schema:
        ref = refs.get(f.name)
        if ref is not None and ref != f.type:
            if _stringish(f.type) and _stringish(ref):
                f = f.with_type(ref)
            elif (
                pa.types.is_timestamp(f.type)
                and pa.types.is_timestamp(ref)
                and f.type.tz is not None
                and ref.tz is not None
            ):
                f = f.with_type(pa.timestamp(f.type.unit, ref.tz))
        fields.append(f)
    return pa.schema(fields)


def restorable(out: pa.DataType, ref: pa.DataType) -> bool:
    """Whether a pandas round trip may have changed ``ref`` into ``out`` (and back is ok)."""
    if out == ref:
        return False
    if pa.types.is_null(out):
        return True
    if _stringish(out):
        return _stringish(ref) or (pa.types.is_dictionary(ref) and _stringish(ref.value_type))
    if pa.types.is_integer(ref):  # int with missing values comes back as float
        return pa.types.is_integer(out) or pa.types.is_floating(out)
    if pa.types.is_floating(ref):
        return pa.types.is_floating(out)
    if pa.types.is_decimal(ref):
        return pa.types.is_decimal(out)
    if pa.types.is_timestamp(ref):
        return pa.types.is_timestamp(out) and (out.tz is None) == (ref.tz is None)
    if pa.types.is_date(ref):
        return pa.types.is_date(out) or (pa.types.is_timestamp(out) and out.tz is None)
    return False


def read_once(schema: pa.Schema, gen: Iterator[pa.RecordBatch], name: str) -> Relation:
    """A relation over a started generator: it can be read once."""
    state = {"used": False}

    def open_() -> Iterator[pa.RecordBatch]:
        if state["used"]:
            raise TransformError(f"{name}: this result can be read once only")
        state["used"] = True
        return gen

    return Relation(schema, open_, name)
