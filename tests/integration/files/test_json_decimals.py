"""JSON/JSONL file targets write decimals as exact JSON numbers: their digits kept (no float
rounding, no exponent), read back as the same decimal column."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from nexus_dagster.connectors.base import ReadRequest, WriteRequest
from nexus_dagster.connectors.file import FileConnector
from nexus_dagster.relation import Relation

MONEY_CSV = "id,amount\n1,900.10\n2,-0.05\n3,\n4,12345678901234567.89\n"
MONEY = [Decimal("900.10"), Decimal("-0.05"), None, Decimal("12345678901234567.89")]


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_csv_money_column_round_trips_through_json_as_the_same_decimals(
    conn: FileConnector, base: Path, fmt: str
) -> None:
    (base / "in.csv").write_text(MONEY_CSV)
    money = conn.read(ReadRequest(path="in.csv")).to_table()
    assert money.schema.field("amount").type == pa.decimal128(22, 2)
    conn.write(Relation.from_table(money), WriteRequest(path=f"out.{fmt}"))
    back = conn.read(ReadRequest(path=f"out.{fmt}")).to_table()
    assert back.schema.field("amount").type == pa.decimal128(22, 2)
    assert back.column("amount").to_pylist() == MONEY


def test_jsonl_decimals_are_number_literals_with_their_digits(
    conn: FileConnector, base: Path
) -> None:
    (base / "in.csv").write_text(MONEY_CSV)
    conn.write(conn.read(ReadRequest(path="in.csv")), WriteRequest(path="out.jsonl"))
    lines = (base / "out.jsonl").read_text().splitlines()
    assert lines == [
        '{"id": 1, "amount": 900.10}',
        '{"id": 2, "amount": -0.05}',
        '{"id": 3, "amount": null}',
        '{"id": 4, "amount": 12345678901234567.89}',
    ]
    parsed = [json.loads(line, parse_float=Decimal)["amount"] for line in lines]
    assert [None if v is None else str(v) for v in parsed] == [
        "900.10", "-0.05", None, "12345678901234567.89"
    ]


def test_tiny_and_wide_decimals_are_written_without_exponent(
    conn: FileConnector, base: Path
) -> None:
    table = pa.table({
        "tiny": pa.array([Decimal("-0.0000000001"), Decimal("0E-10")], pa.decimal128(38, 10)),
        "wide": pa.array([Decimal("1" * 45 + ".5"), Decimal("-0.5")], pa.decimal256(50, 1)),
    })
    conn.write(Relation.from_table(table), WriteRequest(path="out.jsonl"))
    lines = (base / "out.jsonl").read_text().splitlines()
    assert lines == [
        '{"tiny": -0.0000000001, "wide": ' + "1" * 45 + ".5}",
        '{"tiny": 0.0000000000, "wide": -0.5}',
    ]


def test_nested_decimals_are_numbers_and_text_that_looks_like_one_stays_text(
    conn: FileConnector, base: Path
) -> None:
    money = pa.struct([("amount", pa.decimal128(12, 4))])
    table = pa.table({
        "label": pa.array(['"900.10"', "12.50"]),
        "price": pa.array([{"amount": Decimal("1.2500")}, None], money),
        "parts": pa.array([[Decimal("0.10"), None], []], pa.list_(pa.decimal128(5, 2))),
    })
    conn.write(Relation.from_table(table), WriteRequest(path="out.jsonl"))
    assert (base / "out.jsonl").read_text().splitlines() == [
        r'{"label": "\"900.10\"", "price": {"amount": 1.2500}, "parts": [0.10, null]}',
        '{"label": "12.50", "price": null, "parts": []}',
    ]
