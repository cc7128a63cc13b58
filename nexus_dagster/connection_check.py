"""Health checks of named connections (``nexus test-connection``).

Each connection of ``connections.yaml`` is opened with its connector (secrets resolved now, as
in a run) and asked :meth:`~nexus_dagster.connectors.base.Connector.connection_problem`. The
result says ``ok`` with the connector's secret-free description, or why not, masked.

Example:
    >>> for check in check_connections(load_project("job_specs")):   # doctest: +SKIP
    ...     print(check)
    warehouse: ok (sqlite:///.../output/warehouse.db)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from nexus_dagster import secrets
from nexus_dagster.connectors.registry import connector_class
from nexus_dagster.errors import NexusError, SpecError, did_you_mean
from nexus_dagster.run.endpoints import open_connector
from nexus_dagster.spec.connections import default_connector_type, named_connection_params

__all__ = ["ConnectionCheck", "check_connections"]


@dataclass
class ConnectionCheck:
    """The outcome of one connection's health check.

    Attributes:
        name: the connection's name in connections.yaml.
        ok: True when the system answered.
        detail: where it points (when ok) or why it failed; secrets masked.
    """

    name: str
    ok: bool
    detail: str

    def __str__(self) -> str:
        return f"{self.name}: ok ({self.detail})" if self.ok else \
            f"{self.name}: FAILED: {self.detail}"


def _check(name: str, connection: Any, root: Any) -> ConnectionCheck:
    connector = None
    try:
        kind = default_connector_type(connection.type)
        role = "source" if connector_class(kind).is_source else "target"
        connector = open_connector(kind, named_connection_params(connection), root=root,
                                   role=role, where=f"connections.yaml {name}")
        problem = connector.connection_problem()
        detail = problem or f"{kind}: {connector.describe()}"
    except NexusError as exc:
        problem = detail = str(exc)
    except Exception as exc:  # a driver error the connector did not wrap
        problem = detail = f"{type(exc).__name__}: {exc}"
    finally:
        if connector is not None:
            try:
                connector.close()
            except Exception as exc:
                problem = detail = f"closing failed: {type(exc).__name__}: {exc}"
    return ConnectionCheck(name, problem is None, secrets.mask(detail))


def check_connections(project: Any, names: Iterable[str] = ()) -> list[ConnectionCheck]:
    """Check the named connections of ``project`` (every one when ``names`` is empty).

    Raises:
        SpecError: a name that is not in connections.yaml (with the closest name).
    """
    names = list(names) or sorted(project.connections)
    for name in names:
        if name not in project.connections:
            hint = did_you_mean(name, project.connections)
            known = ", ".join(sorted(project.connections)) or "none"
            raise SpecError(f"connection {name!r} is not in connections.yaml (fix: {hint}"
                            f"use one of: {known})")
    return [_check(name, project.connections[name], project.root) for name in names]
