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
    "mongodb": "nexus_dagster.connectors.mongodb:MongoDBConnector",
    "elasticsearch": "nexus_dagster.connectors.search:SearchConnector",
    "opensearch": "nexus_dagster.connectors.search:OpenSearchConnector",
    "api": "nexus_dagster.connectors.api:ApiConnector",
    "s3": "nexus_dagster.connectors.s3:S3Connector",
    "azure_blob": "nexus_dagster.connectors.azure_blob:AzureBlobConnector",
    "gcs": "nexus_dagster.connectors.gcs:GCSConnector",
    "sftp": "nexus_dagster.connectors.sftp:SFTPConnector",
    "ftp": "nexus_dagster.connectors.ftp:FTPConnector",
    "kafka": "nexus_dagster.connectors.kafka:KafkaConnector",
    "redis": "nexus_dagster.connectors.redis:RedisConnector",
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
