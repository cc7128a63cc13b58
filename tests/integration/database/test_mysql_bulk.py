"""MariaDB bulk paths: LOAD DATA LOCAL INFILE loads and the server-made CSV reader give exactly
what the INSERT and row-by-row paths give (every type, odd text, NULL vs empty), in every write
mode; a failed load leaves the target unchanged; a refused LOCAL INFILE falls back to INSERT."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

import pyarrow as pa
import pytest

from nexus_dagster.connectors.base import ReadRequest, WriteRequest
from nexus_dagster.connectors.database import DatabaseConnector
from nexus_dagster.connectors.sql import mysql_load
from nexus_dagster.errors import LoadError
from nexus_dagster.relation import Relation
from tests.integration.database.helpers import UTC, execute, fetch

ODD = "tab\there\nnew\\line \\N \\t \"q\" 'x', é 日本 🚀\r\x00end"
SCHEMA = pa.schema([
    ("id", pa.int64()), ("small", pa.int8()), ("n", pa.int32()), ("f32", pa.float32()),
    ("f64", pa.float64()), ("amount", pa.decimal128(12, 2)), ("tiny", pa.decimal128(38, 10)),
    ("flag", pa.bool_()), ("s", pa.string()), ("s2", pa.string()), ("day", pa.date32()),
    ("ts", pa.timestamp("us", tz="UTC")), ("naive", pa.timestamp("us")),
    ("raw", pa.binary()), ("clock", pa.time64("us")),
])  # fmt: skip
ROWS = [
    {"id": 1, "small": -128, "n": 2147483647, "f32": 0.5, "f64": 1 / 3,
     "amount": Decimal("1234567890.12"), "tiny": Decimal("0.0000001000"), "flag": True,
     "s": ODD, "s2": "NULL", "day": dt.date(2024, 2, 29),
     "ts": dt.datetime(2024, 3, 1, 12, 34, 56, 123456, tzinfo=UTC),
     "naive": dt.datetime(1999, 12, 31, 23, 59, 59, 999999), "raw": b"\t\n\\\x00\xff",
     "clock": dt.time(23, 59, 59, 1)},
    {"id": 2, **{f.name: None for f in SCHEMA if f.name != "id"}},
    {"id": 3, "small": 0, "n": 0, "f32": -0.0, "f64": 1e-300, "amount": Decimal("-0.01"),
     "tiny": Decimal("0E-10"), "flag": False, "s": "", "s2": "\\N", "day": dt.date(1970, 1, 1),
     "ts": dt.datetime(1970, 1, 1, tzinfo=UTC), "naive": dt.datetime(1000, 1, 1), "raw": b"",
     "clock": dt.time(0, 0)},
    {"id": 4, "small": 5, "n": -7, "f32": 1.5, "f64": 1e20, "amount": Decimal("9999999999.99"),
     "tiny": Decimal("-1234567890123456789012345678.0123456789"), "flag": True,
     "s": "\\", "s2": '""', "day": dt.date(9999, 12, 31),
     "ts": dt.datetime(2038, 1, 19, 3, 14, 8, tzinfo=UTC),
     "naive": dt.datetime(2024, 1, 1, 0, 0, 0, 1), "raw": b"\\N", "clock": dt.time(12, 0)},
]
#: the fast reader's columns (binary and TIME keep the row reader)
FAST = "id, small, n, f32, f64, amount, tiny, flag, s, s2, day, ts, naive"


def relation(rows: list[dict], batch_size: int = 2, schema: pa.Schema = SCHEMA) -> Relation:
    return Relation.from_table(pa.Table.from_pylist(rows, schema=schema), "rows", batch_size)


def expected(rows: list[dict]) -> list[dict]:
    """What MariaDB gives back: DATETIME(6) holds naive UTC."""
    out = []
    for row in rows:
        row = dict(row)
        if row["ts"] is not None:
            row["ts"] = row["ts"].replace(tzinfo=None)
        out.append(row)
    return out


def read(connector: DatabaseConnector, query: str) -> list[dict]:
    rows = connector.read(ReadRequest(query=query, batch_size=3)).to_table().to_pylist()
    return sorted(rows, key=lambda r: r["id"])


def no_row_reader(monkeypatch) -> None:
    def refuse(*_args, **_kwargs):
        raise AssertionError("the row-by-row reader was used")

    monkeypatch.setattr(DatabaseConnector, "_fetch_raw", refuse)


def test_round_trip_every_type(maria, monkeypatch, caplog):
    caplog.set_level(logging.WARNING)
    result = maria.write(relation(ROWS), WriteRequest(table="t"))
    assert result.rows_loaded == 4 and "refused" not in caplog.text
    assert read(maria, "SELECT * FROM t") == expected(ROWS)  # row reader (binary, TIME)
    with monkeypatch.context() as patch:
        no_row_reader(patch)
        fast = read(maria, f"SELECT {FAST} FROM t")
    names = FAST.split(", ")
    assert fast == [{k: r[k] for k in names} for r in expected(ROWS)]
    monkeypatch.setenv("NEXUS_FAST_READ", "0")
    assert read(maria, f"SELECT {FAST} FROM t") == fast


def test_write_modes_through_load_data(maria):
    maria.write(relation(ROWS), WriteRequest(table="t", write_mode="upsert", key_columns=("id",)))
    changed = [dict(ROWS[0], s="changed\t\\"), dict(ROWS[2], id=5)]
    result = maria.write(relation([*changed, ROWS[3]]),
                         WriteRequest(table="t", write_mode="upsert", key_columns=("id",)))
    assert (result.rows_inserted, result.rows_updated) == (1, 1)
    rows = read(maria, "SELECT id, s FROM t")
    assert rows == [{"id": 1, "s": "changed\t\\"}, {"id": 2, "s": None}, {"id": 3, "s": ""},
                    {"id": 4, "s": "\\"}, {"id": 5, "s": ""}]
    maria.write(relation(ROWS[2:3]), WriteRequest(table="t", write_mode="overwrite"))
    assert read(maria, "SELECT * FROM t") == expected(ROWS[2:3])


SMALL = pa.schema([("id", pa.int64()), ("s", pa.string())])


@pytest.mark.parametrize("mode", ["append", "overwrite"])
@pytest.mark.parametrize(
    ("bad", "message"),
    [({"id": 9, "s": "too long"}, "Data truncated"), ({"id": 1, "s": "dup"}, "Duplicate")],
    ids=["truncation", "duplicate_key"],
)
def test_failed_load_leaves_target_unchanged(maria, monkeypatch, mode, bad, message):
    execute(maria, "CREATE TABLE t (id BIGINT PRIMARY KEY, s VARCHAR(3))",
            "INSERT INTO t VALUES (1, 'a'), (2, NULL)")
    monkeypatch.setattr(mysql_load, "CHUNK_BYTES", 1)  # one LOAD DATA per batch
    rows = [{"id": 7, "s": "ok"}, {"id": 8, "s": ""}, bad]
    if mode == "overwrite" and bad["id"] == 1:
        rows.append(dict(bad))  # the staging table has no key: duplicate it in the target
    with pytest.raises(LoadError, match=message) as info:
        maria.write(relation(rows, 2, SMALL), WriteRequest(table="t", write_mode=mode))
    if mode == "overwrite" and bad["id"] == 1:
        assert "Duplicate" in str(info.value)
    assert "'t'" in str(info.value) and "nexus_pw" not in str(info.value)
    assert fetch(maria, "SELECT id, s FROM t ORDER BY id") == [(1, "a"), (2, None)]


def test_refused_local_infile_falls_back_to_insert(mariadb_url, caplog):
    caplog.set_level(logging.WARNING)
    connector = DatabaseConnector({"url": mariadb_url, "local_infile": False})
    try:
        result = connector.write(relation(ROWS), WriteRequest(table="t"))
        assert result.rows_loaded == 4
        assert "refused LOAD DATA LOCAL INFILE" in caplog.text
        assert "nexus_pw" not in caplog.text
        assert read(connector, "SELECT * FROM t") == expected(ROWS)
        execute(connector, "CREATE TABLE t3 (id BIGINT, s VARCHAR(3))")
        rows = [{"id": 8, "s": "ok"}, {"id": 9, "s": "long"}]
        with pytest.raises(LoadError, match="Data too long"):
            connector.write(relation(rows, 1, SMALL), WriteRequest(table="t3"))
        assert fetch(connector, "SELECT count(*) FROM t3") == [(0,)]
    finally:
        connector.dispose()


def test_fast_reader_edge_values(maria, monkeypatch):
    execute(
        maria,
        "SET SESSION sql_mode = ''",
        "CREATE TABLE e (id INT, b TINYINT(1), s TEXT, z DATE, zt DATETIME, st TIMESTAMP NULL)",
        "INSERT INTO e VALUES (1, 2, '', '0000-00-00', '0000-00-00 00:00:00', "
        "'2024-05-01 10:00:00'), (2, -1, NULL, '2024-00-10', '2024-01-02 03:04:05', NULL), "
        "(3, 0, 'x,\"y\"\nz', '2024-01-31', NULL, '1970-01-01 00:00:01'), "
        "(4, NULL, NULL, NULL, NULL, NULL)",
    )
    with monkeypatch.context() as patch:
        no_row_reader(patch)
        fast = maria.read(ReadRequest(table="e", batch_size=2))
        fast_rows = fast.to_table()
        single = read(maria, "SELECT id, s FROM e")  # one text column: empty lines count
    assert fast.schema.field("st").type == pa.timestamp("us", tz="UTC")
    assert [r["s"] for r in single] == ["", None, 'x,"y"\nz', None]
    monkeypatch.setenv("NEXUS_FAST_READ", "0")
    assert fast_rows == maria.read(ReadRequest(table="e")).to_table()
    rows = fast_rows.to_pylist()
    assert [r["b"] for r in rows] == [True, True, False, None]
    assert [r["z"] for r in rows] == [None, None, dt.date(2024, 1, 31), None]
    assert rows[0]["st"] == dt.datetime(2024, 5, 1, 10, tzinfo=UTC)


def test_fast_reader_stopped_early(maria):
    execute(maria, "CREATE TABLE e (id INT, s TEXT)",
            "INSERT INTO e VALUES " + ", ".join(f"({i}, 'v{i}')" for i in range(500)))
    batches = iter(maria.read(ReadRequest(table="e", batch_size=10)))
    assert next(batches).num_rows == 10
    batches.close()  # type: ignore[attr-defined]
    assert read(maria, "SELECT count(*) AS id FROM e") == [{"id": 500}]
