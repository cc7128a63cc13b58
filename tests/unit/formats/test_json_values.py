"""Decimals in JSON text (connectors/formats/values.py): exact number literals, NaN and infinities
as null like floats."""

from __future__ import annotations

import json
from decimal import Decimal

import pyarrow as pa

from nexus_dagster.connectors.formats.values import json_rows, json_text


def test_json_text_writes_decimals_as_exact_numbers() -> None:
    text = json_text({"a": Decimal("12345678901234567.89"), "b": [Decimal("0.10")], "c": "0.10"})
    assert text == '{"a": 12345678901234567.89, "b": [0.10], "c": "0.10"}'
    assert json.loads(text, parse_float=Decimal)["a"] == Decimal("12345678901234567.89")


def test_nan_and_infinite_decimals_are_written_as_null() -> None:
    text = json_text([Decimal("NaN"), Decimal("-Infinity"), Decimal("sNaN"), Decimal("1.5")])
    assert text == "[null, null, null, 1.5]"


def test_json_rows_writes_float_nan_and_decimals_in_one_row() -> None:
    batch = pa.record_batch({
        "f": pa.array([float("nan"), 2.5]),
        "d": pa.array([Decimal("7.00"), None], pa.decimal128(5, 2)),
    })
    [(same, lines)] = list(json_rows([batch]))
    assert same is batch
    assert lines == ['{"f": null, "d": 7.00}', '{"f": 2.5, "d": null}']
