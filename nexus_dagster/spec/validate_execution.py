"""Project checks of the ``execution`` block: the staging connection of a job split into steps,
and the sources such a job cannot read.

A ``steps: per_source`` job reads each source in its own step and loads in another, possibly on
another machine; a source that must be acknowledged by the process that read it, after every
target committed, cannot be split that way: ``after_load`` (delete/move what was read),
``cdc`` (confirm the replication slot) and connectors that commit what they read (Kafka
consumer offsets). Such jobs are refused here, with ``execution.steps: one`` as the fix.

Called from :func:`nexus_dagster.spec.validate.check_job`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nexus_dagster.connectors.base import Connector
from nexus_dagster.connectors.registry import connector_class
from nexus_dagster.errors import SpecError, SpecProblem, UnsupportedError
from nexus_dagster.spec.connections import endpoint_type
from nexus_dagster.spec.models import NAME_PATTERN
from nexus_dagster.spec.validate_operations import problem_at

__all__ = ["STAGING_TYPES", "acknowledged_by_reader", "execution_problems"]

#: connection types a split job may stage through
STAGING_TYPES = ("file", "s3", "azure_blob", "gcs")

_FIX_ONE = "set execution.steps: one (the source is then read and acknowledged in one step)"


def acknowledged_by_reader(source: Any) -> str | None:
    """Why ``source`` must be acknowledged by the process that read it (so it cannot be
    staged by a separate extraction step), or None."""
    if source.after_load is not None:
        return "after_load deletes or moves what the reading step read, after the load"
    if source.cdc:
        return "cdc confirms the replication slot from the reading connection, after the load"
    try:
        cls = connector_class(endpoint_type(source))
    except (SpecError, UnsupportedError, ImportError):
        return None  # reported by the endpoint checks
    from nexus_dagster.connectors.database import DatabaseConnector

    # the database connector's acknowledge confirms CDC reads only (refused above)
    if cls.acknowledge is not Connector.acknowledge and not issubclass(cls, DatabaseConnector):
        return (f"a {endpoint_type(source)} source commits what it read (e.g. consumer offsets) "
                "from its reading connection, after the load")
    return None


def execution_problems(spec: Any, connections: Mapping[str, Any]) -> list[SpecProblem]:
    """Problems of a job's ``execution`` block."""
    import re

    job = spec.job
    execution = job.execution
    if execution is None or execution.steps != "per_source":
        return []
    problems: list[SpecProblem] = []
    for index, source in enumerate(job.sources):
        why = acknowledged_by_reader(source)
        if why is not None:
            problems.append(problem_at(
                spec, ("execution", "steps"),
                f"steps: per_source cannot stage source {source.name!r} "
                f"(sources[{index}]): {why}", _FIX_ONE,
            ))
    name = execution.staging
    if name is not None and name in connections:
        kind = connections[name].type
        if kind not in STAGING_TYPES:
            problems.append(problem_at(
                spec, ("execution", "staging"),
                f"staging connection {name!r} is a {kind} connection; extractions are staged "
                "as Parquet files", f"name a {', '.join(STAGING_TYPES)} connection, or a folder",
            ))
    elif name is not None and re.match(NAME_PATTERN, name) and "." not in name:
        problems.append(problem_at(
            spec, ("execution", "staging"),
            f"staging {name!r} names no connection of connections.yaml",
            f"add connection {name!r} (file, s3, azure_blob or gcs), or write a folder as "
            f"./{name}",
        ))
    return problems
