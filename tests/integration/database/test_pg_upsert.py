"""PostgreSQL upsert in one counting statement (unique staged keys) and its fallback."""

from __future__ import annotations

import pyarrow as pa
import pytest

from nexus_dagster.connectors.base import WriteRequest
from nexus_dagster.relation import Relation
from tests.integration.database.helpers import execute, fetch

pytestmark = pytest.mark.postgres

SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string()), ("amount", pa.float64())])
UPSERT = WriteRequest(table="t", write_mode="upsert", key_columns=("id",))


def _relation(rows: list[tuple], schema: pa.Schema = SCHEMA) -> Relation:
    table = pa.Table.from_pylist([dict(zip(schema.names, r, strict=True)) for r in rows], schema)
    return Relation.from_table(table, batch_size=2)


def test_counts_inserted_updated_unchanged_and_leaves_unchanged_rows_alone(pg) -> None:
    pg.write(_relation([(1, "a", 1.0), (2, "b", None), (3, None, 3.0)]), UPSERT)
    before = dict(fetch(pg, "SELECT id, xmin::text FROM t"))
    result = pg.write(
        _relation([(1, "a", 1.0), (2, "b", None), (3, None, 3.5), (4, "d", 4.0)]), UPSERT
    )
    assert (result.rows_loaded, result.rows_inserted, result.rows_updated) == (4, 1, 1)
    assert result.extra["rows_unchanged"] == 2  # nulls compare as equal
    assert sorted(fetch(pg, "SELECT id, name, amount FROM t")) == [
        (1, "a", 1.0), (2, "b", None), (3, None, 3.5), (4, "d", 4.0)]
    after = dict(fetch(pg, "SELECT id, xmin::text FROM t"))
    assert after[1] == before[1] and after[2] == before[2]  # not rewritten
    assert after[3] != before[3]


def test_duplicate_staged_keys_fall_back_to_last_row_wins(pg) -> None:
    pg.write(_relation([(1, "a", 1.0), (2, "b", 2.0)]), UPSERT)
    result = pg.write(_relation([(1, "x", 1.0), (3, "y", 3.0), (1, "z", 1.0)]), UPSERT)
    # the general merge's counts: staged rows matched (twice for id 1) or not
    assert (result.rows_loaded, result.rows_inserted, result.rows_updated) == (3, 1, 2)
    assert sorted(fetch(pg, "SELECT id, name FROM t")) == [(1, "z"), (2, "b"), (3, "y")]


def test_key_only_columns_insert_the_new_keys(pg) -> None:
    keys = pa.schema([("id", pa.int64())])
    execute(pg, "CREATE TABLE t (id bigint PRIMARY KEY, note text DEFAULT 'kept')")
    pg.write(_relation([(1,), (2,)], keys), UPSERT)
    result = pg.write(_relation([(2,), (3,)], keys), UPSERT)
    assert (result.rows_inserted, result.rows_updated, result.extra["rows_unchanged"]) == (1, 0, 1)
    assert sorted(fetch(pg, "SELECT id, note FROM t")) == [(1, "kept"), (2, "kept"), (3, "kept")]
