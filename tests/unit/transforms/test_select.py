"""The select transformation: keep/reorder, drop, rename and cast in one step, compared with
pandas; its lineage and spec errors."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd
import pyarrow as pa
import pytest
from pydantic import ValidationError

from nexus_dagster.errors import TransformError
from nexus_dagster.spec.models import ETLJob, Transformation
from nexus_dagster.transforms.column_lineage import column_lineage

from .helpers import run, step

ROWS = pa.table(
    {
        "id": pa.array([1, 2, 3], pa.int64()),
        "price": pa.array([2.75, -1.5, None]),
        "flag": pa.array([1, 0, None], pa.int64()),
        "day": ["2024-03-31", "2024-02-29", None],
        "stamp": ["2024-03-31 02:30:00", "2024-01-01 00:00:00", None],
        "note": ["x", None, "z"],
    }
)


def test_columns_keep_and_reorder_like_pandas_indexing() -> None:
    out = run(ROWS, step("s", "select", columns=["note", "id"]))
    pd.testing.assert_frame_equal(out.to_pandas(), ROWS.to_pandas()[["note", "id"]])


def test_drop_rename_and_cast_in_one_step_match_pandas() -> None:
    out = run(ROWS, step("s", "select", drop=["note"], rename={"price": "amount", "id": "key"},
                         cast={"price": "decimal(10,2)", "flag": "bool", "day": "date",
                               "stamp": "timestamp", "id": "string"}))
    df = ROWS.to_pandas().drop(columns=["note"])
    assert out.column_names == ["key", "amount", "flag", "day", "stamp"]
    assert out.schema.field("amount").type == pa.decimal128(10, 2)
    assert out.column("amount").to_pylist() == [Decimal("2.75"), Decimal("-1.50"), None]
    assert out.column("key").to_pylist() == df["id"].astype(str).tolist()
    assert out.column("flag").to_pylist() == [True, False, None]
    assert out.column("day").to_pylist() == [dt.date(2024, 3, 31), dt.date(2024, 2, 29), None]
    expected_stamps = pd.to_datetime(df["stamp"]).tolist()
    got_stamps = out.column("stamp").to_pandas().tolist()
    assert [None if pd.isna(v) else v for v in got_stamps] == [
        None if pd.isna(v) else v for v in expected_stamps
    ]


def test_cast_to_int_truncates_like_pandas_astype() -> None:
    table = pa.table({"x": [2.9, -2.9, 0.5]})
    out = run(table, step("s", "select", cast={"x": "int"}))
    assert out.schema.field("x").type == pa.int64()
    assert out.column("x").to_pylist() == table.to_pandas()["x"].astype("int64").tolist()


def test_cast_of_a_value_that_does_not_convert_fails_naming_the_step() -> None:
    with pytest.raises(TransformError, match="'s'"):
        run(pa.table({"x": ["12", "abc"]}), step("s", "select", cast={"x": "int"}))


def test_unknown_column_names_the_field() -> None:
    with pytest.raises(TransformError, match="'s' \\(select\\): unknown rename column 'nope'"):
        run(ROWS, step("s", "select", rename={"nope": "x"}))


def test_rename_onto_a_kept_name_is_refused() -> None:
    with pytest.raises(TransformError, match="two columns named 'id'"):
        run(ROWS, step("s", "select", rename={"note": "id"}))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"columns": ["a"], "drop": ["b"]}, "give columns (the ones to keep) or drop"),
        ({"cast": {"a": "varchar2"}}, "cast of 'a': unknown type 'varchar2'; use one of: int"),
        ({"cast": {"a": "decimal(40,2)"}}, "precision must be 1..38"),
        ({"columns": ["a"], "rename": {"b": "c"}}, "rename names 'b', which this select drops"),
        ({}, "select needs columns, drop, rename or cast"),
        ({"drop": ["a", "a"]}, "drop names 'a' twice"),
    ],
)
def test_select_config_errors(config: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", "\\(").replace(")", "\\)")):
        Transformation(name="s", transformation_type="select", config=config)


def test_select_lineage_follows_renames_and_drops() -> None:
    steps = ETLJob.model_validate({
        "name": "j",
        "sources": [{"name": "s", "source_type": "file", "file_path": "s.csv"}],
        "transformations": [{"name": "t", "transformation_type": "select", "config": {
            "drop": ["note"], "rename": {"price": "amount"}, "cast": {"price": "double"}}}],
        "targets": [{"name": "o", "target_type": "file", "file_path": "o.csv"}],
    }).ordered_transformations()
    lineage = column_lineage(steps, {"s": ["id", "price", "note"]}, ["id", "amount"])
    assert lineage == {"id": {("s", "id")}, "amount": {("s", "price")}}
