"""``write_mode: overwrite`` after ``append`` runs replaces the whole dataset: the new object,
then the old part files deleted (a failed overwrite deletes nothing)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from nexus_dagster.connectors.base import ReadRequest, WriteRequest
from nexus_dagster.connectors.remote import is_part_of
from nexus_dagster.errors import ConnectorError, LoadError
from nexus_dagster.relation import Relation

from .conftest import Store


def relation(ids: list[int]) -> Relation:
    table = pa.table({"id": pa.array(ids, pa.int64())})
    return Relation(table.schema, lambda: iter(table.to_batches()))


def ids(store: Store, path: str) -> list[int]:
    rel = store.connector().read(ReadRequest(path=path))
    return pa.Table.from_batches(list(rel), schema=rel.schema).column("id").to_pylist()


def test_overwrite_after_appends_leaves_no_old_part(store: Store):
    conn = store.connector()
    for run, rows in (("run-one", [1, 2]), ("run-two", [3])):
        conn.write(relation(rows), WriteRequest(path="t/events.csv", write_mode="append",
                                                run_id=run))
    store.put("t/events/notes.txt", b"not a part file")
    store.put("t/events/part-old.parquet", b"another dataset's file")
    parts = [p for p in store.listing("t") if is_part_of(p, "t/events.csv")]
    assert len(parts) == 2 and ids(store, "t/events/*.csv") == [1, 2, 3]

    schema = pa.schema([("id", pa.int64())])

    def broken():
        yield pa.record_batch([pa.array([7])], schema=schema)
        raise RuntimeError("source died mid-stream")

    # a failed overwrite deletes nothing: the parts go only after the new object is committed
    with pytest.raises((LoadError, ConnectorError, RuntimeError)):
        conn.write(Relation(schema, broken), WriteRequest(path="t/events.csv",
                                                          write_mode="overwrite"))
    assert [p for p in store.listing("t") if is_part_of(p, "t/events.csv")] == parts

    result = conn.write(relation([9, 10]), WriteRequest(path="t/events.csv",
                                                        write_mode="overwrite"))
    assert result.extra["parts_removed"] == 2
    assert store.listing("t") == ["t/events.csv", "t/events/notes.txt",
                                  "t/events/part-old.parquet"]
    assert ids(store, "t/events.csv") == [9, 10]

    # an overwrite with no parts around removes nothing and says so by omission
    again = conn.write(relation([11]), WriteRequest(path="t/events.csv", write_mode="overwrite"))
    assert "parts_removed" not in again.extra


def test_part_names_are_recognised_exactly():
    assert is_part_of("a/orders/part-20240501T120000000000Z-1a2b3c4d.csv.gz", "a/orders.csv.gz")
    assert not is_part_of("a/orders/part-20240501T120000000000Z-1a2b3c4d.csv", "a/orders.csv.gz")
    assert not is_part_of("a/orders/sub/part-20240501T120000000000Z-1a.csv", "a/orders.csv")
    assert not is_part_of("a/orders/part-old.csv", "a/orders.csv")
    assert not is_part_of("b/orders/part-20240501T120000000000Z-1a.csv", "a/orders.csv")
