"""How a run reads one of its sources: the request (from the stored cursor, or a partition
window's range, with the stored state and the sensor's file) and the rows after the cursor.

The general plan and a split job's extraction steps (:mod:`nexus_dagster.run.staging`) read
sources the same way through these two functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nexus_dagster.connectors.base import Connector, ReadRequest
from nexus_dagster.relation import Relation
from nexus_dagster.run.cursors import filter_cursor, start_cursor, window_cursor
from nexus_dagster.run.endpoints import read_request
from nexus_dagster.spec.models import DataSource

if TYPE_CHECKING:
    from nexus_dagster.run.plan import RunContext

__all__ = ["cursor_filtered", "run_read_request"]


def run_read_request(context: RunContext, source: DataSource, connector: Connector
                     ) -> ReadRequest:  # fmt: skip
    """What ``source`` reads in ``context``'s run: from its stored cursor (a partition run:
    the window's range of its ``incremental_column``), with its stored state and the sensor's
    file."""
    cursor = start_cursor(source, context.stored_cursors.get(source.name))
    if context.window is not None and source.incremental_column:
        cursor = window_cursor(source.incremental_column, context.window)
    return read_request(
        source, connector, context.spec.root, cursor=cursor,
        state=context.stored_states.get(source.name),
        file_path=context.source_files.get(source.name),
    )  # fmt: skip


def cursor_filtered(relation: Relation, request: ReadRequest, connector: Connector,
                    source: DataSource) -> Relation:  # fmt: skip
    """The rows of ``relation`` after the request's cursor: as read where the connector
    filtered them itself, else filtered here."""
    if request.cursor and not connector.supports_incremental:
        return filter_cursor(relation, request.cursor, source.name)
    return relation
