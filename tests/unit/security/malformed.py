"""Generated malformed job specs: each case breaks a valid spec in exactly one place."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

CONNECTIONS = {"warehouse": {"type": "sqlite", "database": "out/w.db"}}


def base_spec(name: str = "good_job") -> dict[str, Any]:
    """A valid spec touching every part of the model."""
    return {
        "name": name,
        "description": "ok",
        "schedule": "0 2 * * *",
        "timezone": "Europe/Berlin",
        "retries": {"max_retries": 2, "delay_seconds": 5, "backoff": "exponential"},
        "max_workers": 2,
        "tags": {"team": "data"},
        "sources": [
            {"name": "orders", "source_type": "file", "file_path": "data/orders.csv",
             "file_format": "csv", "batch_size": 1000, "incremental_column": "id",
             "incremental_value": 0, "options": {"delimiter": ","}},
            {"name": "customers", "source_type": "file", "file_path": "data/c.csv"},
        ],
        "transformations": [
            {"name": "paid", "transformation_type": "filter",
             "config": {"condition": 'status == "paid"'}, "order": 1},
            {"name": "rev", "transformation_type": "map",
             "config": {"mappings": {"revenue": "quantity * price"}}, "order": 2},
            {"name": "joined", "transformation_type": "join",
             "config": {"left": "orders", "right": "customers", "on": ["customer_id"]},
             "order": 3},
            {"name": "agg", "transformation_type": "aggregate",
             "config": {"group_by": ["day"], "aggregations": {"total": ["revenue", "sum"]}},
             "order": 4},
            {"name": "srt", "transformation_type": "sort",
             "config": {"columns": ["day"], "ascending": False}, "order": 5},
        ],
        "targets": [
            {"name": "out", "target_type": "database", "connection": "warehouse",
             "table": "daily", "write_mode": "upsert", "key_columns": ["day"]},
        ],
    }


@dataclass
class Case:
    """One broken spec and the field its single problem must name."""

    id: str
    spec: Any
    field: str


def _set(spec: dict, path: tuple, value: Any) -> dict:
    spec = copy.deepcopy(spec)
    node = spec
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return spec


def _delete(spec: dict, path: tuple) -> dict:
    spec = copy.deepcopy(spec)
    node = spec
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]
    return spec


def _dotted(path: tuple) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


# field path -> wrong values (each of a wrong type, out of range or not allowed)
WRONG_VALUES: dict[tuple, list[Any]] = {
    ("name",): [None, 12, [], {}, ""],
    ("description",): [[1], {"a": 1}],
    ("schedule",): ["every day", "61 * * * *", "* * *", "0 2 * * * * *", 5, "0 25 * * *",
                    "@fortnightly", "0 2 31 2 * extra"],
    ("timezone",): ["Mars/Olympus", "UTC+99", 3],
    ("retries",): ["three", [1]],
    ("retries", "max_retries"): [-1, 101, "x", 1.5],
    ("retries", "delay_seconds"): [-5, "soon"],
    ("retries", "backoff"): ["quadratic", 2],
    ("max_workers",): [0, 1000, "many"],
    ("parallel",): ["perhaps", 3],
    ("enabled",): ["maybe"],
    ("tags",): [["a"], "x", {"team": ["a"]}],
    ("sources",): ["orders", {}, [], None],
    ("sources", 0): ["orders", 7],
    ("sources", 0, "name"): ["has space", "1abc", "", None, 5, "a-b"],
    ("sources", 0, "source_type"): ["ftpx", "DATABASEZ", 1, None, "csv"],
    ("sources", 0, "batch_size"): [0, -1, "big", 20_000_000, 1.5],
    ("sources", 0, "options"): ["x", [1]],
    ("sources", 0, "connection_params"): ["x", [1]],
    ("sources", 0, "file_path"): [[1], {"a": 1}],
    ("sources", 0, "encrypted"): ["yes please"],
    ("transformations",): ["filter", {"a": 1}],
    ("transformations", 0, "name"): ["no spaces allowed", None, 3],
    ("transformations", 0, "transformation_type"): ["explode", None, 4, "FILTERZ"],
    ("transformations", 0, "order"): ["first", 1.5, None],
    ("transformations", 0, "config"): ["x", [1]],
    ("transformations", 0, "config", "condition"): ["", 1, None, "__import__('os')",
                                                    "x.__class__", "amount >", "lambda: 1",
                                                    "eval('1')", "open('/etc/passwd')",
                                                    "x[0]", "f'{x}'", "a = 1"],
    ("transformations", 0, "enabled"): ["sometimes"],
    ("transformations", 1, "config", "mappings"): [{}, [], "a", {"x": 1}, {"x": "import os"},
                                                   {"x": "exec('1')"}, {"x": "y.z"}],
    ("transformations", 2, "config", "how"): ["sideways", 1],
    ("transformations", 2, "config", "on"): [[], 5],
    ("transformations", 2, "config", "left"): ["nowhere", 5, "joined", "agg"],
    ("transformations", 2, "config", "right"): ["nosuch", "srt"],
    ("transformations", 3, "config", "aggregations"): [{}, {"t": ["x", "explode"]},
                                                       {"t": "sum"}, {"t": ["a", "b", "c"]}],
    ("transformations", 3, "config", "group_by"): [5, [1]],
    ("transformations", 4, "config", "columns"): [[], 5],
    ("transformations", 4, "config", "ascending"): ["down", [True, False]],
    ("targets",): [[], "out", None],
    ("targets", 0, "name"): ["bad name", ""],
    ("targets", 0, "target_type"): ["warehouse", None, 9],
    ("targets", 0, "write_mode"): ["merge", "APPEND", 1, None, "replace"],
    ("targets", 0, "key_columns"): [[], None, 5],
    ("targets", 0, "connection"): ["missing_conn", "Warehouse"],
    ("targets", 0, "batch_size"): [0, "x"],
    ("targets", 0, "create_table"): ["yes please"],
}

REQUIRED: list[tuple] = [
    ("name",), ("sources",), ("targets",), ("sources", 0, "name"),
    ("sources", 0, "source_type"), ("sources", 0, "file_path"), ("targets", 0, "name"),
    ("targets", 0, "target_type"), ("targets", 0, "table"),
    ("transformations", 0, "name"), ("transformations", 0, "transformation_type"),
    ("transformations", 0, "config", "condition"), ("transformations", 1, "config", "mappings"),
    ("transformations", 2, "config", "left"), ("transformations", 2, "config", "on"),
    ("transformations", 3, "config", "aggregations"), ("transformations", 4, "config", "columns"),
    ("targets", 0, "key_columns"),
]

UNKNOWN_AT: list[tuple] = [
    (), ("retries",), ("sources", 0), ("sources", 1), ("targets", 0), ("transformations", 0),
    ("transformations", 1), ("transformations", 0, "config"), ("transformations", 1, "config"),
    ("transformations", 2, "config"), ("transformations", 3, "config"),
    ("transformations", 4, "config"),
]
UNKNOWN_KEYS = ["colour", "sourcez", "tabel", "write_mod", "__class__", "password"]


def cases() -> Iterator[Case]:
    """Every generated broken spec (well over 200)."""
    base = base_spec()
    for path, values in WRONG_VALUES.items():
        for index, value in enumerate(values):
            yield Case(f"wrong-{_dotted(path)}-{index}", _set(base, path, value), _dotted(path))
    for path in REQUIRED:
        yield Case(f"missing-{_dotted(path)}", _delete(base, path), _dotted(path))
    for path in UNKNOWN_AT:
        for key in UNKNOWN_KEYS:
            spec = copy.deepcopy(base)
            node = spec
            for part in path:
                node = node[part]
            node[key] = "x"
            yield Case(f"unknown-{_dotted(path) or 'job'}-{key}", spec, _dotted((*path, key)))
    # references: a join on itself (circular), a join on a later step, duplicated names
    yield Case("circular-join", _set(base, ("transformations", 2, "config", "left"), "joined"),
               "transformations[2].config.left")
    yield Case("duplicate-name", _set(base, ("transformations", 0, "name"), "orders"), "")
    yield Case("not-a-mapping", ["name", "x"], "")
    yield Case("custom-code-on-filter",
               _set(base, ("transformations", 0, "custom_code"), "df = df"), "transformations[0]")
    yield Case("custom-code-syntax", _set(base, ("transformations", 0), {
        "name": "code", "transformation_type": "custom_code", "custom_code": "df = (",
        "order": 1}), "transformations[0].custom_code")
