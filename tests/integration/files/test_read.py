"""Reading: globs, compression, Excel sheets, empty/corrupt files, encodings, streaming."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import openpyxl
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from nexus_dagster.connectors.base import ReadRequest
from nexus_dagster.connectors.file import FileConnector
from nexus_dagster.errors import ConnectorError, DataError, SpecError


def test_glob_concatenates_sorted_with_source_file(base: Path, conn: FileConnector) -> None:
    data = base / "data"
    data.mkdir()
    (data / "b.csv").write_text("id,v\n3,\n4,\n")  # v all empty here
    (data / "a.csv").write_text("id,v\n1,x\n2,y\n")
    (data / "c.txt").write_text("not matched")
    rel = conn.read(ReadRequest(path="data/*.csv", options={"source_file_column": True}))
    assert rel.schema.names == ["id", "v", "_source_file"]
    assert rel.to_table().to_pylist() == [
        {"id": 1, "v": "x", "_source_file": "data/a.csv"},
        {"id": 2, "v": "y", "_source_file": "data/a.csv"},
        {"id": 3, "v": None, "_source_file": "data/b.csv"},
        {"id": 4, "v": None, "_source_file": "data/b.csv"},
    ]
    named = conn.read(ReadRequest(path="data/*.csv", options={"source_file_column": "src"}))
    assert named.schema.names[-1] == "src"


def test_glob_unifies_int_and_float(base: Path, conn: FileConnector) -> None:
    (base / "1.csv").write_text("x\n1\n")
    (base / "2.csv").write_text("x\n2.5\n3.25\n")  # fraction digits differ: float64
    rel = conn.read(ReadRequest(path="*.csv"))
    assert rel.schema.field("x").type == pa.float64()
    assert rel.to_table().column("x").to_pylist() == [1.0, 2.5, 3.25]


def test_glob_incompatible_types_name_the_column(base: Path, conn: FileConnector) -> None:
    (base / "1.csv").write_text("code\n1\n")
    (base / "2.csv").write_text("code\nA7\n")
    with pytest.raises(DataError, match=r"code.*column_types"):
        conn.read(ReadRequest(path="*.csv"))
    rel = conn.read(ReadRequest(path="*.csv", options={"column_types": {"code": "string"}}))
    assert rel.to_table().column("code").to_pylist() == ["1", "A7"]


def test_glob_without_match(conn: FileConnector) -> None:
    with pytest.raises(ConnectorError, match=r"no file matches .*nothing/\*\.csv"):
        conn.read(ReadRequest(path="nothing/*.csv"))


def test_missing_file_names_the_path(base: Path, conn: FileConnector) -> None:
    with pytest.raises(ConnectorError, match=r"file not found: .*missing\.csv"):
        conn.read(ReadRequest(path="missing.csv"))


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_gzip_input(base: Path, conn: FileConnector, fmt: str) -> None:
    text = "a,b\n1,é\n2,\n" if fmt == "csv" else '{"a": 1, "b": "é"}\n{"a": 2, "b": null}\n'
    (base / f"in.{fmt}.gz").write_bytes(gzip.compress(text.encode()))
    rel = conn.read(ReadRequest(path=f"in.{fmt}.gz"))
    assert rel.to_table().to_pylist() == [{"a": 1, "b": "é"}, {"a": 2, "b": None}]


def test_zip_input(base: Path, conn: FileConnector) -> None:
    with zipfile.ZipFile(base / "in.csv.zip", "w") as z:
        z.writestr("in.csv", "a\n1\n2\n")
    assert conn.read(ReadRequest(path="in.csv.zip")).to_table().column("a").to_pylist() == [1, 2]


def test_gzip_parquet_input(base: Path, conn: FileConnector) -> None:
    import io

    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table({"a": [1, 2]}), buf)
    (base / "p.parquet.gz").write_bytes(gzip.compress(buf.getvalue()))
    assert conn.read(ReadRequest(path="p.parquet.gz")).to_table().column("a").to_pylist() == [1, 2]


def _workbook(path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "north"
    ws.append(["Quarterly report"])  # a title row above the header
    ws.append(["region", "sales", "day"])
    ws.append(["oslo", 10, None])
    ws.append(["bergen", 12.5, None])
    south = wb.create_sheet("south")
    south.append(["ignored"])
    south.append(["region", "sales", "extra"])
    south.append(["rome", 7, "#N/A"])
    south.append(["nice", None, "yes"])
    wb.save(path)


def test_excel_all_sheets_add_sheet_name(base: Path, conn: FileConnector) -> None:
    _workbook(base / "r.xlsx")
    rel = conn.read(ReadRequest(path="r.xlsx", options={"sheet_name": None, "header_row": 2}))
    assert rel.schema.names == ["region", "sales", "day", "extra", "sheet_name"]
    assert rel.schema.field("sales").type == pa.float64()
    rows = rel.to_table().to_pylist()
    assert [(r["region"], r["sales"], r["extra"], r["sheet_name"]) for r in rows] == [
        ("oslo", 10.0, None, "north"),
        ("bergen", 12.5, None, "north"),
        ("rome", 7.0, None, "south"),
        ("nice", None, "yes", "south"),
    ]
    star = conn.read(ReadRequest(path="r.xlsx", options={"sheet_name": "*", "header_row": 2}))
    assert star.to_table().num_rows == 4
    listed = conn.read(
        ReadRequest(path="r.xlsx", options={"sheet_name": ["south"], "header_row": 2})
    )
    assert listed.to_table().column("sheet_name").to_pylist() == ["south", "south"]


def test_excel_single_sheet(base: Path, conn: FileConnector) -> None:
    _workbook(base / "r.xlsx")
    first = conn.read(ReadRequest(path="r.xlsx", options={"header_row": 2}))
    assert first.schema.names == ["region", "sales", "day"]
    assert first.schema.field("sales").type == pa.float64()
    south = conn.read(ReadRequest(path="r.xlsx", options={"sheet_name": "south", "header_row": 2}))
    assert south.schema.field("sales").type == pa.int64()
    assert south.to_table().to_pylist() == [
        {"region": "rome", "sales": 7, "extra": None},
        {"region": "nice", "sales": None, "extra": "yes"},
    ]
    with pytest.raises(DataError, match="no sheet 'west'; sheets: north, south"):
        conn.read(ReadRequest(path="r.xlsx", options={"sheet_name": "west"}))


def test_excel_batches(base: Path, conn: FileConnector) -> None:
    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("s")
    ws.append(["n"])
    for i in range(2_500):
        ws.append([i])
    wb.save(base / "big.xlsx")
    batches = list(conn.read(ReadRequest(path="big.xlsx", batch_size=1_000)))
    assert [b.num_rows for b in batches] == [1_000, 1_000, 500]


def test_header_only_csv_gives_zero_rows(base: Path, conn: FileConnector) -> None:
    (base / "h.csv").write_text("id,name,amount\n")
    rel = conn.read(ReadRequest(path="h.csv"))
    assert rel.schema.names == ["id", "name", "amount"]
    table = rel.to_table()
    assert table.num_rows == 0 and table.column_names == ["id", "name", "amount"]


@pytest.mark.parametrize("name", ["e.csv", "e.jsonl", "e.json", "e.parquet", "e.xlsx"])
def test_zero_byte_file_is_a_clear_error(base: Path, conn: FileConnector, name: str) -> None:
    (base / name).write_bytes(b"")
    with pytest.raises(DataError, match=rf"file .*{name} is empty"):
        conn.read(ReadRequest(path=name))


def test_empty_gzip_content(base: Path, conn: FileConnector) -> None:
    (base / "e.csv.gz").write_bytes(gzip.compress(b""))
    with pytest.raises(DataError, match="is empty"):
        conn.read(ReadRequest(path="e.csv.gz"))


def test_wrong_encoding_names_file_and_encoding(base: Path, conn: FileConnector) -> None:
    (base / "latin.csv").write_bytes("name\nJosé\nMüller\n".encode("latin-1"))
    with pytest.raises(DataError) as info:
        conn.read(ReadRequest(path="latin.csv")).to_table()
    message = str(info.value)
    assert "latin.csv" in message and "utf-8" in message and "options.encoding" in message
    rel = conn.read(ReadRequest(path="latin.csv", options={"encoding": "latin-1"}))
    assert rel.to_table().column("name").to_pylist() == ["José", "Müller"]


def test_wrong_encoding_jsonl(base: Path, conn: FileConnector) -> None:
    (base / "latin.jsonl").write_bytes('{"n": "José"}\n'.encode("latin-1"))
    with pytest.raises(DataError, match=r"latin.jsonl.*utf-8.*options.encoding"):
        conn.read(ReadRequest(path="latin.jsonl")).to_table()
    rel = conn.read(ReadRequest(path="latin.jsonl", options={"encoding": "latin-1"}))
    assert rel.to_table().to_pylist() == [{"n": "José"}]


def test_corrupt_parquet_names_the_file(base: Path, conn: FileConnector) -> None:
    (base / "bad.parquet").write_bytes(b"PAR1 this is not parquet at all")
    with pytest.raises(DataError, match=r"bad\.parquet"):
        conn.read(ReadRequest(path="bad.parquet"))


@pytest.mark.parametrize(
    ("name", "text"),
    [("bad.json", '[{"a": 1},'), ("bad.jsonl", '{"a": 1\n'), ("bad.xlsx", "not a zip")],
)
def test_corrupt_json_names_the_file(base: Path, conn: FileConnector, name: str, text: str) -> None:
    (base / name).write_text(text)
    with pytest.raises(DataError, match=name.replace(".", r"\.")):
        conn.read(ReadRequest(path=name)).to_table()


def test_type_change_after_first_block_is_a_data_error(base: Path, conn: FileConnector) -> None:
    lines = ["n"] + [str(i) for i in range(50_000)] + ["oops"]
    (base / "drift.csv").write_text("\n".join(lines) + "\n")
    rel = conn.read(ReadRequest(path="drift.csv", options={"block_size": 65536}))
    assert rel.schema.field("n").type == pa.int64()
    with pytest.raises(DataError, match=r"drift\.csv.*column_types"):
        rel.to_table()


def test_unknown_extension_asks_for_file_format(base: Path, conn: FileConnector) -> None:
    (base / "data.dat").write_text("a\n1\n")
    with pytest.raises(SpecError, match="file_format"):
        conn.read(ReadRequest(path="data.dat"))
    assert conn.read(ReadRequest(path="data.dat", file_format="csv")).to_table().num_rows == 1


def test_relation_is_reiterable(base: Path, conn: FileConnector) -> None:
    (base / "r.csv").write_text("a\n1\n2\n")
    rel = conn.read(ReadRequest(path="r.csv"))
    assert rel.to_table().equals(rel.to_table())


def _stream_csv(base: Path, conn: FileConnector, n: int) -> tuple[int, int, list[int], int]:
    """Write an n-row CSV and stream it in 100,000-row batches.

    Returns (peak Arrow bytes in flight, bytes of the whole table, batch sizes, sum of ids)."""
    table = pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "name": pa.array([f"customer-{i:07d}" for i in range(n)]),
            "amount": pa.array([i * 0.25 for i in range(n)]),
        }
    )
    pacsv.write_csv(table, base / f"big_{n}.csv")
    full_size = table.nbytes
    del table
    rel = conn.read(ReadRequest(path=f"big_{n}.csv", batch_size=100_000))
    start = pa.total_allocated_bytes()
    peak = 0
    sizes = []
    total = 0
    for batch in rel:
        sizes.append(batch.num_rows)
        total += int(pa.compute.sum(batch.column("id")).as_py())
        peak = max(peak, pa.total_allocated_bytes() - start)
        del batch
    return peak, full_size, sizes, total


@pytest.mark.slow
def test_csv_streams_in_memory_that_does_not_grow_with_the_file(
    base: Path, conn: FileConnector
) -> None:
    small_peak, _, sizes, total = _stream_csv(base, conn, 1_000_000)
    assert sizes == [100_000] * 10
    assert total == 1_000_000 * 999_999 // 2
    peak, full_size, sizes, total = _stream_csv(base, conn, 3_000_000)
    assert sizes == [100_000] * 30
    assert total == 3_000_000 * 2_999_999 // 2
    # Arrow memory in flight is the reader's read-ahead (a few batches, more on machines with
    # more cores), not the file: three times the rows, about the same peak
    assert peak < small_peak * 1.5 + 4_000_000, (small_peak, peak)
    assert peak < full_size / 3, (peak, full_size)
