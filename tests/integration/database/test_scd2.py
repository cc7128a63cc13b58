"""write_mode scd2 on PostgreSQL, MariaDB and SQLite: versions closed and opened in one
transaction, unchanged rows untouched, NULL-safe comparison, a failed load changes nothing."""

from __future__ import annotations

import pyarrow as pa
import pytest

from nexus_dagster.connectors.base import Scd2Options, WriteRequest
from nexus_dagster.errors import LoadError
from nexus_dagster.relation import Relation
from tests.integration.database.helpers import execute, fetch

SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string()), ("city", pa.string())])


def _scd2(**options) -> WriteRequest:
    return WriteRequest(table="dim", write_mode="scd2", key_columns=("id",),
                        scd2=Scd2Options(**options))


def _relation(rows: list[tuple]) -> Relation:
    table = pa.Table.from_pylist([dict(zip(SCHEMA.names, r, strict=True)) for r in rows], SCHEMA)
    return Relation.from_table(table, batch_size=2)


def _versions(db) -> list[tuple]:
    """(id, name, city, closed?, current?) of every version, in key then age order."""
    rows = fetch(db, "SELECT id, name, city, valid_to IS NOT NULL, is_current, valid_from "
                     "FROM dim ORDER BY id, valid_from")
    return [(i, n, c, bool(closed), bool(cur)) for i, n, c, closed, cur, _ in rows]


def test_changed_row_closes_its_version_and_inserts_a_new_one(db) -> None:
    first = db.write(_relation([(1, "Ann", "Oslo"), (2, "Bob", None), (3, "Cy", "Rome")]),
                     _scd2())
    assert (first.rows_inserted, first.extra["rows_closed"], first.extra["rows_unchanged"]) == (
        3, 0, 0)
    # 1 changes city, 2 keeps its NULL city (unchanged), 3 unchanged, 4 is new
    result = db.write(
        _relation([(1, "Ann", "Bergen"), (2, "Bob", None), (3, "Cy", "Rome"), (4, "Di", "Nice")]),
        _scd2(),
    )
    assert result.rows_inserted == 2  # the new version of 1, and key 4
    assert result.extra["rows_closed"] == 1
    assert result.extra["rows_unchanged"] == 2
    assert _versions(db) == [
        (1, "Ann", "Oslo", True, False),
        (1, "Ann", "Bergen", False, True),
        (2, "Bob", None, False, True),
        (3, "Cy", "Rome", False, True),
        (4, "Di", "Nice", False, True),
    ]
    # the closed version ends exactly when the new one starts (one load time)
    ends = fetch(db, "SELECT valid_to FROM dim WHERE id = 1 AND NOT is_current")
    starts = fetch(db, "SELECT valid_from FROM dim WHERE id = 1 AND is_current")
    assert ends == starts


def test_null_to_value_and_value_to_null_are_changes(db) -> None:
    db.write(_relation([(1, "Ann", None), (2, "Bob", "Oslo")]), _scd2())
    result = db.write(_relation([(1, "Ann", "Oslo"), (2, "Bob", None)]), _scd2())
    assert (result.rows_inserted, result.extra["rows_closed"]) == (2, 2)
    assert [v for v in _versions(db) if v[4]] == [
        (1, "Ann", "Oslo", False, True), (2, "Bob", None, False, True)]


def test_compare_columns_limit_what_counts_as_a_change(db) -> None:
    db.write(_relation([(1, "Ann", "Oslo")]), _scd2(compare_columns=("city",)))
    result = db.write(_relation([(1, "Anna", "Oslo")]), _scd2(compare_columns=("city",)))
    assert (result.rows_inserted, result.extra["rows_unchanged"]) == (0, 1)
    assert _versions(db) == [(1, "Ann", "Oslo", False, True)]


def test_close_missing_closes_keys_absent_from_the_extract(db) -> None:
    db.write(_relation([(1, "Ann", "Oslo"), (2, "Bob", "Rome"), (3, "Cy", "Nice")]), _scd2())
    result = db.write(_relation([(1, "Ann", "Oslo"), (3, "Cy", "Nice")]),
                      _scd2(close_missing=True))
    assert (result.extra["rows_closed"], result.extra["rows_closed_missing"]) == (1, 1)
    assert [v[0] for v in _versions(db) if v[4]] == [1, 3]
    # without close_missing an absent key stays current
    db.write(_relation([(1, "Ann", "Oslo")]), _scd2())
    assert [v[0] for v in _versions(db) if v[4]] == [1, 3]


def test_close_missing_beyond_max_delete_fraction_fails_and_changes_nothing(db) -> None:
    db.write(_relation([(1, "Ann", "Oslo"), (2, "Bob", "Rome"), (3, "Cy", "Nice")]), _scd2())
    before = fetch(db, "SELECT * FROM dim ORDER BY id")
    request = _scd2(close_missing=True)
    request.max_delete_fraction = 0.5
    with pytest.raises(LoadError, match="max_delete_fraction"):
        db.write(_relation([(1, "Ann", "Lima")]), request)  # would close 2 of 3
    assert fetch(db, "SELECT * FROM dim ORDER BY id") == before


def test_failed_scd2_load_leaves_the_target_identical(db) -> None:
    execute(db, "CREATE TABLE dim (id BIGINT, name VARCHAR(20) NOT NULL, city VARCHAR(20), "
                "valid_from TIMESTAMP NULL, valid_to TIMESTAMP NULL, is_current BOOLEAN)")
    db.write(_relation([(1, "Ann", "Oslo"), (2, "Bob", "Rome")]), _scd2())
    before = fetch(db, "SELECT * FROM dim ORDER BY id, valid_from")
    # key 1 changes (closing its version), then key 3's new version breaks NOT NULL
    with pytest.raises(LoadError, match="left as it was"):
        db.write(_relation([(1, "Ann", "Bergen"), (2, "Bob", "Rome"), (3, None, "Nice")]),
                 _scd2())
    assert fetch(db, "SELECT * FROM dim ORDER BY id, valid_from") == before


def test_repeated_key_in_one_load_is_refused(db) -> None:
    with pytest.raises(LoadError, match="more than once"):
        db.write(_relation([(1, "Ann", "Oslo"), (1, "Ann", "Rome")]), _scd2())


def test_version_column_names_are_configurable(db) -> None:
    request = _scd2(valid_from="start_at", valid_to="end_at", is_current="active")
    db.write(_relation([(1, "Ann", "Oslo")]), request)
    db.write(_relation([(1, "Ann", "Rome")]), request)
    rows = fetch(db, "SELECT city, active, end_at IS NULL FROM dim ORDER BY start_at")
    assert [(city, bool(active), bool(open_)) for city, active, open_ in rows] == [
        ("Oslo", False, False), ("Rome", True, True)]
