"""Which connection an endpoint uses: its type name and its (unresolved) parameters, and which
connector serves a connection of a given ``type``.

Values stay as written (``${ENV}``, ``enc:``): only a run resolves them
(:func:`nexus_dagster.run.endpoints.open_endpoint`).

Example:
    >>> default_connector_type("postgresql"), default_connector_type("s3")
    ('database', 's3')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nexus_dagster.connectors.registry import connector_types
from nexus_dagster.errors import SpecError
from nexus_dagster.spec.models import Connection, DataSource, DataTarget

__all__ = [
    "SQL_DIALECTS",
    "default_connector_type",
    "endpoint_role",
    "endpoint_type",
    "named_connection_params",
    "resolve_connection",
]

#: connection ``type`` values naming a SQL database (SQLAlchemy dialects, as a spec writes
#: them): the ``database`` connector serves them
SQL_DIALECTS = frozenset({
    "postgresql", "postgres", "pg", "mysql", "mariadb", "sqlite", "mssql", "oracle",
    "duckdb", "snowflake", "redshift", "bigquery", "trino", "clickhouse", "databricks",
    "db2", "firebird", "sybase", "teradata", "vertica", "cockroachdb", "exasol", "hana",
})


def endpoint_type(endpoint: DataSource | DataTarget) -> str:
    """The registry name serving the endpoint: its ``source_type`` or ``target_type``."""
    return endpoint.source_type if isinstance(endpoint, DataSource) else endpoint.target_type


def endpoint_role(endpoint: DataSource | DataTarget) -> str:
    """``"source"`` or ``"target"``."""
    return "source" if isinstance(endpoint, DataSource) else "target"


def resolve_connection(
    endpoint: DataSource | DataTarget, connections: Mapping[str, Connection]
) -> dict[str, Any]:
    """The endpoint's unresolved connection params (named connection or inline)."""
    if endpoint.connection:
        return named_connection_params(connections[endpoint.connection])
    return dict(endpoint.connection_params)


def named_connection_params(connection: Connection) -> dict[str, Any]:
    """The unresolved params of a connections.yaml entry, as a connector takes them: its
    ``type``, its params and ``encrypted: true`` when its secrets are ``enc:`` tokens."""
    params = {"type": connection.type, **connection.params}
    if connection.encrypted:
        params["encrypted"] = True
    return params


def default_connector_type(connection_type: str | None) -> str:
    """The registry name of the connector serving a connection of ``connection_type``: the type
    itself when a connector is registered under it (``s3``, ``file``, ``kafka`` ...), else
    ``database`` for a SQL dialect name (``postgresql``, ``mariadb``, ``sqlite``,
    ``postgresql+psycopg2`` ...; see :data:`SQL_DIALECTS`).

    Raises:
        SpecError: the type is missing, a ``${ENV}``/``enc:`` reference, or neither a connector
            nor a SQL dialect; the message lists both and says to name the connector type.
    """
    name = str(connection_type or "").strip()
    known = connector_types()
    if name in known:
        return name
    if name.split("+")[0].lower() in SQL_DIALECTS:
        return "database"
    if not name:
        what = "a connection without a type"
    elif "${" in name or name.startswith("enc:"):
        what = "a connection whose type is resolved only at run time"
    else:
        what = f"a connection of type {name!r}"
    raise SpecError(
        f"cannot tell which connector serves {what}; connector types: "
        f"{', '.join(known)}; SQL dialects (served by 'database'): "
        f"{', '.join(sorted(SQL_DIALECTS))}. Give the connector type explicitly "
        "(connector_type: database, file, s3, ...)"
    )
