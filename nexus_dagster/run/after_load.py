"""A source's ``after_load``: delete or move what it read, once every target committed.

Plans call :func:`finish_source` after :meth:`~nexus_dagster.connectors.base.Connector.
acknowledge`, so a failed load never deletes or moves anything (the next run reads the same
data again). Database sources deleting by key get the keys they read from a
:class:`KeyCollector` wrapped around their relation.

Example:
    >>> collector = KeyCollector(relation, ["id"])  # doctest: +SKIP
    >>> for batch in collector.wrapped(): ...  # doctest: +SKIP
    >>> finish_source(source, connector, relation, request, collector, cursor_max, root)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from nexus_dagster.connectors.base import AfterLoad, Connector, ReadRequest
from nexus_dagster.errors import SpecError
from nexus_dagster.relation import Relation
from nexus_dagster.spec.models import DataSource

__all__ = ["KeyCollector", "finish_source", "key_collector"]


class KeyCollector:
    """Keeps the values of ``columns`` of every batch read through :meth:`wrapped`."""

    def __init__(self, relation: Relation, columns: list[str]):
        missing = [c for c in columns if c not in relation.schema.names]
        if missing:
            raise SpecError(
                f"after_load key_columns {missing} are not columns of {relation.name}; "
                f"columns: {relation.schema.names}"
            )
        self.relation = relation
        self.columns = columns
        self.batches: list[pa.RecordBatch] = []

    def wrapped(self) -> Relation:
        """The same relation; its key columns are kept as it is read."""

        def open_() -> Iterator[pa.RecordBatch]:
            for batch in self.relation:
                if batch.num_rows:
                    self.batches.append(batch.select(self.columns))
                yield batch

        return Relation(self.relation.schema, open_, self.relation.name, self.relation.stats)

    def keys(self) -> pa.Table:
        """Every key read so far."""
        schema = self.relation.schema
        return pa.Table.from_batches(
            self.batches, pa.schema([schema.field(c) for c in self.columns])
        )


def key_collector(source: DataSource, relation: Relation) -> KeyCollector | None:
    """A collector for a source deleting by ``after_load.key_columns``, else None."""
    action = source.after_load
    if action is None or not action.key_columns:
        return None
    return KeyCollector(relation, list(action.key_columns))


def finish_source(
    source: DataSource, connector: Connector, relation: Relation, request: ReadRequest,
    collector: KeyCollector | None, cursor_max: Any, root: Path,
) -> dict[str, int] | None:  # fmt: skip
    """Run the source's ``after_load`` (None without one); returns its counts."""
    spec = source.after_load
    if spec is None:
        return None
    move_to = connector.resolve_path(spec.move_to, Path(root)) if spec.move_to else None
    action = AfterLoad(
        delete=spec.delete,
        move_to=move_to,
        keys=collector.keys() if collector is not None else None,
        window_column=source.incremental_column,
        window_max=cursor_max,
    )
    return connector.after_load(relation, request, action)
