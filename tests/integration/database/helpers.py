"""Small helpers shared by the database connector tests."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from nexus_dagster.connectors.database import DatabaseConnector
from nexus_dagster.relation import Relation

UTC = dt.UTC

#: every column type of the round trips, with a null in every column
TYPED_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("n", pa.int32()),
        ("amount", pa.decimal128(12, 2)),
        ("name", pa.string()),
        ("created", pa.timestamp("us", tz="UTC")),
        ("flag", pa.bool_()),
        ("day", pa.date32()),
    ]
)
TYPED_ROWS: list[dict[str, Any]] = [
    {
        "id": 1,
        "n": 42,
        "amount": Decimal("1234567890.12"),
        "name": "Zoë 東京 🚀",
        "created": dt.datetime(2024, 3, 1, 12, 34, 56, 123456, tzinfo=UTC),
        "flag": True,
        "day": dt.date(2024, 3, 1),
    },
    {
        "id": 9223372036854775807,
        "n": -2147483648,
        "amount": Decimal("-0.01"),
        "name": "",
        "created": dt.datetime(1999, 12, 31, 18, 59, 59, tzinfo=UTC),
        "flag": False,
        "day": dt.date(1970, 1, 1),
    },
    {"id": 3, "n": None, "amount": None, "name": None, "created": None, "flag": None, "day": None},
    {
        "id": None,
        "n": 7,
        "amount": Decimal("9999999999.99"),
        "name": "line\nbreak, \"quoted\" 'single' \\ back",
        "created": dt.datetime(2038, 1, 19, 3, 14, 8, tzinfo=UTC),
        "flag": True,
        "day": dt.date(2100, 12, 31),
    },
]


def execute(connector: DatabaseConnector, *statements: str) -> None:
    """Run SQL statements in one transaction."""
    with connector.engine.begin() as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)


def scalar(connector: DatabaseConnector, statement: str) -> Any:
    with connector.engine.connect() as connection:
        return connection.exec_driver_sql(statement).scalar()


def fetch(connector: DatabaseConnector, statement: str) -> list[tuple]:
    with connector.engine.connect() as connection:
        return [tuple(row) for row in connection.execute(sa.text(statement))]


def rows_of(relation: Relation, key: str = "id") -> list[dict[str, Any]]:
    """All rows, sorted by ``key`` (nulls last), timestamps normalized to aware UTC."""
    rows = relation.to_table().to_pylist()
    for row in rows:
        for name, value in row.items():
            if isinstance(value, dt.datetime) and value.tzinfo is not None:
                row[name] = value.astimezone(UTC)
    return sorted(rows, key=lambda r: (r[key] is None, r[key] if r[key] is not None else 0))


def typed_relation(batch_size: int = 2) -> Relation:
    return Relation.from_table(
        pa.Table.from_pylist(TYPED_ROWS, schema=TYPED_SCHEMA), "typed", batch_size
    )


def sorted_expected(rows: list[dict[str, Any]], key: str = "id") -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (r[key] is None, r[key] if r[key] is not None else 0))
