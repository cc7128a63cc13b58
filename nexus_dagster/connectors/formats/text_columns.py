"""Columns of text (fixed-width fields, XML values) typed like CSV columns: the type inferred
from the values, or given by ``options.column_types``, and the values cast to it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from nexus_dagster.errors import DataError

#: the types tried in order on a text column; the first every value casts to wins
_LADDER = (pa.int64(), pa.float64(), pa.bool_(), pa.date32(), pa.timestamp("us"))


def with_nulls(values: pa.Array, null_values: Sequence[str]) -> pa.Array:
    """``values`` with every string of ``null_values`` (``options.null_values``) as null."""
    if not null_values or len(values) == 0:
        return values
    hit = pc.is_in(values, value_set=pa.array(list(null_values), pa.string()))
    return pc.if_else(pc.fill_null(hit, False), pa.scalar(None, pa.string()), values)


def infer_text_type(values: pa.Array) -> pa.DataType:
    """int64, float64, bool, date32 or timestamp[us] when every non-null value reads as one,
    else string."""
    present = values.drop_null()
    if len(present) == 0:
        return pa.string()
    for candidate in _LADDER:
        try:
            present.cast(candidate)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            continue
        return candidate
    return pa.string()


def merge_text_types(a: pa.DataType, b: pa.DataType) -> pa.DataType:
    """One type for a column inferred as ``a`` in some rows and ``b`` in others."""
    if a == b:
        return a
    kinds = {a, b}
    if kinds == {pa.int64(), pa.float64()}:
        return pa.float64()
    if kinds == {pa.date32(), pa.timestamp("us")}:
        return pa.timestamp("us")
    return pa.string()


def text_schema(
    columns: Mapping[str, pa.Array], explicit: Mapping[str, pa.DataType]
) -> pa.Schema:
    """The schema of text columns: ``explicit`` types (``column_types``), others inferred."""
    return pa.schema(
        [pa.field(n, explicit.get(n) or infer_text_type(v)) for n, v in columns.items()]
    )


def typed_batch(columns: Mapping[str, pa.Array], schema: pa.Schema, where: str) -> pa.RecordBatch:
    """Text columns cast to ``schema`` (a column missing from ``columns`` is all null).

    Raises:
        DataError: a value does not read as its column's type; names the column, the value
            and the ``column_types`` fix.
    """
    length = len(next(iter(columns.values()))) if columns else 0
    arrays = []
    for field in schema:
        values = columns.get(field.name)
        if values is None:
            arrays.append(pa.nulls(length, field.type))
            continue
        try:
            arrays.append(values.cast(field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise DataError(
                f"{where}: column {field.name!r} has a value that is not {field.type} ({exc}); "
                f"set options.column_types: {{{field.name}: string}} (or another type) to "
                "read it"
            ) from None
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
