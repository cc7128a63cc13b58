"""Reading: query sources, incremental cursors, laziness, streaming in batches, errors."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

import pyarrow as pa
import pytest

from nexus_dagster.connectors.base import Cursor, ReadRequest, WriteRequest
from nexus_dagster.connectors.database import DatabaseConnector
from nexus_dagster.errors import ConnectorError
from nexus_dagster.relation import Relation
from tests.integration.database.helpers import UTC, execute, scalar


def _events(db: DatabaseConnector, count: int = 10) -> None:
    base = dt.datetime(2024, 1, 1, tzinfo=UTC)
    table = pa.table(
        {
            "id": pa.array(range(1, count + 1), pa.int64()),
            "kind": ["odd" if i % 2 else "even" for i in range(1, count + 1)],
            "at": pa.array(
                [base + dt.timedelta(hours=i) for i in range(1, count + 1)],
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )
    db.write(Relation.from_table(table), WriteRequest(table="events"))


def test_query_source(db):
    _events(db)
    relation = db.read(ReadRequest(query="SELECT id, kind FROM events WHERE kind = 'odd';"))
    assert relation.schema.names == ["id", "kind"]
    assert sorted(relation.to_table().column("id").to_pylist()) == [1, 3, 5, 7, 9]


def test_query_with_percent_and_cursor(db):
    _events(db)
    relation = db.read(
        ReadRequest(
            query="SELECT id, kind FROM events WHERE kind LIKE 'o%'", cursor=Cursor("id", 5)
        )
    )
    assert sorted(relation.to_table().column("id").to_pylist()) == [7, 9]
    assert relation.stats["cursor_max"] == 9


@pytest.mark.parametrize(
    ("cursor", "expected"),
    [
        (Cursor("id", 7), [8, 9, 10]),
        (Cursor("id", 7, inclusive=True), [7, 8, 9, 10]),
        (Cursor("at", "2024-01-01 08:00:00"), [9, 10]),
        (Cursor("at", "2024-01-01 08:00:00", inclusive=True), [8, 9, 10]),
        (Cursor("at", dt.datetime(2024, 1, 1, 9, tzinfo=UTC)), [10]),
        (Cursor("id", 10), []),
    ],
)
def test_incremental(db, cursor, expected):
    _events(db)
    relation = db.read(ReadRequest(table="events", cursor=cursor, batch_size=2))
    assert relation.stats["cursor_max"] is None
    ids = sorted(relation.to_table().column("id").to_pylist())
    assert ids == expected
    top = relation.stats["cursor_max"]
    if not expected:
        assert top is None
    elif cursor.column == "id":
        assert top == 10
    else:
        assert top.replace(tzinfo=top.tzinfo or UTC) == dt.datetime(2024, 1, 1, 10, tzinfo=UTC)


def test_relation_is_lazy(db):
    _events(db, 3)
    relation = db.read(ReadRequest(table="events"))
    execute(db, "DELETE FROM events WHERE id = 1")  # after read(), before iteration
    assert sorted(relation.to_table().column("id").to_pylist()) == [2, 3]


def test_unknown_cursor_column(db):
    _events(db, 1)
    with pytest.raises(Exception, match="nope"):
        db.read(ReadRequest(table="events", cursor=Cursor("nope", 1)))


def test_missing_table(db):
    with pytest.raises(ConnectorError) as info:
        db.read(ReadRequest(table="no_such_table"))
    message = str(info.value)
    assert "no_such_table" in message
    assert db.describe() in message
    assert "nexus_pw" not in message


@pytest.mark.parametrize("fixture", ["pg_url", "mariadb_url"])
def test_wrong_password(request, fixture):
    from sqlalchemy.engine import make_url

    url = make_url(request.getfixturevalue(fixture)).set(password="S3cret-Wr0ng!pw")
    connector = DatabaseConnector({"url": url.render_as_string(hide_password=False)})
    assert not connector.test_connection()
    with pytest.raises(ConnectorError) as info:
        connector.read(ReadRequest(table="anything"))
    assert "S3cret-Wr0ng!pw" not in str(info.value)
    assert "S3cret" not in repr(info.value.__cause__)
    assert "***" in str(info.value)
    rel = Relation.from_table(pa.table({"a": [1]}))
    with pytest.raises(ConnectorError) as info:
        connector.write(rel, WriteRequest(table="anything"))
    assert "S3cret" not in str(info.value)


def test_test_connection(db):
    assert db.test_connection() is True
    closed_port = {"type": "postgresql", "host": "127.0.0.1", "port": 1, "password": "x"}
    assert DatabaseConnector(closed_port).test_connection() is False


@pytest.mark.slow
@pytest.mark.parametrize("fixture", ["pg_url", "mariadb_url", "sqlite_url"])
def test_streams_large_table_in_batches(request, fixture, capsys):
    connector = DatabaseConnector({"url": request.getfixturevalue(fixture)})
    rows = 200_000
    table = pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),
            "amount": pa.array(
                [Decimal(i % 100_000) / 100 for i in range(rows)], pa.decimal128(12, 2)
            ),
            "name": pa.array([f"name {i}" for i in range(rows)]),
            "at": pa.array(range(rows), pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        }
    )
    start = time.perf_counter()
    connector.write(Relation.from_table(table, batch_size=50_000), WriteRequest(table="big"))
    write_s = time.perf_counter() - start

    relation = connector.read(ReadRequest(table="big", batch_size=10_000))
    start = time.perf_counter()
    sizes = [batch.num_rows for batch in relation]
    read_s = time.perf_counter() - start
    assert len(sizes) == 20 and set(sizes) == {10_000}
    assert relation.stats["rows_read"] == rows

    start = time.perf_counter()
    result = connector.write(
        connector.read(ReadRequest(table="big", batch_size=50_000)),
        WriteRequest(table="big_copy", write_mode="overwrite"),
    )
    copy_s = time.perf_counter() - start
    assert result.rows_loaded == rows == scalar(connector, "SELECT count(*) FROM big_copy")
    with capsys.disabled():
        print(
            f"\n[{fixture}] 200k rows: write {rows / write_s:,.0f} rows/s, "
            f"read {rows / read_s:,.0f} rows/s, copy (overwrite) {rows / copy_s:,.0f} rows/s"
        )
    connector.dispose()
