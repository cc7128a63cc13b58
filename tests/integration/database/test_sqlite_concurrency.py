"""Two loads into one SQLite file at once both succeed: the second waits for the first."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from nexus_dagster.connectors.base import WriteRequest
from nexus_dagster.connectors.database import DatabaseConnector
from nexus_dagster.relation import Relation

SCHEMA = pa.schema([("id", pa.int64()), ("day", pa.string())])


def slow_relation(day: str, started: threading.Event | None = None) -> Relation:
    def batches() -> Iterator[pa.RecordBatch]:
        yield pa.RecordBatch.from_pylist([{"id": 1, "day": day}], schema=SCHEMA)
        if started is not None:
            started.set()
            time.sleep(1.5)  # hold the write transaction open
        yield pa.RecordBatch.from_pylist([{"id": 2, "day": day}], schema=SCHEMA)

    return Relation(SCHEMA, batches, day)


def test_concurrent_loads_wait_for_each_other(tmp_path: Path):
    db = tmp_path / "target.db"
    params = {"type": "sqlite", "database": str(db)}
    DatabaseConnector(params).write(slow_relation("d0"), WriteRequest(table="events"))
    started = threading.Event()
    errors: list[BaseException] = []

    def load(day: str, event: threading.Event | None) -> None:
        connector = DatabaseConnector(params)
        try:
            connector.write(slow_relation(day, event), WriteRequest(table="events"))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connector.close()

    first = threading.Thread(target=load, args=("d1", started))
    first.start()
    started.wait(10)
    second = threading.Thread(target=load, args=("d2", None))
    second.start()
    first.join(30)
    second.join(30)
    assert errors == []
    with sqlite3.connect(db) as con:
        rows = con.execute("select day, count(*) from events group by day order by day").fetchall()
    assert rows == [("d0", 2), ("d1", 2), ("d2", 2)]
