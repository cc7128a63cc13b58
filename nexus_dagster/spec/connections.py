"""Which connection an endpoint uses: its type name and its (unresolved) parameters.

Values stay as written (``${ENV}``, ``enc:``): only a run resolves them
(:func:`nexus_dagster.run.endpoints.open_endpoint`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nexus_dagster.spec.models import Connection, DataSource, DataTarget

__all__ = ["endpoint_role", "endpoint_type", "resolve_connection"]


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
        connection = connections[endpoint.connection]
        params = {"type": connection.type, **connection.params}
        if connection.encrypted:
            params["encrypted"] = True
        return params
    return dict(endpoint.connection_params)
