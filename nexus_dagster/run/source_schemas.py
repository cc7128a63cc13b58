"""The columns of a job's sources, read without reading rows, for ``nexus validate``.

Local files are always read (a Parquet footer, a CSV header); database tables and queries only
with ``connect`` (``nexus validate --connect``, or ``NEXUS_VALIDATE_CONNECT=1``), since that
opens a network connection with the run's credentials. Other source types (object stores,
APIs, streams) are not read: reading them may cost money or consume messages. Their columns
stay unknown and nothing after them is checked.

Example:
    >>> problems, notes = column_check(project, connect=False)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from nexus_dagster import secrets
from nexus_dagster.errors import SpecProblem
from nexus_dagster.run.endpoints import open_endpoint, read_request
from nexus_dagster.spec.connections import endpoint_type
from nexus_dagster.spec.models import Connection
from nexus_dagster.spec.validate_columns import column_problems

__all__ = ["CONNECT_ENV", "column_check", "connect_allowed", "source_columns"]

CONNECT_ENV = "NEXUS_VALIDATE_CONNECT"
#: source types read without ``connect`` (no network)
LOCAL_TYPES = frozenset({"file"})
#: source types read with ``connect``
NETWORK_TYPES = frozenset({"database"})


def connect_allowed(flag: bool = False) -> bool:
    """The ``--connect`` flag, or ``NEXUS_VALIDATE_CONNECT`` set to 1/true/yes/on."""
    value = os.environ.get(CONNECT_ENV, "").strip().lower()
    return flag or value in {"1", "true", "yes", "on"}


def source_columns(
    spec, connections: Mapping[str, Connection], *, connect: bool = False
) -> tuple[dict[str, list[str] | None], list[str]]:
    """Each source's columns (None when not read) and why a schema could not be read.

    Args:
        spec: the loaded job (:class:`~nexus_dagster.spec.loader.JobSpec`).
        connections: the project's named connections.
        connect: also read database sources.
    """
    columns: dict[str, list[str] | None] = {}
    notes: list[str] = []
    for source in spec.job.sources:
        kind = endpoint_type(source)
        columns[source.name] = None
        if kind not in LOCAL_TYPES and not (connect and kind in NETWORK_TYPES):
            continue
        try:
            connector = open_endpoint(source, spec, connections)
            try:
                request = read_request(source, connector, spec.root)
                columns[source.name] = list(connector.read(request).schema.names)
            finally:
                connector.close()
        except Exception as exc:  # a schema we cannot read is not checked, and said so
            notes.append(secrets.mask(
                f"{spec.job.key}.{source.name}: columns not checked, the schema could not be "
                f"read ({type(exc).__name__}: {exc})"
            ))
    return columns, notes


def column_check(project, *, connect: bool = False) -> tuple[list[SpecProblem], list[str]]:
    """Unknown columns in every job of a project (see
    :func:`~nexus_dagster.spec.validate_columns.column_problems`), and notes on the sources
    whose schema could not be read."""
    problems: list[SpecProblem] = []
    notes: list[str] = []
    for spec in project.jobs:
        columns, found = source_columns(spec, project.connections, connect=connect)
        notes += found
        problems += column_problems(spec, columns)
    return problems, notes
