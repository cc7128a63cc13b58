"""The connector registry: which class serves which ``source_type``/``target_type``.

Entries are import paths so that loading the registry imports no driver. A type whose
connector is not built yet raises :class:`~nexus_dagster.errors.UnsupportedError` listing the
types that are.
"""

from __future__ import annotations

import importlib

from nexus_dagster.connectors.base import Connector
from nexus_dagster.errors import UnsupportedError

#: source_type / target_type -> "module:Class"
CONNECTOR_MAP: dict[str, str] = {
    "database": "nexus_dagster.connectors.database:DatabaseConnector",
    "file": "nexus_dagster.connectors.file:FileConnector",
}


def register_connector(kind: str, path: str) -> None:
    """Make ``kind`` (a source/target type) served by the class at ``"module:Class"``."""
    CONNECTOR_MAP[kind] = path


def connector_class(kind: str) -> type[Connector]:
    """The connector class for a source/target type, or a clear error naming the known ones."""
    kind = getattr(kind, "value", kind)
    try:
        path = CONNECTOR_MAP[kind]
    except KeyError:
        raise UnsupportedError(
            f"type {kind!r} is not supported yet; supported: {', '.join(sorted(CONNECTOR_MAP))}"
        ) from None
    module_name, _, class_name = path.partition(":")
    return getattr(importlib.import_module(module_name), class_name)
