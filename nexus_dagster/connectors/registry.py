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

from typing import TYPE_CHECKING

from nexus_dagster.plugins import NamedRegistry

if TYPE_CHECKING:
    from nexus_dagster.connectors.base import Connector

__all__ = [
    "BUILTIN_CONNECTORS",
    "CONNECTORS",
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


def _connector_base() -> type[Connector]:
    from nexus_dagster.connectors.base import Connector

    return Connector


CONNECTORS: NamedRegistry[Connector] = NamedRegistry(
    "connector", base=_connector_base, builtins=BUILTIN_CONNECTORS, group=ENTRY_POINT_GROUP
)


def register_connector(name: str, connector: str | type[Connector]) -> None:
    """Make ``name`` (a source/target type) served by ``connector``: a Connector subclass or
    its ``"module:Class"`` path.

    Example:
        >>> register_connector("warehouse_x", "my_package.connector:WarehouseXConnector")
    """
    CONNECTORS.register(name, connector)


def unregister_connector(name: str) -> None:
    """Forget a connector given to :func:`register_connector` (built-ins and entry points
    stay)."""
    CONNECTORS.unregister(name)


def connector_types() -> list[str]:
    """Every type name a spec may use, sorted."""
    return CONNECTORS.names()


def connector_class(name: str) -> type[Connector]:
    """The connector class for a source/target type, or a clear error naming the known ones.

    Raises:
        UnsupportedError: no connector has that name.
        SpecError: the name is registered but its class cannot be imported, or is not a
            :class:`~nexus_dagster.connectors.base.Connector`.
    """
    return CONNECTORS.get(
        str(getattr(name, "value", name)),
        unknown=lambda n: (
            f"type {n!r} is not supported; supported: {', '.join(connector_types())} "
            f"(other packages add types through the entry-point group {ENTRY_POINT_GROUP!r})"
        ),
    )
