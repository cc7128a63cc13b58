"""From a JSON response to flat Arrow columns.

* :func:`find_records` - the list of records in a response body: at ``records_path``
  (``data.items``), else auto-detected (see :data:`RECORD_KEYS`);
* :func:`flatten` - nested objects become ``address.city`` columns up to a depth; deeper
  objects and lists are kept as JSON text, or one list is exploded into one row per element;
* :func:`to_table` - records to an Arrow table, one type per column (``column_types`` wins).

Example:
    >>> flatten({"id": 1, "address": {"city": "Oslo"}, "tags": ["a"]}, depth=3)
    {'id': 1, 'address.city': 'Oslo', 'tags': '["a"]'}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from nexus_dagster.errors import DataError

#: keys tried, in order, when a response is an object and no records_path is given
RECORD_KEYS = ("data", "results", "items", "records", "rows", "entries", "value", "objects")

_MISSING = object()


def get_path(body: Any, path: str, default: Any = _MISSING) -> Any:
    """The value at a dotted path (``meta.next_cursor``; list indexes as numbers)."""
    current = body
    for part in path.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.lstrip("-").isdigit() and current:
            try:
                current = current[int(part)]
            except IndexError:
                current = _MISSING
        else:
            current = _MISSING
        if current is _MISSING:
            if default is _MISSING:
                raise KeyError(path)
            return default
    return current


def _describe(body: Any) -> str:
    if isinstance(body, Mapping):
        keys = ", ".join(list(map(str, body))[:20]) or "none"
        return f"an object with keys: {keys}"
    return f"a JSON {type(body).__name__}"


def find_records(body: Any, records_path: str | None, where: str) -> list[Any]:
    """The records in a response body.

    Rule without ``records_path``: a top-level array is the records; an object is searched for
    the first of :data:`RECORD_KEYS` holding an array (also one level down, e.g.
    ``{"data": {"items": [...]}}``); else an object with exactly one array of objects uses it;
    else the object itself is one record.

    Raises:
        DataError: ``records_path`` is missing from the body or not an array.
    """
    if records_path:
        try:
            found = get_path(body, records_path)
        except KeyError:
            raise DataError(
                f"{where}: records_path {records_path!r} is not in the response, which is "
                f"{_describe(body)} (the API may have changed; fix records_path)"
            ) from None
        if found is None:
            return []
        if isinstance(found, Mapping):
            return [found]
        if not isinstance(found, list):
            raise DataError(
                f"{where}: records_path {records_path!r} holds a {type(found).__name__}, "
                "not a list of records"
            )
        return found
    if isinstance(body, list):
        return body
    if not isinstance(body, Mapping):
        raise DataError(f"{where}: the response is {_describe(body)}, not records")
    for key in RECORD_KEYS:
        value = body.get(key)
        if isinstance(value, list):
            return value
        if isinstance(value, Mapping):
            for inner in RECORD_KEYS:
                if isinstance(value.get(inner), list):
                    return value[inner]
    lists = [v for v in body.values() if isinstance(v, list) and v and isinstance(v[0], Mapping)]
    if len(lists) == 1:
        return lists[0]
    return [body]


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def flatten(record: Any, depth: int, prefix: str = "", out: dict[str, Any] | None = None
            ) -> dict[str, Any]:
    """A record as one flat dict: nested objects joined with ``.`` down to ``depth`` levels,
    deeper objects and every list as JSON text; a scalar record becomes ``{"value": x}``."""
    out = {} if out is None else out
    if not isinstance(record, Mapping):
        out[prefix or "value"] = record
        return out
    for key, value in record.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value and depth > 0:
            flatten(value, depth - 1, name, out)
        elif isinstance(value, Mapping | list):
            out[name] = _json_text(value)
        else:
            out[name] = value
    return out


def flatten_records(records: list[Any], depth: int, explode: str | None) -> list[dict[str, Any]]:
    """Flatten every record; with ``explode`` (a dotted path to a list) one row per element,
    the element's fields as ``<path>.<field>`` (a scalar element as ``<path>``); a record whose
    list is empty or missing stays as one row with nulls there."""
    if not explode:
        return [flatten(r, depth) for r in records]
    rows: list[dict[str, Any]] = []
    parts = explode.split(".")
    for record in records:
        if not isinstance(record, Mapping):
            rows.append(flatten(record, depth))
            continue
        items, rest = _pop_path(record, parts)
        base = flatten(rest, depth)
        if not isinstance(items, list) or not items:
            rows.append(base)
            continue
        for item in items:
            row = dict(base)
            if isinstance(item, Mapping):
                flatten(item, max(depth - 1, 0), explode, row)
            else:
                row[explode] = _json_text(item) if isinstance(item, list) else item
            rows.append(row)
    return rows


def _pop_path(record: Mapping[str, Any], parts: list[str]) -> tuple[Any, dict[str, Any]]:
    """(value at parts, a copy of record without it)."""
    head, *tail = parts
    copy = dict(record)
    if not tail:
        return copy.pop(head, None), copy
    inner = copy.get(head)
    if not isinstance(inner, Mapping):
        return None, copy
    value, rest = _pop_path(inner, tail)
    if rest:
        copy[head] = rest
    else:
        del copy[head]
    return value, copy


def _stringify(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return _json_text(value) if isinstance(value, Mapping | list) else str(value)


def to_table(rows: list[dict[str, Any]], column_types: Mapping[str, pa.DataType],
             where: str) -> pa.Table:
    """Rows (flat dicts) as an Arrow table, columns in first-seen order.

    Raises:
        DataError: a column holds values of incompatible JSON types (names the column and
            suggests ``options.column_types``).
    """
    names: dict[str, None] = {}
    for row in rows:
        for name in row:
            names.setdefault(name, None)
    arrays, fields = [], []
    for name in names:
        values = [row.get(name) for row in rows]
        explicit = column_types.get(name)
        try:
            if explicit is not None:
                if pa.types.is_string(explicit) or pa.types.is_large_string(explicit):
                    values = [_stringify(v) for v in values]
                    array = pa.array(values, type=explicit)
                else:
                    array = pa.array(values).cast(explicit)
            else:
                array = pa.array(values)
                if pa.types.is_null(array.type):
                    array = array.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as exc:
            kinds = sorted({type(v).__name__ for v in values if v is not None})
            raise DataError(
                f"{where}: field {name!r} holds values of types {', '.join(kinds)} "
                f"({str(exc).splitlines()[0]}); set options.column_types: "
                f"{{{name!r}: string}} (or another type) to read it with one type"
            ) from None
        arrays.append(array)
        fields.append(pa.field(name, array.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))
