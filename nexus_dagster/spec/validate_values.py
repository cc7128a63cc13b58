"""The offending value of a spec problem, as ``nexus validate`` shows it (secrets masked)."""

from __future__ import annotations

import json
import re
from typing import Any

from nexus_dagster import secrets

MAX_SHOWN = 80
_PART_RE = re.compile(r"\[(\d+)\]|([^.\[\]]+)")

Loc = tuple[str | int, ...]


def field_path(field: str) -> Loc:
    """``sources[0].connection_params.host`` -> ``("sources", 0, "connection_params", "host")``."""
    return tuple(int(index) if index else name for index, name in _PART_RE.findall(field))


def masked(value: Any, key: str | int = "") -> Any:
    """``value`` with the values of secret-named keys replaced by ``***`` (references such as
    ``${NAME}`` are kept: they name a secret, they do not hold it)."""
    if isinstance(value, dict):
        return {k: masked(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v, key) for v in value]
    if isinstance(key, str) and secrets.is_sensitive(key) and value is not None:
        if isinstance(value, str) and value.startswith("${"):
            return value
        return "***"
    return value


def has_child(node: Any, part: str | int) -> bool:
    """True when ``node[part]`` exists: a key of a mapping or an index of a list."""
    if isinstance(node, dict):
        return part in node
    return isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)


def _lookup(data: Any, path: Loc) -> tuple[bool, Any, Loc]:
    node = data
    for part in path:
        if not has_child(node, part):
            return False, None, path
        node = node[part]
    return True, node, path


def shown_value(data: Any, field: str | None) -> str | None:
    """The value at ``field`` in a spec file's data, masked and shortened; None when the field
    is not in the data (a missing field) or names the whole file.

    ``connections.yaml`` fields (``warehouse.password``) are found under a top-level
    ``connections:`` key and a ``params:`` block too.
    """
    if not field or data is None:
        return None
    path = field_path(field)
    candidates = [path, ("connections", *path)]
    if len(path) >= 2:
        candidates += [(path[0], "params", *path[1:]), ("connections", path[0], "params",
                                                         *path[1:])]
    for candidate in candidates:
        found, value, where = _lookup(data, candidate)
        if found:
            break
    else:
        return None
    keys = [p for p in where if isinstance(p, str)]
    if any(secrets.is_sensitive(k) for k in keys[:-1]) and not isinstance(value, dict | list):
        value = masked(value, "password")
    value = masked(value, keys[-1] if keys else "")
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    text = secrets.mask(text)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."
