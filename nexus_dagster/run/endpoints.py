"""Opening a job's endpoints: the one way the runner, checks, sensors and the Python API turn a
source or target of a spec into a connector and a read/write request.

Secrets are resolved here, at run time only; paths are resolved by the connector itself
(:meth:`~nexus_dagster.connectors.base.Connector.prepare_params` and
:meth:`~nexus_dagster.connectors.base.Connector.resolve_path`), so a check reads back exactly
the object a load wrote.

Example:
    >>> connector = open_endpoint(spec.job.targets[0], spec, project.connections)  # doctest: +SKIP
    >>> relation = connector.read(read_back_request(spec.job.targets[0], connector, spec.root))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from nexus_dagster import secrets
from nexus_dagster.connectors.base import (
    ChangeCapture,
    Connector,
    Cursor,
    ReadRequest,
    Scd2Options,
    WriteRequest,
)
from nexus_dagster.connectors.registry import connector_class
from nexus_dagster.spec.api_fields import endpoint_params
from nexus_dagster.spec.connections import endpoint_role, endpoint_type, resolve_connection
from nexus_dagster.spec.models import Connection, DataSource, DataTarget

__all__ = [
    "endpoint_params_unresolved",
    "open_connector",
    "open_endpoint",
    "read_back_request",
    "read_request",
    "scd2_options",
    "write_request",
]


def endpoint_params_unresolved(
    endpoint: DataSource | DataTarget, connections: Mapping[str, Connection]
) -> dict[str, Any]:
    """The connection's params merged with the endpoint's own (API settings), unresolved."""
    return {**resolve_connection(endpoint, connections), **endpoint_params(endpoint)}


def open_connector(
    type_name: str, params: Mapping[str, Any], *, root: Path, role: str, where: str
) -> Connector:
    """A connector of ``type_name`` on ``params``: secrets resolved now (``where`` names the
    params in errors), paths prepared by the connector against the project ``root``."""
    cls = connector_class(type_name)
    resolved = secrets.resolve(dict(params), where=where)
    return cls(cls.prepare_params(resolved, root=Path(root), role=role))


def open_endpoint(
    endpoint: DataSource | DataTarget, spec: Any, connections: Mapping[str, Connection]
) -> Connector:
    """The connector of a spec's source or target (``spec`` is a loaded
    :class:`~nexus_dagster.spec.loader.JobSpec`)."""
    return open_connector(
        endpoint_type(endpoint),
        endpoint_params_unresolved(endpoint, connections),
        root=spec.root,
        role=endpoint_role(endpoint),
        where=f"{spec.job.key}.{endpoint.name}.connection_params",
    )


def read_request(
    source: DataSource,
    connector: Connector,
    root: Path,
    *,
    cursor: Cursor | None = None,
    state: Mapping[str, Any] | None = None,
    file_path: str | None = None,
) -> ReadRequest:
    """What a source reads (``file_path`` replaces the spec's, for a new-file sensor run)."""
    return ReadRequest(
        table=source.table,
        query=source.query,
        path=connector.resolve_path(file_path or source.file_path, Path(root)),
        file_format=source.file_format,
        options=source.options,
        batch_size=source.batch_size,
        cursor=cursor,
        state=state,
        cdc=ChangeCapture(source.publication or "", source.slot or "") if source.cdc else None,
    )


def read_back_request(
    target: DataTarget, connector: Connector, root: Path, cursor: Cursor | None = None
) -> ReadRequest:
    """A read of what a target holds (asset checks): what the connector says a read of the
    load's :func:`write_request` is (:meth:`~nexus_dagster.connectors.base.Connector.
    read_back`), within ``cursor`` when given (a partition's window)."""
    back = connector.read_back(write_request(target, connector, Path(root)))
    return replace(back, cursor=cursor)


def write_request(
    target: DataTarget,
    connector: Connector,
    root: Path,
    *,
    run_id: str | None = None,
    idempotency_scope: str | None = None,
    replace_range: tuple[str, Any, Any] | None = None,
    change_column: str | None = None,
) -> WriteRequest:
    """What a target is asked to do (``change_column``: the data is a change stream whose
    operation is in that column; see ``WriteRequest.change_column``)."""
    return WriteRequest(
        table=target.table,
        path=connector.resolve_path(target.file_path, Path(root)),
        file_format=target.file_format,
        write_mode=str(target.write_mode),
        key_columns=tuple(target.key_columns),
        options=target.options,
        batch_size=target.batch_size,
        run_id=run_id,
        idempotency_scope=idempotency_scope or run_id,
        replace_range=replace_range,
        scd2=scd2_options(target),
        max_delete_fraction=target.max_delete_fraction,
        delete_where=target.delete_where,
        change_column=change_column,
    )


def scd2_options(target: DataTarget) -> Scd2Options | None:
    """The connector's SCD2 settings of a ``write_mode: scd2`` target, else None."""
    if str(target.write_mode) != "scd2":
        return None
    spec = target.scd2_settings()
    return Scd2Options(
        valid_from=spec.valid_from,
        valid_to=spec.valid_to,
        is_current=spec.is_current,
        compare_columns=tuple(spec.compare_columns) if spec.compare_columns else None,
        close_missing=spec.close_missing,
    )
