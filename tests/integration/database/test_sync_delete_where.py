"""write_mode sync (upsert + delete what a full extract lacks, with a safety limit) and
delete_where retention, on PostgreSQL, MariaDB and SQLite, each in the load's transaction."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from nexus_dagster.connectors.base import WriteRequest
from nexus_dagster.errors import LoadError
from nexus_dagster.relation import Relation
from tests.integration.database.helpers import fetch

SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string()), ("day", pa.date32())])
D1, D2, D3 = dt.date(2024, 1, 1), dt.date(2024, 6, 1), dt.date(2024, 12, 1)


def _relation(rows: list[tuple]) -> Relation:
    table = pa.Table.from_pylist([dict(zip(SCHEMA.names, r, strict=True)) for r in rows], SCHEMA)
    return Relation.from_table(table, batch_size=2)


def _sync(fraction: float = 0.5) -> WriteRequest:
    return WriteRequest(table="t", write_mode="sync", key_columns=("id",),
                        max_delete_fraction=fraction)


def test_sync_upserts_and_deletes_keys_absent_from_the_extract(db) -> None:
    db.write(_relation([(1, "a", D1), (2, "b", D1), (3, "c", D1), (4, "d", D1)]), _sync())
    result = db.write(_relation([(1, "a", D1), (2, "B", D2), (4, "d", D1), (5, "e", D3)]),
                      _sync())
    assert result.extra["rows_deleted"] == 1
    assert (result.rows_inserted, result.rows_updated) == (1, 1)
    assert sorted(fetch(db, "SELECT id, name FROM t")) == [
        (1, "a"), (2, "B"), (4, "d"), (5, "e")]


def test_sync_deleting_more_than_max_delete_fraction_fails_and_changes_nothing(db) -> None:
    db.write(_relation([(1, "a", D1), (2, "b", D1), (3, "c", D1), (4, "d", D1)]), _sync())
    before = sorted(fetch(db, "SELECT id, name, day FROM t"))
    with pytest.raises(LoadError, match=r"max_delete_fraction 0\.5"):
        db.write(_relation([(1, "A", D1)]), _sync())  # would delete 3 of 4
    with pytest.raises(LoadError, match="max_delete_fraction"):
        db.write(_relation([]), _sync())  # an empty extract would empty the table
    assert sorted(fetch(db, "SELECT id, name, day FROM t")) == before
    result = db.write(_relation([(1, "A", D1)]), _sync(1.0))  # raised limit: allowed
    assert result.extra["rows_deleted"] == 3


def test_delete_where_removes_matching_rows_in_the_load(db) -> None:
    db.write(_relation([(1, "a", D1), (2, "b", D2)]), _sync())
    request = WriteRequest(table="t", write_mode="upsert", key_columns=("id",),
                           delete_where="day < '2024-05-01' and name != 'keep'")
    result = db.write(_relation([(3, "c", D3), (4, "keep", D1)]), request)
    assert result.extra["rows_deleted_where"] == 1
    assert sorted(fetch(db, "SELECT id FROM t")) == [(2,), (3,), (4,)]


def test_delete_where_on_an_unknown_column_fails_the_load_and_changes_nothing(db) -> None:
    db.write(_relation([(1, "a", D1)]), WriteRequest(table="t"))
    request = WriteRequest(table="t", delete_where="order_date < '2024-01-01'")
    with pytest.raises(LoadError, match="order_date"):
        db.write(_relation([(2, "b", D2)]), request)
    assert fetch(db, "SELECT id FROM t") == [(1,)]
