"""Transformations: the pandas-like expression compiler, the step table and the chain run in
DuckDB.

The names below are loaded on first use, so importing :mod:`nexus_dagster.transforms.expressions`
(e.g. for column lineage at definition time) does not import DuckDB or pandas.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "apply_transformations": "nexus_dagster.transforms.chain",
    "custom_code_allowed": "nexus_dagster.transforms.code_policy",
    "compile_expression": "nexus_dagster.transforms.expressions",
    "referenced_columns": "nexus_dagster.transforms.expressions",
    "validate_expression": "nexus_dagster.transforms.expressions",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module), name)
