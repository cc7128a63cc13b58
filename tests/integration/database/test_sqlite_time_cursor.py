"""SQLite keeps timestamps as text; incremental bounds compare them as instants."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from nexus_dagster.connectors.base import Cursor, ReadRequest
from nexus_dagster.connectors.database import DatabaseConnector


@pytest.fixture
def events_db(tmp_path: Path) -> DatabaseConnector:
    path = tmp_path / "events.db"
    with sqlite3.connect(path) as con:
        con.execute("create table events (id integer primary key, updated_at timestamp)")
        con.executemany("insert into events values (?, ?)", [
            (1, "2023-12-31 23:59:59"),
            (2, "2024-01-01 00:00:00"),          # exactly the start value
            (3, "2024-01-01 00:00:00.500000"),
            (4, "2024-01-01T12:00:00"),
            (5, "2024-01-02 00:00:00"),
        ])
    return DatabaseConnector({"type": "sqlite", "database": str(path)})


def ids(connector: DatabaseConnector, cursor: Cursor) -> list[int]:
    table = connector.read(ReadRequest(table="events", cursor=cursor)).to_table()
    return sorted(table.column("id").to_pylist())


def test_inclusive_start_keeps_the_row_at_the_start(events_db):
    assert ids(events_db, Cursor("updated_at", "2024-01-01 00:00:00", inclusive=True)) == [
        2, 3, 4, 5]


def test_exclusive_cursor_and_upper_bound(events_db):
    start = dt.datetime(2024, 1, 1)
    assert ids(events_db, Cursor("updated_at", start)) == [3, 4, 5]
    window = Cursor("updated_at", start, inclusive=True, upper=dt.datetime(2024, 1, 2))
    assert ids(events_db, window) == [2, 3, 4]
