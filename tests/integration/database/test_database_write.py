"""Writing: append / overwrite / upsert semantics and all-or-nothing loads on every database."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pytest
import sqlalchemy as sa

from nexus_dagster.connectors.base import ReadRequest, WriteRequest
from nexus_dagster.errors import LoadError
from nexus_dagster.relation import Relation
from tests.integration.database.helpers import execute, fetch, scalar

SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string())])


def _relation(rows: list[tuple[int, str | None]], batch_size: int = 2) -> Relation:
    table = pa.Table.from_pylist([{"id": i, "name": n} for i, n in rows], schema=SCHEMA)
    return Relation.from_table(table, batch_size=batch_size)


def _content(db, table: str = "t") -> list[tuple]:
    return sorted(fetch(db, f"SELECT id, name FROM {table}"))


def test_append(db):
    first = db.write(_relation([(1, "a"), (2, "b")]), WriteRequest(table="t"))
    assert first.rows_loaded == 2 and first.extra["created_table"]
    db.write(_relation([(2, "b"), (3, "c")]), WriteRequest(table="t"))
    assert _content(db) == [(1, "a"), (2, "b"), (2, "b"), (3, "c")]


def test_overwrite(db):
    db.write(_relation([(1, "a"), (2, "b")]), WriteRequest(table="t"))
    result = db.write(_relation([(5, "e")]), WriteRequest(table="t", write_mode="overwrite"))
    assert result.rows_loaded == 1 and not result.extra["created_table"]
    assert _content(db) == [(5, "e")]
    db.write(_relation([]), WriteRequest(table="t", write_mode="overwrite"))
    assert _content(db) == []


def test_upsert_creates_primary_key_and_merges(db):
    upsert = WriteRequest(table="t", write_mode="upsert", key_columns=("id",))
    first = db.write(_relation([(1, "a"), (2, "b")]), upsert)
    assert (first.rows_inserted, first.rows_updated) == (2, 0)
    second = db.write(_relation([(2, "B"), (3, "c")]), upsert)
    assert (second.rows_loaded, second.rows_inserted, second.rows_updated) == (2, 1, 1)
    assert _content(db) == [(1, "a"), (2, "B"), (3, "c")]
    # the created table has the key: a plain duplicate append is refused
    with pytest.raises(LoadError):
        db.write(_relation([(1, "dup")]), WriteRequest(table="t"))


def test_upsert_duplicate_keys_in_data_last_wins(db):
    upsert = WriteRequest(table="t", write_mode="upsert", key_columns=("id",))
    db.write(_relation([(1, "a")]), upsert)
    db.write(_relation([(1, "x"), (2, "y"), (1, "z")], batch_size=1), upsert)
    assert _content(db) == [(1, "z"), (2, "y")]


def test_upsert_only_key_columns(db):
    upsert = WriteRequest(table="k", write_mode="upsert", key_columns=("id",))
    data = pa.table({"id": pa.array([1, 2, 1], pa.int64())})
    db.write(Relation.from_table(data), upsert)
    db.write(Relation.from_table(data), upsert)
    assert sorted(fetch(db, "SELECT id FROM k")) == [(1,), (2,)]


def test_upsert_needs_unique_key(db):
    execute(db, "CREATE TABLE nokey (id bigint, name varchar(20))")
    with pytest.raises(LoadError) as info:
        db.write(
            _relation([(1, "a")]),
            WriteRequest(table="nokey", write_mode="upsert", key_columns=("id",)),
        )
    assert "nokey" in str(info.value) and "(id)" in str(info.value)


def test_upsert_with_composite_unique_index(db):
    execute(
        db,
        "CREATE TABLE c (a bigint NOT NULL, b varchar(10) NOT NULL, v varchar(10))",
        "CREATE UNIQUE INDEX c_ab ON c (a, b)",
    )
    schema = pa.schema([("a", pa.int64()), ("b", pa.string()), ("v", pa.string())])
    upsert = WriteRequest(table="c", write_mode="upsert", key_columns=("b", "a"))
    rows = [{"a": 1, "b": "x", "v": "1"}, {"a": 1, "b": "y", "v": "2"}]
    db.write(Relation.from_table(pa.Table.from_pylist(rows, schema=schema)), upsert)
    rows = [{"a": 1, "b": "y", "v": "3"}]
    db.write(Relation.from_table(pa.Table.from_pylist(rows, schema=schema)), upsert)
    assert sorted(fetch(db, "SELECT a, b, v FROM c")) == [(1, "x", "1"), (1, "y", "3")]


def test_key_column_missing_from_data(db):
    with pytest.raises(LoadError, match="customer_id"):
        db.write(
            _relation([(1, "a")]),
            WriteRequest(table="t", write_mode="upsert", key_columns=("customer_id",)),
        )
    assert not _exists(db, "t")


def test_data_column_missing_from_table(db):
    execute(db, "CREATE TABLE narrow (id bigint)")
    with pytest.raises(LoadError, match="name"):
        db.write(_relation([(1, "a")]), WriteRequest(table="narrow"))


def _exists(db, table: str) -> bool:
    with db.engine.connect() as connection:
        return sa.inspect(connection).has_table(table)


# --- all or nothing --------------------------------------------------------------------------
BAD_LAST_BATCH = {
    "not_null": (7, None),
    "too_long": (7, "this value is far too long"),
    "duplicate_key": (1, "dup"),
}


def _failing_relation(kind: str) -> Relation:
    """Three batches; the last one is bad (a constraint violation, or the source dies)."""
    good = [[(10 + i, "ok") for i in range(3)], [(20 + i, "ok") for i in range(3)]]

    def batches() -> Iterator[pa.RecordBatch]:
        for rows in good:
            yield _relation(rows, 10).to_table().to_batches()[0]
        if kind == "source_fails":
            raise RuntimeError("source died in the last batch")
        yield _relation([(30, "ok"), BAD_LAST_BATCH[kind]], 10).to_table().to_batches()[0]

    return Relation(SCHEMA, batches, "failing")


# a duplicate key fails only an append: overwrite replaces and upsert merges by design
FAILING_LOADS = [
    (mode, kind)
    for mode in ("append", "overwrite", "upsert")
    for kind in ("not_null", "too_long", "duplicate_key", "source_fails")
    if kind != "duplicate_key" or mode == "append"
]


@pytest.mark.parametrize(("mode", "kind"), FAILING_LOADS)
def test_failed_load_leaves_target_unchanged(db, mode, kind):
    execute(
        db,
        "CREATE TABLE t (id bigint PRIMARY KEY, name varchar(10) NOT NULL)",
        "INSERT INTO t (id, name) VALUES (1, 'a'), (2, 'b')",
    )
    before = _content(db)
    request = WriteRequest(table="t", write_mode=mode, key_columns=("id",))
    if kind == "too_long" and db.backend == "sqlite":
        # SQLite does not enforce VARCHAR lengths: the same load simply succeeds there
        db.write(_failing_relation(kind), request)
        assert scalar(db, "SELECT count(*) FROM t WHERE id = 7") == 1
        return
    with pytest.raises((LoadError, RuntimeError)) as info:
        db.write(_failing_relation(kind), request)
    assert "nexus_pw" not in str(info.value)
    if kind != "source_fails":
        assert isinstance(info.value, LoadError) and "'t'" in str(info.value)
    assert _content(db) == before


@pytest.mark.parametrize("mode", ["append", "overwrite", "upsert"])
def test_failed_load_into_new_table_leaves_no_table(db, mode):
    request = WriteRequest(table="fresh", write_mode=mode, key_columns=("id",))
    with pytest.raises(LoadError):
        db.write(_failing_relation("source_fails"), request)
    assert not _exists(db, "fresh")


def test_append_result_and_location(db):
    result = db.write(_relation([(1, "a")]), WriteRequest(table="t"))
    assert result.location == f"{db.describe()} t"
    assert scalar(db, "SELECT count(*) FROM t") == 1
    assert db.read(ReadRequest(table="t")).to_table().num_rows == 1
