"""Fixed-decimal inference: CSV/TSV/JSON/JSONL numbers written with one number of fraction digits
read as exact decimals; everything else keeps its type; column_types and
options.decimal_inference opt out; a later value that does not fit fails naming file, column,
value and fix."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from nexus_dagster.connectors.base import ReadRequest
from nexus_dagster.connectors.file import FileConnector
from nexus_dagster.connectors.formats.fixed_decimals import decimal_type, text_decimal_type
from nexus_dagster.errors import DataError, SpecError

CSV = (
    "id,price,mixed,expo,qty,neg,empty,sep\n"
    '1,12.50,1.5,1e5,3,-3.10,,"1,234.50"\n'
    '2,0.05,1.25,2.5,4,0.00,,"12.00"\n'
    '3,,2.0,3.0,5,-0.10,,"7.25"\n'
)


def test_csv_fixed_fraction_digits_read_as_exact_decimals(
    base: Path, conn: FileConnector
) -> None:
    (base / "a.csv").write_text(CSV)
    rel = conn.read(ReadRequest(path="a.csv"))
    types = {f.name: f.type for f in rel.schema}
    assert types["price"] == pa.decimal128(18, 2)
    assert types["neg"] == pa.decimal128(18, 2)
    table = rel.to_table()
    assert table.column("price").to_pylist() == [Decimal("12.50"), Decimal("0.05"), None]
    assert table.column("neg").to_pylist() == [Decimal("-3.10"), Decimal("0.00"), Decimal("-0.10")]


def test_csv_columns_that_are_not_fixed_decimals_keep_their_type(
    base: Path, conn: FileConnector
) -> None:
    (base / "a.csv").write_text(CSV)
    types = {f.name: f.type for f in conn.read(ReadRequest(path="a.csv")).schema}
    assert types["mixed"] == pa.float64()  # 1.5 / 1.25 / 2.0: fraction digits differ
    assert types["expo"] == pa.float64()  # 1e5: an exponent
    assert types["qty"] == pa.int64()
    assert types["empty"] == pa.string()  # all null
    assert types["sep"] == pa.string()  # thousands separators


def test_tsv_fixed_decimals(base: Path, conn: FileConnector) -> None:
    (base / "a.tsv").write_text("id\tprice\n1\t1.000\n2\t-22.125\n")
    rel = conn.read(ReadRequest(path="a.tsv"))
    assert rel.schema.field("price").type == pa.decimal128(18, 3)
    assert rel.to_table().column("price").to_pylist() == [Decimal("1.000"), Decimal("-22.125")]


def test_precision_is_18_or_sample_digits_plus_headroom_capped_at_38() -> None:
    assert text_decimal_type(pa.array(["1.5", "22.5"])) == pa.decimal128(18, 1)
    wide = "1234567890123456789.12"  # 19 integer digits + 2 fraction digits
    assert text_decimal_type(pa.array([wide, "0.00"])) == pa.decimal128(24, 2)
    assert decimal_type(36, 2) == pa.decimal128(38, 2)
    assert decimal_type(37, 2) is None  # more than 38 digits: stays float64
    assert text_decimal_type(pa.array(["+1.50", None])) == pa.decimal128(18, 2)
    assert text_decimal_type(pa.array(["1.50", "nan"])) is None
    assert text_decimal_type(pa.array([None], pa.string())) is None


def test_jsonl_numbers_keep_their_written_digits(base: Path, conn: FileConnector) -> None:
    lines = [
        {"id": 1, "price": "12.50", "mixed": "1.5", "expo": "1e5", "qty": 3, "nested": "1.25"},
        {"id": 2, "price": "-0.05", "mixed": "1.25", "expo": "2.5", "qty": 4, "nested": "2.50"},
        {"id": 3, "price": None, "mixed": "2.0", "expo": "3.0", "qty": 5, "nested": "3.75"},
    ]
    text = "\n".join(
        '{"id": %(id)s, "price": %(price)s, "mixed": %(mixed)s, "expo": %(expo)s, '
        '"qty": %(qty)s, "x": {"nested": %(nested)s}}'
        % {k: ("null" if v is None else v) for k, v in row.items()}
        for row in lines
    )
    (base / "a.jsonl").write_text(text + "\n")
    rel = conn.read(ReadRequest(path="a.jsonl"))
    types = {f.name: f.type for f in rel.schema}
    assert types["price"] == pa.decimal128(18, 2)
    assert types["mixed"] == pa.float64()
    assert types["expo"] == pa.float64()
    assert types["qty"] == pa.int64()
    assert types["x"] == pa.struct([("nested", pa.float64())])  # nested fields stay as read
    assert rel.to_table().column("price").to_pylist() == [
        Decimal("12.50"), Decimal("-0.05"), None
    ]


def test_json_document_decimals_are_exact_beyond_float_precision(
    base: Path, conn: FileConnector
) -> None:
    (base / "a.json").write_text(
        '{"data": [{"id": 1, "amount": 12345678901234567.89, "rate": 1.5},'
        ' {"id": 2, "amount": 0.10, "rate": 2.25}]}'
    )
    rel = conn.read(ReadRequest(path="a.json", options={"records_path": "data"}))
    assert rel.schema.field("amount").type == pa.decimal128(22, 2)
    assert rel.schema.field("rate").type == pa.float64()
    assert rel.to_table().column("amount").to_pylist() == [
        Decimal("12345678901234567.89"), Decimal("0.10")
    ]


def test_column_types_win_over_inference(base: Path, conn: FileConnector) -> None:
    (base / "a.csv").write_text("id,price,tax\n1,12.50,0.20\n2,0.05,1.10\n")
    rel = conn.read(
        ReadRequest(
            path="a.csv",
            options={"column_types": {"price": "double", "tax": "decimal(10, 4)"}},
        )
    )
    assert rel.schema.field("price").type == pa.float64()
    assert rel.schema.field("tax").type == pa.decimal128(10, 4)
    assert rel.to_table().column("price").to_pylist() == [12.5, 0.05]
    (base / "b.jsonl").write_text('{"price": 12.50}\n')
    jsonl = conn.read(ReadRequest(path="b.jsonl", options={"column_types": {"price": "float"}}))
    assert jsonl.schema.field("price").type == pa.float64()


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("a.csv", "price\n12.50\n0.05\n"),
        ("a.jsonl", '{"price": 12.50}\n{"price": 0.05}\n'),
        ("a.json", '[{"price": 12.50}, {"price": 0.05}]'),
    ],
)
def test_decimal_inference_false_keeps_float64(
    base: Path, conn: FileConnector, name: str, text: str
) -> None:
    (base / name).write_text(text)
    rel = conn.read(ReadRequest(path=name, options={"decimal_inference": False}))
    assert rel.schema.field("price").type == pa.float64()
    assert rel.to_table().column("price").to_pylist() == [12.5, 0.05]


def test_decimal_inference_must_be_a_boolean(base: Path, conn: FileConnector) -> None:
    (base / "a.csv").write_text("price\n12.50\n")
    with pytest.raises(SpecError, match=r"options\.decimal_inference must be true or false"):
        conn.read(ReadRequest(path="a.csv", options={"decimal_inference": "no"}))


def _long_csv(tail: str) -> str:
    """A CSV whose first 4 KiB block holds two-digit prices, then ``tail`` (a later row)."""
    head = "".join(f"{i},{i}.25\n" for i in range(1, 1000))
    return "id,price\n" + head + tail


@pytest.mark.parametrize(
    ("tail", "value"),
    [("1000,3.125\n", "3.125"), ("1000,12345678901234567.50\n", "12345678901234567.50")],
    ids=["more-fraction-digits", "too-many-digits"],
)
def test_csv_later_value_that_does_not_fit_names_file_column_value_and_fix(
    base: Path, conn: FileConnector, tail: str, value: str
) -> None:
    (base / "a.csv").write_text(_long_csv(tail))
    rel = conn.read(ReadRequest(path="a.csv", options={"block_size": 4096}))
    assert rel.schema.field("price").type == pa.decimal128(18, 2)
    with pytest.raises(DataError) as caught:
        rel.to_table()
    message = str(caught.value)
    assert "a.csv" in message
    assert "'price'" in message
    assert repr(value) in message
    assert "column_types: {price: double}" in message


def test_jsonl_later_value_that_does_not_fit_names_file_column_value_and_fix(
    base: Path, conn: FileConnector
) -> None:
    text = "\n".join(
        f'{{"id": {i}, "price": {i}.25, "rate": {i}.50}}' for i in range(1, 400)
    ) + '\n{"id": 400, "price": 1.5, "rate": 7.125}\n'
    (base / "a.jsonl").write_text(text)
    rel = conn.read(ReadRequest(path="a.jsonl", options={"block_size": 4096}))
    assert rel.schema.field("rate").type == pa.decimal128(18, 2)
    with pytest.raises(DataError) as caught:
        rel.to_table()
    message = str(caught.value)
    assert "a.jsonl" in message
    assert "'rate'" in message
    assert "'7.125'" in message
    assert "column_types: {rate: double}" in message


def test_explicit_decimal_column_type_too_narrow_is_an_error_not_a_rounding(
    base: Path, conn: FileConnector
) -> None:
    (base / "a.json").write_text('[{"price": 1.25}, {"price": 1.255}]')
    options = {"column_types": {"price": "decimal(9,2)"}}
    with pytest.raises(DataError, match=r"a\.json: column 'price' has the value '1\.255'.*"
                                        r"from options\.column_types"):
        conn.read(ReadRequest(path="a.json", options=options)).to_table()


def test_files_with_different_fraction_digits_unify_to_a_decimal_holding_both(
    base: Path, conn: FileConnector
) -> None:
    (base / "1.csv").write_text("price\n1.50\n")
    (base / "2.csv").write_text("price\n2.125\n")
    rel = conn.read(ReadRequest(path="*.csv"))
    assert rel.schema.field("price").type == pa.decimal128(19, 3)
    assert rel.to_table().column("price").to_pylist() == [Decimal("1.500"), Decimal("2.125")]


def test_files_with_integers_and_fixed_decimals_unify_to_a_decimal(
    base: Path, conn: FileConnector
) -> None:
    (base / "1.csv").write_text("price\n7\n")
    (base / "2.csv").write_text("price\n2.25\n")
    rel = conn.read(ReadRequest(path="*.csv"))
    assert rel.schema.field("price").type == pa.decimal128(20, 2)
    assert rel.to_table().column("price").to_pylist() == [Decimal("7.00"), Decimal("2.25")]
