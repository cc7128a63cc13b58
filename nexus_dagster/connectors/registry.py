"""The connector registry: which class serves which ``source_type``/``target_type``.

One registry for built-in and third-party connectors. Entries are ``"module:Class"`` import
paths (or classes), so loading the registry imports no driver. Other packages add connectors
through the entry-point group ``nexus_dagster.connectors``::

    # pyproject.toml of another package
    [project.entry-points."nexus_dagster.connectors"]
    warehouse_x = "my_package.connector:WarehouseXConnector"

or at run time with :func:`register_connector`. A registered name is a valid ``source_type`` /
``target_type``: ``nexus validate`` and runs accept it like a built-in one. An unknown name
raises :class:`~nexus_dagster.errors.UnsupportedError` listing the known ones.

Example:
    >>> connector_class("database").__name__
    'DatabaseConnector'
    >>> "kafka" in connector_types()
    True
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from nexus_dagster.errors import SpecError, UnsupportedError

if TYPE_CHECKING:
    from nexus_dagster.connectors.base import Connector

__all__ = [
    "BUILTIN_CONNECTORS",
    "ENTRY_POINT_GROUP",
    "connector_class",
    "connector_types",
    "register_connector",
    "unregister_connector",
]

ENTRY_POINT_GROUP = "nexus_dagster.connectors"

#: the connectors shipped with nexus-dagster: type name -> "module:Class"
BUILTIN_CONNECTORS: dict[str, str] = {
    "database": "nexus_dagster.connectors.database:DatabaseConnector",
    "file": "nexus_dagster.connectors.file:FileConnector",
    "mongodb": "nexus_dagster.connectors.mongodb:MongoDBConnector",
    "elasticsearch": "nexus_dagster.connectors.search:SearchConnector",
    "opensearch": "nexus_dagster.connectors.search:OpenSearchConnector",
    "api": "nexus_dagster.connectors.rest_api:ApiConnector",
    "s3": "nexus_dagster.connectors.s3:S3Connector",
    "azure_blob": "nexus_dagster.connectors.azure_blob:AzureBlobConnector",
    "gcs": "nexus_dagster.connectors.gcs:GCSConnector",
    "sftp": "nexus_dagster.connectors.sftp:SFTPConnector",
    "ftp": "nexus_dagster.connectors.ftp:FTPConnector",
    "kafka": "nexus_dagster.connectors.kafka:KafkaConnector",
    "redis": "nexus_dagster.connectors.redis:RedisConnector",
}

#: registered at run time with register_connector (wins over entry points and built-ins)
_registered: dict[str, str | type[Connector]] = {}


@lru_cache(maxsize=1)
def _entry_points() -> dict[str, str]:
    """Connectors other installed packages declare (read once per process)."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def register_connector(name: str, connector: str | type[Connector]) -> None:
    """Make ``name`` (a source/target type) served by ``connector``: a Connector subclass or
    its ``"module:Class"`` path.

    Example:
        >>> register_connector("warehouse_x", "my_package.connector:WarehouseXConnector")
    """
    if not name or not name.replace("_", "").isalnum() or not name[0].isalpha():
        raise SpecError(
            f"connector name {name!r} must start with a letter and hold only letters, digits "
            "and underscores"
        )
    _registered[name] = connector


def unregister_connector(name: str) -> None:
    """Forget a connector given to :func:`register_connector` (built-ins and entry points
    stay)."""
    _registered.pop(name, None)


def connector_types() -> list[str]:
    """Every type name a spec may use, sorted."""
    return sorted({*BUILTIN_CONNECTORS, *_entry_points(), *_registered})


def _entry(name: str) -> str | type[Connector] | None:
    if name in _registered:
        return _registered[name]
    if name in BUILTIN_CONNECTORS:
        return BUILTIN_CONNECTORS[name]
    return _entry_points().get(name)


def connector_class(name: str) -> type[Connector]:
    """The connector class for a source/target type, or a clear error naming the known ones.

    Raises:
        UnsupportedError: no connector has that name.
        SpecError: the name is registered but its class cannot be imported, or is not a
            :class:`~nexus_dagster.connectors.base.Connector`.
    """
    from nexus_dagster.connectors.base import Connector

    name = str(getattr(name, "value", name))
    entry = _entry(name)
    if entry is None:
        raise UnsupportedError(
            f"type {name!r} is not supported; supported: {', '.join(connector_types())} "
            f"(other packages add types through the entry-point group {ENTRY_POINT_GROUP!r})"
        )
    if isinstance(entry, str):
        module_name, _, class_name = entry.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as exc:
            raise SpecError(
                f"connector {name!r} is registered as {entry!r}, which cannot be imported: {exc}"
            ) from exc
    else:
        cls = entry
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise SpecError(
            f"connector {name!r} ({entry!r}) is not a subclass of "
            "nexus_dagster.connectors.base.Connector"
        )
    return cls
