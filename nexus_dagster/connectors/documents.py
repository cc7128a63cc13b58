"""Documents (MongoDB, search hits) to Arrow batches and back, shared by the NoSQL connectors.

The mapping rule, the same for every document store:

* a nested sub-document becomes flattened columns named ``parent.child`` (``nested: flatten``,
  the default) or one JSON text column (``nested: json``);
* a list becomes JSON text (lists of documents too);
* ObjectId becomes its 24-character hex string, Decimal128 a decimal, datetimes UTC timestamps,
  other BSON values (UUID, Binary, Timestamp, ...) their string form;
* the schema comes from the first ``sample_size`` documents; a value whose type differs from
  its column's becomes text when the column is text and is otherwise a clear
  :class:`~nexus_dagster.errors.DataError` naming the column and the ``column_types`` fix.

On the way back (targets) dotted column names are folded into sub-documents again
(``unflatten``), so a document store -> document store round trip keeps the shape.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import pyarrow as pa

from nexus_dagster.connectors.formats.options import parse_type
from nexus_dagster.errors import DataError, SpecError

NESTED_MODES = ("flatten", "json")


def _scalar(value: Any) -> Any:
    """A document value as a plain Python scalar Arrow understands."""
    if value is None or isinstance(value, bool | int | float | str | bytes):
        return value
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, dt.date | decimal.Decimal):
        return value
    to_decimal = getattr(value, "to_decimal", None)  # bson Decimal128
    if callable(to_decimal):
        return to_decimal()
    return str(value)  # ObjectId, UUID, Binary, Timestamp, Regex ...


def _json_default(value: Any) -> Any:
    scalar = _scalar(value)
    if isinstance(scalar, dt.date):
        return scalar.isoformat()
    if isinstance(scalar, bytes):
        return scalar.hex()
    return str(scalar)


def to_json(value: Any) -> str:
    """JSON text for a list or sub-document (ObjectId, dates and decimals as strings)."""
    return json.dumps(value, default=_json_default, ensure_ascii=False, sort_keys=False)


def flatten(document: Mapping[str, Any], nested: str = "flatten") -> dict[str, Any]:
    """One document as a flat ``column -> scalar`` dict following the module's rule."""
    if nested not in NESTED_MODES:
        raise SpecError(f"options.nested must be one of {NESTED_MODES}, not {nested!r}")
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            if nested == "json" and prefix:
                flat[prefix] = to_json(value)
                return
            if not value and prefix:
                flat[prefix] = None
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), item)
        elif isinstance(value, list | tuple):
            flat[prefix] = to_json(list(value))
        else:
            flat[prefix] = _scalar(value)

    walk("", document)
    return flat


def _infer_type(name: str, values: Sequence[Any]) -> pa.DataType:
    present = [v for v in values if v is not None]
    if not present:
        return pa.string()
    try:
        type_ = pa.array(present).type
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.string()  # mixed types: text
    if pa.types.is_timestamp(type_):
        return pa.timestamp("us", tz="UTC")
    if pa.types.is_null(type_):
        return pa.string()
    return type_


def infer_schema(
    rows: Sequence[Mapping[str, Any]],
    column_types: Mapping[str, str] | None = None,
    first: Sequence[str] = (),
) -> pa.Schema:
    """An Arrow schema for flat rows: names in first-seen order (``first`` leading)."""
    names: dict[str, None] = dict.fromkeys(first)
    for row in rows:
        names.update(dict.fromkeys(row))
    overrides = {k: _parse_type(k, v) for k, v in (column_types or {}).items()}
    fields = []
    for name in names:
        type_ = overrides.get(name) or _infer_type(name, [row.get(name) for row in rows])
        fields.append(pa.field(name, type_))
    for name, type_ in overrides.items():
        if name not in names:
            fields.append(pa.field(name, type_))
    return pa.schema(fields)


def _parse_type(column: str, text: str) -> pa.DataType:
    try:
        return parse_type(text)
    except Exception as exc:
        raise SpecError(f"options.column_types.{column}: {exc}") from None


def rows_to_batch(
    rows: Sequence[Mapping[str, Any]], schema: pa.Schema, where: str
) -> pa.RecordBatch:
    """Flat rows as one batch of ``schema``; a field missing from the schema is a DataError."""
    known = set(schema.names)
    for row in rows:
        extra = [k for k in row if k not in known]
        if extra:
            raise DataError(
                f"{where}: field(s) {extra[:5]} were not in the documents sampled for the "
                f"schema (columns: {schema.names[:20]}); raise options.sample_size or name "
                "them in options.column_types"
            )
    arrays = []
    for field in schema:
        values = [row.get(field.name) for row in rows]
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            values = [v if v is None or isinstance(v, str) else _text(v) for v in values]
        elif pa.types.is_timestamp(field.type):
            values = [_timestamp(v) if isinstance(v, str) else v for v in values]
        try:
            arrays.append(pa.array(values, type=field.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, ValueError) as exc:
            raise DataError(
                f"{where}: column {field.name!r} ({field.type}) got a value of another type: "
                f"{exc}; set options.column_types: {{{field.name!r}: string}} to read it as text"
            ) from None
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _timestamp(text: str) -> dt.datetime | str:
    """ISO text (search engines return dates as text) as an aware datetime, else unchanged."""
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _text(value: Any) -> str:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def batches(
    documents: Iterable[Mapping[str, Any]], schema: pa.Schema, size: int, where: str,
    nested: str = "flatten",
) -> Iterator[pa.RecordBatch]:  # fmt: skip
    """Documents as Arrow batches of ``size`` rows."""
    rows: list[dict[str, Any]] = []
    for document in documents:
        rows.append(flatten(document, nested))
        if len(rows) >= size:
            yield rows_to_batch(rows, schema, where)
            rows = []
    if rows:
        yield rows_to_batch(rows, schema, where)


def unflatten(row: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1, "c": 2}`` -> ``{"a": {"b": 1}, "c": 2}``; a clash keeps the dotted name."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        parts = key.split(".")
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                node = None  # type: ignore[assignment]
                break
            node = child
        if node is None or (parts[-1] in node and isinstance(node[parts[-1]], dict)):
            out[key] = value
        else:
            node[parts[-1]] = value
    return out


def batch_rows(batch: pa.RecordBatch) -> list[dict[str, Any]]:
    """A batch as Python dicts (timestamps as aware datetimes, decimals as Decimal)."""
    return batch.to_pylist()
