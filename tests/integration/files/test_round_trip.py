"""Write then read back every format: nulls, unicode, decimals, time-zone-aware timestamps."""

from __future__ import annotations

import datetime as dt
import decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nexus_dagster.connectors.base import ReadRequest, WriteRequest
from nexus_dagster.connectors.file import FileConnector
from nexus_dagster.connectors.registry import connector_class
from nexus_dagster.relation import Relation

TEXT_FORMATS = ["csv", "tsv", "jsonl", "json"]


def _type_names(schema: pa.Schema) -> dict[str, str]:
    return {f.name: str(f.type) for f in schema}


def test_registry_serves_file_connector() -> None:
    assert connector_class("file") is FileConnector
    assert FileConnector.is_source and FileConnector.is_target
    assert FileConnector.write_modes == frozenset({"append", "overwrite"})


def test_parquet_round_trip_is_exact(conn: FileConnector, base: Path, sample: pa.Table) -> None:
    result = conn.write(Relation.from_table(sample), WriteRequest(path="out/t.parquet"))
    assert result.rows_loaded == 4
    assert result.location == str(base / "out" / "t.parquet")
    back = conn.read(ReadRequest(path="out/t.parquet")).to_table()
    assert back.schema == sample.schema
    assert back.equals(sample)


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_text_round_trip_with_column_types_is_exact(
    conn: FileConnector, sample: pa.Table, fmt: str
) -> None:
    conn.write(Relation.from_table(sample), WriteRequest(path=f"t.{fmt}", write_mode="overwrite"))
    types = _type_names(sample.schema)
    back = conn.read(ReadRequest(path=f"t.{fmt}", options={"column_types": types})).to_table()
    assert back.schema == sample.schema
    assert back.to_pylist() == sample.to_pylist()


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_csv_inference_keeps_types(conn: FileConnector, sample: pa.Table, fmt: str) -> None:
    conn.write(Relation.from_table(sample), WriteRequest(path=f"t.{fmt}"))
    back = conn.read(ReadRequest(path=f"t.{fmt}")).to_table()
    assert back.schema.field("id").type == pa.int64()
    assert back.column("id").to_pylist() == [1, 2, None, 4]
    # null and empty string stay apart
    assert back.column("name").to_pylist() == ["Zoë", "東京", None, ""]
    assert back.schema.field("active").type == pa.bool_()
    ts = back.schema.field("ts").type
    assert pa.types.is_timestamp(ts) and ts.tz is not None
    assert (
        back.column("ts")
        .cast(pa.timestamp("us", tz="UTC"))
        .equals(sample.column("ts").cast(pa.timestamp("us", tz="UTC")))
    )
    # decimals travel as text with their fraction digits and read back as exact decimals
    assert back.schema.field("amount").type == pa.decimal128(18, 2)
    assert back.column("amount").to_pylist() == sample.column("amount").to_pylist()


def test_csv_read_int_with_empties_and_timestamps(base: Path, conn: FileConnector) -> None:
    (base / "in.csv").write_text(
        "id,when,day,label\n"
        "1,2024-01-01 10:00:00,2024-01-01,a\n"
        ",2024-01-02 11:30:00.5,,\n"
        "3,,2024-01-03,c\n",
        encoding="utf-8",
    )
    rel = conn.read(ReadRequest(path="in.csv"))
    assert rel.schema.field("id").type == pa.int64()
    assert pa.types.is_timestamp(rel.schema.field("when").type)
    assert rel.schema.field("day").type == pa.date32()
    rows = rel.to_table().to_pylist()
    assert [r["id"] for r in rows] == [1, None, 3]
    assert rows[1]["when"] == dt.datetime(2024, 1, 2, 11, 30, 0, 500000)
    assert [r["label"] for r in rows] == ["a", None, "c"]


def test_csv_options_delimiter_header_nulls(base: Path, conn: FileConnector) -> None:
    (base / "in.txt").write_text("1;x;NA\n2;y;5\n", encoding="utf-8")
    rel = conn.read(
        ReadRequest(
            path="in.txt",
            file_format="csv",
            options={
                "delimiter": ";",
                "header": False,
                "column_names": ["id", "code", "qty"],
                "null_values": ["", "NA"],
                "column_types": {"id": "int32"},
            },
        )
    )
    assert _type_names(rel.schema) == {"id": "int32", "code": "string", "qty": "int64"}
    assert rel.to_table().to_pylist() == [
        {"id": 1, "code": "x", "qty": None},
        {"id": 2, "code": "y", "qty": 5},
    ]


def test_excel_round_trip(conn: FileConnector, sample: pa.Table) -> None:
    result = conn.write(Relation.from_table(sample), WriteRequest(path="t.xlsx"))
    assert result.rows_loaded == 4
    back = conn.read(ReadRequest(path="t.xlsx"))
    assert _type_names(back.schema) == {
        "id": "int64",
        "name": "string",
        "amount": "double",
        "ratio": "double",
        "active": "bool",
        "ts": "timestamp[us]",
    }
    rows = back.to_table().to_pylist()
    assert [r["id"] for r in rows] == [1, 2, None, 4]
    # Excel cannot tell an empty string from an empty cell
    assert [r["name"] for r in rows] == ["Zoë", "東京", None, None]
    assert [r["amount"] for r in rows] == [1.1, None, -12345.67, 0.0]
    # Excel has no time zones (written as UTC wall time) and keeps milliseconds
    assert rows[0]["ts"] == dt.datetime(2024, 1, 1, 10, 0)
    assert rows[2]["ts"] == dt.datetime(2024, 6, 30, 23, 59, 59, 123000)


def test_excel_all_null_row_in_the_middle_is_kept(conn: FileConnector) -> None:
    table = pa.table({"a": [1, None, 3], "b": ["x", None, "z"]})
    conn.write(Relation.from_table(table), WriteRequest(path="n.xlsx"))
    assert conn.read(ReadRequest(path="n.xlsx")).to_table().to_pylist() == table.to_pylist()


def test_json_records_path_and_encoding(base: Path, conn: FileConnector) -> None:
    (base / "doc.json").write_bytes(
        '{"data": {"rows": [{"a": 1, "b": "é"}, {"a": null, "b": "ü"}]}}'.encode("latin-1")
    )
    rel = conn.read(
        ReadRequest(path="doc.json", options={"records_path": "data.rows", "encoding": "latin-1"})
    )
    assert rel.to_table().to_pylist() == [{"a": 1, "b": "é"}, {"a": None, "b": "ü"}]


def test_parquet_decimals_and_tz_survive_batches(conn: FileConnector, base: Path) -> None:
    n = 25_000
    table = pa.table(
        {
            "d": pa.array([decimal.Decimal(i) / 100 for i in range(n)], pa.decimal128(18, 2)),
            "t": pa.array(
                [
                    dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=i)
                    for i in range(n)
                ],
                pa.timestamp("us", tz="America/New_York"),
            ),
        }
    )
    result = conn.write(
        Relation.from_table(table, batch_size=1_000),
        WriteRequest(path="p.parquet", batch_size=10_000),
    )
    assert result.rows_loaded == n
    meta = pq.ParquetFile(base / "p.parquet").metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [
        10_000,
        10_000,
        5_000,
    ]
    batches = list(conn.read(ReadRequest(path="p.parquet", batch_size=7_000)))
    assert [b.num_rows for b in batches] == [7_000, 7_000, 7_000, 4_000]
    assert pa.Table.from_batches(batches).equals(table)


def test_describe_and_test_connection(base: Path, tmp_path: Path) -> None:
    conn = FileConnector({"base_dir": str(base), "file_path": "x/y.csv"})
    assert conn.describe() == str(base / "x" / "y.csv")
    assert conn.test_connection() is True
    assert FileConnector({"base_dir": str(base)}).describe() == str(base)
    assert FileConnector({"base_dir": str(tmp_path / "missing")}).test_connection() is False
    assert FileConnector({}).test_connection() is True
