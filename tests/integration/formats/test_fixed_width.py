"""Fixed-width files: columns by widths or colspecs, names given or from the header line, CRLF
line ends, unicode, short lines, types inferred or given; written padded, never cut."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest

from nexus_dagster.connectors.base import ReadRequest, WriteRequest
from nexus_dagster.connectors.file import FileConnector
from nexus_dagster.errors import DataError, LoadError, SpecError
from nexus_dagster.relation import Relation


def test_widths_with_header_line_crlf_unicode_and_short_lines(
    base: Path, conn: FileConnector
) -> None:
    rows = [("id", "name", "amount", "joined"), ("1", "Zoë", "12.50", "2024-01-31"),
            ("2", "東京", "", "2024-02-01")]
    lines = ["".join(v.ljust(w) for v, w in zip(r, (6, 10, 10, 10), strict=True)) for r in rows]
    lines += ["", "3     Bob"]  # a blank line and a short one
    (base / "people.fwf").write_bytes("".join(f"{line}\r\n" for line in lines).encode())
    rel = conn.read(ReadRequest(path="people.fwf", options={"widths": [6, 10, 10, 10]}))
    assert rel.schema == pa.schema([("id", pa.int64()), ("name", pa.string()),
                                    ("amount", pa.float64()), ("joined", pa.date32())])
    assert rel.to_table().to_pylist() == [
        {"id": 1, "name": "Zoë", "amount": 12.5, "joined": dt.date(2024, 1, 31)},
        {"id": 2, "name": "東京", "amount": None, "joined": dt.date(2024, 2, 1)},
        {"id": 3, "name": "Bob", "amount": None, "joined": None},
    ]


def test_colspecs_with_gaps_names_skip_rows_and_column_types(
    base: Path, conn: FileConnector
) -> None:
    (base / "bank.txt").write_text("HEADER 2024\n00042|ACME  |  0100\n00043|BETA  |  0200\n")
    rel = conn.read(ReadRequest(path="bank.txt", file_format="fixed_width", options={
        "colspecs": [[0, 5], [6, 12], [13, 19]], "names": ["account", "holder", "cents"],
        "skip_rows": 1, "column_types": {"account": "string"},
    }))
    assert rel.to_table().to_pylist() == [
        {"account": "00042", "holder": "ACME", "cents": 100},
        {"account": "00043", "holder": "BETA", "cents": 200},
    ]


def test_latin1_file_is_read_with_its_encoding(base: Path, conn: FileConnector) -> None:
    (base / "l.fwf").write_bytes("1 Müller\n".encode("latin-1"))
    rel = conn.read(ReadRequest(path="l.fwf", options={
        "widths": [2, 10], "names": ["id", "name"], "encoding": "latin-1"}))
    assert rel.to_table().to_pylist() == [{"id": 1, "name": "Müller"}]


def test_missing_widths_and_wrong_name_count_are_spec_errors(
    base: Path, conn: FileConnector
) -> None:
    (base / "a.fwf").write_text("1 x\n")
    with pytest.raises(SpecError, match=r"needs options.widths"):
        conn.read(ReadRequest(path="a.fwf"))
    with pytest.raises(SpecError, match="2 names for 1 fixed-width columns"):
        conn.read(ReadRequest(path="a.fwf", options={"widths": [2], "names": ["a", "b"]}))
    with pytest.raises(SpecError, match="widths must be a list of positive integers"):
        conn.read(ReadRequest(path="a.fwf", options={"widths": [2, 0]}))


def test_a_late_value_of_another_type_fails_naming_the_column(
    base: Path, conn: FileConnector
) -> None:
    (base / "a.fwf").write_text("1\n2\nx\n")
    rel = conn.read(ReadRequest(path="a.fwf", batch_size=2,
                                options={"widths": [1], "names": ["n"]}))
    with pytest.raises(DataError, match=r"column 'n' .*column_types"):
        rel.to_table()


def test_written_file_is_padded_and_reads_back(base: Path, conn: FileConnector) -> None:
    table = pa.table({"id": [1, 22, None], "name": ["Zoë", "Bob", None],
                      "amount": [1.5, -20.25, 3.0]})
    conn.write(Relation.from_table(table), WriteRequest(
        path="out.fwf", write_mode="overwrite",
        options={"widths": [4, 6, 8], "header": True}))
    assert (base / "out.fwf").read_text() == (
        "  idname    amount\n"
        "   1Zoë        1.5\n"
        "  22Bob     -20.25\n"
        "                 3\n"
    )
    back = conn.read(ReadRequest(path="out.fwf", options={"widths": [4, 6, 8]}))
    assert back.to_table().to_pylist() == [
        {"id": 1, "name": "Zoë", "amount": 1.5},
        {"id": 22, "name": "Bob", "amount": -20.25},
        {"id": None, "name": None, "amount": 3.0},
    ]


def test_a_value_wider_than_its_column_fails_and_leaves_the_old_file(
    base: Path, conn: FileConnector
) -> None:
    (base / "out.fwf").write_text("old\n")
    with pytest.raises(LoadError, match=r"row 2: value 'toolong' of column 'name' is 7"):
        conn.write(Relation.from_table(pa.table({"name": ["ok", "toolong"]})),
                   WriteRequest(path="out.fwf", write_mode="overwrite",
                                options={"widths": [4]}))
    assert (base / "out.fwf").read_text() == "old\n"
    assert sorted(p.name for p in base.iterdir()) == ["out.fwf"]
