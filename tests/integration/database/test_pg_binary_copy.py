"""Binary COPY into PostgreSQL (connectors/sql/pg_binary.py): used when every column's Arrow type
has the target column's binary form, and then it stores exactly what CSV text stores; any other
column keeps the load on CSV text, which the server parses."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from decimal import Decimal

import psycopg2
import pyarrow as pa
import pytest
import sqlalchemy as sa

from nexus_dagster.connectors.sql import load, pg_binary

pytestmark = pytest.mark.postgres

UTC = dt.UTC
TIMES = [
    dt.datetime(1900, 1, 1, 0, 0, 0, 1),
    dt.datetime(1999, 12, 31, 23, 59, 59, 999999),
    dt.datetime(2000, 1, 1),
    dt.datetime(2024, 3, 31, 2, 30, 0, 123456),
    dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
    None,
]
#: (column DDL, Arrow type, values): one column per type pair binary COPY encodes
COLUMNS = {
    "big": ("bigint", pa.int64(), [-(2**63), 2**63 - 1, 0, -1, 42, None]),
    "big_from_int32": ("bigint", pa.int32(), [-(2**31), 2**31 - 1, 0, 7, -7, None]),
    "int": ("integer", pa.int32(), [-(2**31), 2**31 - 1, 0, 1, -1, None]),
    "int_from_int16": ("integer", pa.int16(), [-(2**15), 2**15 - 1, 0, 3, -3, None]),
    "small": ("smallint", pa.int16(), [-(2**15), 2**15 - 1, 0, 1, -1, None]),
    "flag": ("boolean", pa.bool_(), [True, False, True, False, True, None]),
    "dbl": ("double precision", pa.float64(), [0.1, -0.0, 1e308, math.inf, -math.inf, None]),
    "dbl_nan": ("double precision", pa.float64(), [math.nan, 5e-324, 1 / 3, -2.5, 1e-300, None]),
    "real": ("real", pa.float32(), [0.1, -1.5, 3.4e38, 1e-45, 16777217.0, None]),
    "money": (
        "numeric(12,2)",
        pa.decimal128(20, 4),  # more scale than the column: rounded by the server as for text
        [Decimal("1.0050"), Decimal("-1.0050"), Decimal("123.4567"), Decimal("0"),
         Decimal("9999999999.9949"), None],
    ),
    "exact": (
        "numeric",
        pa.decimal128(38, 10),
        [Decimal("1234567890123456789012345678.1234567890"), Decimal("-0.0000000001"),
         Decimal("10000"), Decimal("0.5"), Decimal("0E-10"), None],
    ),
    "scaled": (
        "numeric(10,3)",
        pa.decimal128(10, 3),
        [Decimal("1.500"), Decimal("-9999999.999"), Decimal("0.001"), Decimal("100.000"),
         Decimal("10000.100"), None],
    ),
    "note": ("text", pa.string(), ["", "é ü 日本", 'a "q", c', "two\nlines", "back\\slash", None]),
    "code": ("varchar(10)", pa.string(), ["abc", "", "0123456789", "ü", " x ", None]),
    "fixed": ("char(5)", pa.string(), ["ab", "", "abcde", "é", " ", None]),
    "raw": ("bytea", pa.binary(), [b"", b"\x00\xff", b"abc", b"\\x", b"\n", None]),
    "day": (
        "date",
        pa.date32(),
        [dt.date(1, 1, 1), dt.date(1970, 1, 1), dt.date(1999, 12, 31), dt.date(2000, 1, 1),
         dt.date(9999, 12, 31), None],
    ),
    "day64": ("date", pa.date64(), [dt.date(1969, 7, 20), dt.date(2000, 2, 29)] * 2 + [None] * 2),
    "clock": (
        "time",
        pa.time64("us"),
        [dt.time(0), dt.time(23, 59, 59, 999999), dt.time(12, 0, 0, 1), dt.time(1, 2, 3),
         dt.time(0, 0, 0, 500000), None],
    ),
    "naive": ("timestamp", pa.timestamp("us"), TIMES),
    "aware": (
        "timestamptz",
        pa.timestamp("us", tz="UTC"),
        [None if t is None else t.replace(tzinfo=UTC) for t in TIMES],
    ),
}


def _batch(columns: dict[str, tuple[str, pa.DataType, list]]) -> pa.RecordBatch:
    return pa.record_batch(
        [pa.array(values, kind) for _, kind, values in columns.values()], names=list(columns)
    )


def _create(engine: sa.Engine, table: str, columns: dict[str, tuple]) -> None:
    ddl = ", ".join(f"{name} {columns[name][0]}" for name in columns)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"CREATE TABLE {table} ({ddl})")


def _copy(engine: sa.Engine, table: str, batches: Iterator[pa.RecordBatch]) -> int:
    with engine.begin() as connection:
        dbapi = connection.connection.dbapi_connection
        described = connection.exec_driver_sql(f"SELECT * FROM {table} LIMIT 0").cursor
        columns = [f'"{c.name}"' for c in described.description]
        return load.pg_copy(dbapi, table, columns, batches)


def _as_text(engine: sa.Engine, table: str, columns: list[str]) -> list[tuple]:
    select = ", ".join(f"{c}::text" for c in columns)
    with engine.connect() as connection:
        connection.exec_driver_sql("SET TIME ZONE 'UTC'")
        return [tuple(r) for r in connection.exec_driver_sql(f"SELECT {select} FROM {table}")]


def _encoded(engine: sa.Engine, table: str, schema: pa.Schema) -> pa.Schema | None:
    with engine.connect() as connection:
        dbapi = connection.connection.dbapi_connection
        return pg_binary.encoded_schema(schema, pg_binary.column_type_oids(dbapi, table))


@pytest.fixture
def engine(pg_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(pg_url)
    yield engine
    engine.dispose()


def test_binary_copy_stores_exactly_what_csv_text_stores_for_every_type_it_encodes(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = _batch(COLUMNS)
    _create(engine, "by_binary", COLUMNS)
    _create(engine, "by_csv", COLUMNS)

    assert _encoded(engine, "by_binary", batch.schema) is not None  # the binary path is taken
    assert _copy(engine, "by_binary", iter([batch.slice(0, 2), batch.slice(2)])) == 6
    monkeypatch.setenv(pg_binary.BINARY_SWITCH, "0")
    assert _copy(engine, "by_csv", iter([batch])) == 6

    binary_rows = _as_text(engine, "by_binary", list(COLUMNS))
    assert binary_rows == _as_text(engine, "by_csv", list(COLUMNS))
    by_name = dict(zip(COLUMNS, zip(*binary_rows, strict=True), strict=True))
    assert by_name["money"][:3] == ("1.01", "-1.01", "123.46")
    assert by_name["exact"][0] == "1234567890123456789012345678.1234567890"
    assert by_name["aware"][4] == "9999-12-31 23:59:59.999999+00"
    assert by_name["dbl_nan"][0] == "NaN"


@pytest.mark.parametrize(
    ("ddl", "kind", "values", "stored"),
    [
        ("integer", pa.string(), [" 12", "-3"], ["12", "-3"]),  # the server parses the text
        ("integer", pa.int64(), [5, 6], ["5", "6"]),  # no narrowing in Arrow
        ("numeric(6,2)", pa.float64(), [0.125, 2.5], ["0.13", "2.50"]),
        ("timestamptz", pa.timestamp("us"), [dt.datetime(2024, 1, 1, 12)] * 2,
         ["2024-01-01 12:00:00+00"] * 2),  # naive text read in the session's zone (UTC here)
        ("jsonb", pa.string(), ['{"a": 1}', "[1, 2]"], ['{"a": 1}', "[1, 2]"]),
        ("double precision", pa.float32(), [0.1, 2.5], ["0.1", "2.5"]),  # no widening of floats
    ],
)  # fmt: skip
def test_a_column_without_an_exact_binary_form_loads_through_csv_text(
    engine: sa.Engine, ddl: str, kind: pa.DataType, values: list, stored: list[str]
) -> None:
    columns = {"v": (ddl, kind, values)}
    _create(engine, "t", columns)
    batch = _batch(columns)

    assert _encoded(engine, "t", batch.schema) is None
    assert _copy(engine, "t", iter([batch])) == 2
    assert [row[0] for row in _as_text(engine, "t", ["v"])] == stored


def test_a_later_batch_with_a_narrower_integer_type_is_widened(engine: sa.Engine) -> None:
    columns = {"v": ("bigint", pa.int64(), [2**40, None])}
    _create(engine, "t", columns)
    narrow = pa.record_batch([pa.array([1, -2], pa.int16())], names=["v"])

    assert _copy(engine, "t", iter([_batch(columns), narrow])) == 4
    assert [row[0] for row in _as_text(engine, "t", ["v"])] == [str(2**40), None, "1", "-2"]


def test_a_binary_load_the_server_refuses_raises_its_error_and_loads_nothing(
    engine: sa.Engine,
) -> None:
    columns = {"v": ("varchar(3)", pa.string(), ["abc", "abcd"])}
    _create(engine, "t", columns)
    good = pa.record_batch([pa.array(["x"] * 10_000)], names=["v"])

    assert _encoded(engine, "t", good.schema) is not None
    with pytest.raises(psycopg2.errors.StringDataRightTruncation, match="too long"):
        _copy(engine, "t", iter([good, _batch(columns), good]))
    assert _as_text(engine, "t", ["v"]) == []
