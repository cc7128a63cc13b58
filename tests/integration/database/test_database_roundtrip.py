"""Round trips through read() and write() between PostgreSQL, MariaDB and SQLite."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa

from nexus_dagster.connectors.base import Cursor, ReadRequest, WriteRequest
from nexus_dagster.relation import Relation
from tests.integration.database.helpers import (
    TYPED_ROWS,
    TYPED_SCHEMA,
    UTC,
    execute,
    rows_of,
    sorted_expected,
    typed_relation,
)

PG_SOURCE_DDL = (
    "CREATE TABLE src (id bigint, n integer, amount numeric(12,2), name text, "
    "created timestamptz, flag boolean, day date)"
)


def _load_pg_source(pg) -> None:
    execute(pg, PG_SOURCE_DDL)
    pg.write(typed_relation(), WriteRequest(table="src"))


def test_pg_source_schema_is_exact(pg):
    _load_pg_source(pg)
    relation = pg.read(ReadRequest(table="src"))
    assert relation.schema == TYPED_SCHEMA
    assert rows_of(relation) == sorted_expected(TYPED_ROWS)
    amounts = {r["amount"] for r in TYPED_ROWS} - {None}
    assert {r["amount"] for r in rows_of(pg.read(ReadRequest(table="src")))} - {None} == amounts
    assert all(isinstance(a, Decimal) for a in amounts)


def test_pg_to_mariadb_to_pg(pg, maria):
    _load_pg_source(pg)
    result = maria.write(pg.read(ReadRequest(table="src", batch_size=3)), WriteRequest(table="dst"))
    assert result.rows_loaded == len(TYPED_ROWS)
    assert "***" in result.location and "nexus_pw" not in result.location

    # MariaDB has no time-zone-aware type with a full range: DATETIME(6) holding UTC
    back = maria.read(ReadRequest(table="dst", options={"assume_timezone": "UTC"}))
    assert back.schema == TYPED_SCHEMA
    assert rows_of(back) == sorted_expected(TYPED_ROWS)

    pg.write(back, WriteRequest(table="again"))
    again = pg.read(ReadRequest(table="again"))
    assert again.schema == TYPED_SCHEMA
    assert rows_of(again) == sorted_expected(TYPED_ROWS)


def test_mariadb_to_pg(pg, maria):
    execute(
        maria,
        "CREATE TABLE src (id bigint, n int, amount decimal(12,2), name text, "
        "created datetime(6), stamp timestamp(6) NULL, flag boolean, day date, "
        "raw blob, doc json) CHARACTER SET utf8mb4",
        "INSERT INTO src VALUES (1, 42, 1234567890.12, 'Zoë 東京 🚀', "
        "'2024-03-01 12:34:56.123456', '2024-03-01 12:34:56.5', true, '2024-03-01', "
        "x'00ff', '{\"a\": 1}')",
        "INSERT INTO src VALUES (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    )
    source = maria.read(ReadRequest(table="src"))
    assert source.schema == pa.schema(
        [
            ("id", pa.int64()),
            ("n", pa.int32()),
            ("amount", pa.decimal128(12, 2)),
            ("name", pa.string()),
            ("created", pa.timestamp("us")),
            ("stamp", pa.timestamp("us", tz="UTC")),
            ("flag", pa.bool_()),
            ("day", pa.date32()),
            ("raw", pa.binary()),
            ("doc", pa.string()),
        ]
    )
    pg.write(source, WriteRequest(table="dst"))
    rows = rows_of(pg.read(ReadRequest(table="dst")))
    assert rows[0] == {
        "id": 1,
        "n": 42,
        "amount": Decimal("1234567890.12"),
        "name": "Zoë 東京 🚀",
        "created": dt.datetime(2024, 3, 1, 12, 34, 56, 123456),
        "stamp": dt.datetime(2024, 3, 1, 12, 34, 56, 500000, tzinfo=UTC),
        "flag": True,
        "day": dt.date(2024, 3, 1),
        "raw": b"\x00\xff",
        "doc": '{"a": 1}',
    }
    assert set(rows[1].values()) == {None}


def test_sqlite_round_trip(pg, lite):
    _load_pg_source(pg)
    lite.write(pg.read(ReadRequest(table="src")), WriteRequest(table="dst"))
    back = lite.read(ReadRequest(table="dst", options={"assume_timezone": "UTC"}))
    assert back.schema.field("amount").type == pa.decimal128(12, 2)
    assert rows_of(back) == sorted_expected(TYPED_ROWS)


def test_sqlite_alone(lite):
    lite.write(typed_relation(), WriteRequest(table="t"))
    back = lite.read(ReadRequest(table="t", options={"assume_timezone": "UTC"}))
    assert rows_of(back) == sorted_expected(TYPED_ROWS)
    query = lite.read(ReadRequest(query="SELECT id, amount, count(*) OVER () AS c FROM t"))
    assert query.schema.field("amount").type == pa.decimal128(12, 2)
    assert query.schema.field("c").type == pa.int64()


def test_quoted_identifiers(db):
    schema = pa.schema([("select", pa.int64()), ("from", pa.string()), ("Mixed Case", pa.int32())])
    data = pa.Table.from_pylist(
        [{"select": 1, "from": "a", "Mixed Case": 1}, {"select": 2, "from": "b", "Mixed Case": 2}],
        schema=schema,
    )
    db.write(Relation.from_table(data), WriteRequest(table="order"))
    update = pa.Table.from_pylist([{"select": 2, "from": "B", "Mixed Case": 20}], schema=schema)
    with_key = WriteRequest(table="order2", write_mode="upsert", key_columns=("select",))
    db.write(Relation.from_table(data), with_key)
    result = db.write(Relation.from_table(update), with_key)
    assert (result.rows_inserted, result.rows_updated) == (0, 1)
    relation = db.read(ReadRequest(table="order", cursor=Cursor("select", 1)))
    assert relation.to_table().to_pylist() == [{"select": 2, "from": "b", "Mixed Case": 2}]
    assert rows_of(db.read(ReadRequest(table="order2")), "select")[1]["from"] == "B"


def test_pg_load_keeps_utc_timestamps_of_every_unit_and_era(pg):
    # the COPY csv load writes UTC timestamps from their naive text + "Z" (fast path)
    utc = UTC
    values = [dt.datetime(1969, 7, 20, 20, 17, 40, 500001, tzinfo=utc),
              dt.datetime(1900, 1, 1, tzinfo=utc), None,
              dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=utc),
              dt.datetime(2024, 2, 29, 23, 59, 59, 1, tzinfo=utc)]
    ids = list(range(len(values)))
    for unit in ("s", "ms", "us"):
        table = pa.table({"id": pa.array(ids, pa.int64()),
                          "at": pa.array(values, pa.timestamp("us", tz="UTC"))})
        table = table.set_column(1, "at", table.column("at").cast(
            pa.timestamp(unit, tz="UTC"), safe=False))
        expected = table.column("at").cast(pa.timestamp("us", tz="UTC")).to_pylist()
        name = f"stamps_{unit}"
        pg.write(Relation.from_table(table, name=name), WriteRequest(table=name))
        back = rows_of(pg.read(ReadRequest(table=name)))
        assert [row["at"] for row in back] == expected, unit
