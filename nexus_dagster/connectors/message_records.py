"""Schemaless records (decoded JSON messages, Redis hashes ...) to Arrow batches and back.

Stream and key-value sources hand out Python dicts whose fields are only known once data is
seen, while a :class:`~nexus_dagster.relation.Relation` needs its schema up front. The schema is
therefore fixed by the first batch of records (``options.column_types`` overrides or adds
types); a field that first appears later is an error naming the field and the fix, never a
silently dropped value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from nexus_dagster.connectors.formats.options import parse_type
from nexus_dagster.connectors.formats.values import infer_python_type, python_array
from nexus_dagster.errors import DataError, SpecError


def column_types(options: Mapping[str, Any]) -> dict[str, pa.DataType]:
    """``options.column_types`` parsed to Arrow types (empty when not given).

    Raises:
        SpecError: not a mapping, or a type name Arrow does not know.
    """
    raw = options.get("column_types") or {}
    if not isinstance(raw, Mapping):
        raise SpecError("options.column_types must map field names to type names")
    return {str(name): parse_type(type_) for name, type_ in raw.items()}


def flatten_value(value: Any) -> Any:
    """Nested objects and arrays become JSON text; scalars stay as they are."""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return value


class RecordSchema:
    """Builds Arrow batches from dicts with one schema, fixed by the first batch.

    Args:
        leading: fields that come first and always exist (``_key``, ``_offset`` ...).
        explicit: field name -> type from ``options.column_types``.
        where: who reads, for messages ("source events (kafka topic orders)").

    Example:
        >>> rs = RecordSchema([pa.field("_key", pa.string())], {}, "source s")
        >>> schema = rs.infer([{"_key": "a", "n": 1}])
        >>> rs.batch([{"_key": "b", "n": 2}]).num_rows
        1
    """

    def __init__(
        self, leading: Sequence[pa.Field], explicit: Mapping[str, pa.DataType], where: str
    ):
        self.leading = list(leading)
        self.explicit = dict(explicit)
        self.where = where
        self.schema: pa.Schema | None = None

    def infer(
        self,
        records: Sequence[Mapping[str, Any]],
        previous: Mapping[str, pa.DataType] | None = None,
    ) -> pa.Schema:
        """Fix the schema from the first records (field order: first seen); with no records,
        from ``previous`` (the columns of the last run, see :func:`columns_from_state`)."""
        if not records and previous:
            self.explicit = {**previous, **self.explicit}
        names: dict[str, None] = {f.name: None for f in self.leading}
        for record in records:
            names.update(dict.fromkeys(record))
        names.update(dict.fromkeys(self.explicit))
        known = {f.name: f.type for f in self.leading}
        fields = []
        for name in names:
            if name in self.explicit:
                type_ = self.explicit[name]
            elif name in known:
                type_ = known[name]
            else:
                type_ = infer_python_type([r.get(name) for r in records])
            fields.append(pa.field(name, type_))
        self.schema = pa.schema(fields)
        return self.schema

    def batch(self, records: Sequence[Mapping[str, Any]]) -> pa.RecordBatch:
        """One record batch with the fixed schema (inferring it on the first call).

        Raises:
            DataError: a record has a field the schema does not know, or a value that does
                not fit its column's type.
        """
        schema = self.schema or self.infer(records)
        names = set(schema.names)
        for record in records:
            extra = [name for name in record if name not in names]
            if extra:
                raise DataError(
                    f"{self.where}: field {extra[0]!r} first appears after the first batch, "
                    f"so it is not in the schema ({', '.join(schema.names)}); declare it in "
                    f"options.column_types (e.g. {{{extra[0]}: string}}) or raise batch_size"
                )
        arrays = [
            python_array([r.get(f.name) for r in records], f.type, f.name, self.where)
            for f in schema
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=schema)


def columns_state(schema: pa.Schema) -> dict[str, str]:
    """The schema as JSON-safe state (name -> type name), kept by Dagster between runs."""
    return {f.name: str(f.type) for f in schema}


def columns_from_state(state: Mapping[str, Any] | None) -> dict[str, pa.DataType]:
    """The schema kept by :func:`columns_state` on the last committed run (empty if none):
    a run that finds no new records still hands its targets the same columns."""
    columns = (state or {}).get("columns") or {}
    try:
        return {str(name): parse_type(type_) for name, type_ in columns.items()}
    except (SpecError, AttributeError):
        return {}
