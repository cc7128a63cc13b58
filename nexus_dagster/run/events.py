"""What a run reports: a target committed, a source may advance its cursor.

Plans yield these events; the Dagster layer turns them into materializations, the Python API
into metrics. They hold no connection and no secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from nexus_dagster.connectors.base import LoadResult
from nexus_dagster.spec.models import DataSource, DataTarget

if TYPE_CHECKING:  # the rules' module imports DuckDB; events stay light
    from nexus_dagster.transforms.rules_sql import RuleCounts

__all__ = ["Event", "SourceExtracted", "TargetLoaded"]


@dataclass
class TargetLoaded:
    """A target committed its load."""

    target: DataTarget
    result: LoadResult
    schema: pa.Schema
    rows_extracted: int
    rows_transformed: int
    #: source name -> the schema it was read with (for column lineage)
    source_schemas: dict[str, pa.Schema] = field(default_factory=dict)
    #: what the job's row rules found (rows passed / quarantined per rule), None without rules
    rules: RuleCounts | None = None


@dataclass
class SourceExtracted:
    """Emitted once every target committed: the source's rows and its new cursor."""

    source: DataSource
    rows: int
    schema: pa.Schema
    cursor_before: dict[str, Any] | None
    cursor_after: dict[str, Any] | None
    state: dict[str, Any] | None = None
    #: what the source's ``after_load`` did (``files_deleted``, ``files_moved``,
    #: ``rows_deleted``), None without one
    after_load: dict[str, int] | None = None


#: what :func:`nexus_dagster.run.execute` yields
Event = TargetLoaded | SourceExtracted
