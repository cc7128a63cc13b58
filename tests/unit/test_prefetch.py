"""Read-ahead on a thread: same batches in the same order, errors raised, early stops clean."""

from __future__ import annotations

import threading

import pyarrow as pa
import pytest

from nexus_dagster.connectors.database import DatabaseConnector
from nexus_dagster.connectors.file import FileConnector
from nexus_dagster.relation import Relation
from nexus_dagster.run.prefetch import for_sources, prefetch

SCHEMA = pa.schema([("id", pa.int64())])


class Source:
    """A one-pass source that records the thread it runs on and whether it was closed."""

    def __init__(self, batches: int, fail_at: int | None = None):
        self.batches = batches
        self.fail_at = fail_at
        self.threads: set[str] = set()
        self.closed = False
        self.produced = 0

    def relation(self) -> Relation:
        def open_():  # type: ignore[no-untyped-def]
            try:
                for i in range(self.batches):
                    self.threads.add(threading.current_thread().name)
                    if i == self.fail_at:
                        raise ValueError(f"bad batch {i}")
                    self.produced += 1
                    yield pa.record_batch([pa.array([i, i])], schema=SCHEMA)
            finally:
                self.closed = True

        return Relation(SCHEMA, open_, "numbers")


def test_same_batches_in_order_from_another_thread() -> None:
    source = Source(50)
    batches = list(prefetch(source.relation()))
    assert [b.column(0)[0].as_py() for b in batches] == list(range(50))
    assert source.threads and threading.current_thread().name not in source.threads
    assert source.closed


def test_error_is_raised_in_the_reader() -> None:
    source = Source(10, fail_at=3)
    seen = []
    with pytest.raises(ValueError, match="bad batch 3"):
        for batch in prefetch(source.relation()):
            seen.append(batch)
    assert len(seen) == 3 and source.closed


def test_reader_stopping_early_stops_and_closes_the_source() -> None:
    source = Source(1000)
    for _ in prefetch(source.relation(), depth=2):
        break
    # the worker was joined: the source is closed and stopped within depth of the reader
    assert source.closed and source.produced <= 5
    assert not [t for t in threading.enumerate() if t.name.startswith("nexus-prefetch")]


def test_only_file_sources_read_ahead(tmp_path) -> None:  # type: ignore[no-untyped-def]
    relation = Source(1).relation()
    files = FileConnector({})
    assert for_sources(relation, [files]) is not relation
    database = DatabaseConnector({"url": f"sqlite:///{tmp_path / 'x.db'}"})
    assert for_sources(relation, [files, database]) is relation
    assert for_sources(relation, []) is relation
