"""PostgreSQL bulk paths that run on threads (connectors/sql/load.py, connectors/sql/pg_copy.py):
the COPY FROM STDIN that formats and sends on its own thread, and the COPY TO STDOUT read
through a pipe into Arrow in 1 MB blocks."""

from __future__ import annotations

import datetime as dt
import threading
import time
import weakref
from collections.abc import Iterator
from decimal import Decimal

import psycopg2
import pyarrow as pa
import pytest
import sqlalchemy as sa

from nexus_dagster.connectors.base import ReadRequest
from nexus_dagster.connectors.database import DatabaseConnector
from nexus_dagster.connectors.sql import load, pg_copy
from nexus_dagster.errors import ConnectorError

pytestmark = pytest.mark.postgres

SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("note", pa.string()),
        ("amount", pa.decimal128(12, 2)),
        ("at", pa.timestamp("us", tz="UTC")),
    ]
)
DDL = "CREATE TABLE t (id bigint, note text, amount numeric(12,2), at timestamptz)"
NOTES = ["plain", "", None, 'a "quoted", comma', "two\nlines", "é ü 日本", "back\\slash"]


def _batch(start: int, rows: int) -> pa.RecordBatch:
    ids = list(range(start, start + rows))
    return pa.record_batch(
        [
            pa.array(ids, pa.int64()),
            pa.array([NOTES[i % len(NOTES)] for i in ids], pa.string()),
            pa.array(
                [None if i % 11 == 0 else Decimal(i % 100000) / 100 for i in ids],
                pa.decimal128(12, 2),
            ),
            pa.array(
                [
                    dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=i, microseconds=i)
                    for i in ids
                ],
                pa.timestamp("us", tz="UTC"),
            ),
        ],
        schema=SCHEMA,
    )


@pytest.fixture
def engine(pg_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(pg_url)
    with engine.begin() as connection:
        connection.exec_driver_sql(DDL)
    yield engine
    engine.dispose()


def _copy(engine: sa.Engine, batches: Iterator[pa.RecordBatch]) -> int:
    with engine.begin() as connection:
        dbapi = connection.connection.dbapi_connection
        return load.pg_copy(dbapi, "t", ["id", "note", "amount", "at"], batches)


def _rows(engine: sa.Engine) -> list[tuple]:
    with engine.connect() as connection:
        return [tuple(r) for r in connection.exec_driver_sql("SELECT * FROM t ORDER BY id")]


def test_pg_copy_loads_every_row_of_batches_larger_than_a_csv_chunk(engine: sa.Engine) -> None:
    sizes = [load.CSV_ROWS * 2 + 5, 1, 0, load.CSV_ROWS - 1]
    batches, start = [], 0
    for size in sizes:
        batches.append(_batch(start, size))
        start += size

    assert _copy(engine, iter(batches)) == start
    expected = pa.Table.from_batches(batches).to_pylist()
    assert _rows(engine) == [tuple(row.values()) for row in expected]


def test_pg_copy_holds_a_bounded_number_of_batches_however_many_it_loads(
    engine: sa.Engine,
) -> None:
    produced: list[weakref.ref[pa.RecordBatch]] = []
    most_alive = 0
    rows = _batch(0, 120_000)  # sliced at once: the caller's side is far faster than the COPY

    def batches(count: int) -> Iterator[pa.RecordBatch]:
        nonlocal most_alive
        for index in range(count):
            batch = rows.slice(index * 2000, 2000)
            produced.append(weakref.ref(batch))
            most_alive = max(most_alive, sum(ref() is not None for ref in produced))
            yield batch

    assert _copy(engine, batches(60)) == 120_000
    # queued for the COPY thread, formatted by it, held by the caller's loop, the new one
    assert most_alive <= load.QUEUED_BATCHES + 3


def test_pg_copy_raises_the_batches_own_error_and_loads_nothing(engine: sa.Engine) -> None:
    def failing() -> Iterator[pa.RecordBatch]:
        yield _batch(0, 1000)
        yield _batch(1000, 1000)
        raise ValueError("the source broke")

    with pytest.raises(ValueError, match="the source broke"):
        _copy(engine, failing())
    assert _rows(engine) == []


def test_pg_copy_raises_the_servers_error_and_loads_nothing(engine: sa.Engine) -> None:
    wrong = pa.schema([("id", pa.string()), *list(SCHEMA)[1:]])
    good = _batch(0, 100)
    bad = pa.record_batch([pa.array(["not a number"] * 100), *good.columns[1:]], schema=wrong)

    with pytest.raises(psycopg2.errors.InvalidTextRepresentation, match="not a number"):
        _copy(engine, iter([good.cast(wrong), bad, good.cast(wrong)]))
    assert _rows(engine) == []


def test_pg_read_batches_reads_values_across_many_blocks_exactly(engine: sa.Engine) -> None:
    rows = 40_000  # ~2.5 MB of CSV: several 1 MB blocks, rows with newlines and quotes
    _copy(engine, iter([_batch(0, rows)]))
    statement = sa.select(sa.text("*")).select_from(sa.table("t")).order_by(sa.text("id"))

    with engine.connect() as connection:
        batches = list(pg_copy.read_batches(connection, statement, SCHEMA, 7000))

    assert [b.num_rows for b in batches] == [7000] * 5 + [5000]
    assert pa.Table.from_batches(batches).equals(pa.Table.from_batches([_batch(0, rows)]))


def test_pg_read_of_a_row_longer_than_a_block_names_the_table_and_the_switch_that_reads_it(
    engine: sa.Engine, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO t VALUES (1, repeat('x', 2 * 1024 * 1024), 1, now())"
        )
    connector = DatabaseConnector({"url": pg_url})
    try:
        relation = connector.read(ReadRequest(table="t"))
        with pytest.raises(ConnectorError) as failure:
            relation.to_table()
    finally:
        connector.dispose()

    message = str(failure.value)
    assert "table 't'" in message
    assert "longer than the 1 MB" in message
    assert "NEXUS_FAST_READ=0" in message
    monkeypatch.setenv("NEXUS_FAST_READ", "0")
    connector = DatabaseConnector({"url": pg_url})
    try:
        assert len(connector.read(ReadRequest(table="t")).to_table()["note"][0].as_py()) == 2 << 20
    finally:
        connector.dispose()


def _fill_notes(engine: sa.Engine, rows: int, width: int) -> None:
    """``rows`` rows of ``width``-character notes (about ``rows * width`` bytes of CSV)."""
    with engine.begin() as connection:
        connection.exec_driver_sql(
            f"INSERT INTO t SELECT g, repeat(md5(g::text), {width} / 32), mod(g, 1000), now() "
            f"FROM generate_series(1, {rows}) g"
        )


def test_pg_read_holds_a_few_blocks_ahead_of_a_consumer_that_is_slower_than_the_server(
    engine: sa.Engine,
) -> None:
    _fill_notes(engine, 80_000, 320)  # ~28 MB of CSV: 28 blocks of 1 MB
    statement = sa.select(sa.text("*")).select_from(sa.table("t"))
    before = pa.total_allocated_bytes()
    held: list[int] = []
    rows = 0

    with engine.connect() as connection:
        for batch in pg_copy.read_batches(connection, statement, SCHEMA, 2000):
            rows += batch.num_rows
            if len(held) < 3:  # the target is busy: the server has long sent the next blocks
                time.sleep(0.5)
            held.append(pa.total_allocated_bytes() - before)

    assert rows == 80_000
    # pyarrow alone reads up to 32 blocks ahead (26-30 MB held here); READ_AHEAD_BLOCKS (4)
    # 1 MB blocks, their parsed columns and the batches being cut: 6-13 MB
    assert pg_copy.READ_AHEAD_BLOCKS == 4
    assert max(held) < 16 * 2**20


def test_pg_read_completes_when_the_reader_needs_more_blocks_than_it_may_read_ahead(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill_notes(engine, 9_000, 320)  # ~3 MB: pyarrow needs the next block to finish a batch
    monkeypatch.setattr(pg_copy, "READ_AHEAD_BLOCKS", 1)
    statement = sa.select(sa.text("*")).select_from(sa.table("t")).order_by(sa.text("id"))

    with engine.connect() as connection:
        batches = list(pg_copy.read_batches(connection, statement, SCHEMA, 4000))

    assert [b.num_rows for b in batches] == [4000, 4000, 1000]
    assert batches[-1]["id"][-1].as_py() == 9_000


def test_pg_read_stopped_after_one_batch_ends_its_copy_while_the_reader_waits_to_read_on(
    engine: sa.Engine,
) -> None:
    _fill_notes(engine, 40_000, 320)  # ~14 MB: the reader waits with 4 blocks read ahead
    statement = sa.select(sa.text("*")).select_from(sa.table("t"))

    with engine.connect() as connection:
        batches = pg_copy.read_batches(connection, statement, SCHEMA, 2000)
        first = next(batches)
        time.sleep(0.3)
        batches.close()
        after = connection.exec_driver_sql("SELECT count(*) FROM t").scalar_one()

    assert first.num_rows == 2000
    assert after == 40_000
    assert not [t for t in threading.enumerate() if t.name == "nexus-copy-csv"]
