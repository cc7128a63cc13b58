"""Writing: atomic replacement, append semantics, path confinement, a pluggable filesystem."""

from __future__ import annotations

import decimal
import gzip
import os
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nexus_dagster.connectors.base import ReadRequest, WriteRequest
from nexus_dagster.connectors.file import FileConnector, FileParams
from nexus_dagster.errors import ConnectorError, LoadError, SpecError
from nexus_dagster.relation import Relation

ALL_FORMATS = ["csv", "tsv", "jsonl", "json", "parquet", "xlsx"]


def _rel(rows: list[dict], schema: pa.Schema | None = None) -> Relation:
    return Relation.from_table(pa.Table.from_pylist(rows, schema=schema))


def _failing(schema: pa.Schema) -> Relation:
    """A relation that yields one batch, then fails (a source dying midway)."""

    def batches() -> Iterator[pa.RecordBatch]:
        yield pa.RecordBatch.from_pylist([{"id": 100, "v": "new"}], schema=schema)
        raise RuntimeError("source connection lost")

    return Relation(schema, batches, name="failing")


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".tmp-" in p.name)


@pytest.mark.parametrize("fmt", ALL_FORMATS)
@pytest.mark.parametrize("mode", ["overwrite", "append"])
def test_failed_write_leaves_previous_file_untouched(
    conn: FileConnector, base: Path, fmt: str, mode: str
) -> None:
    schema = pa.schema([("id", pa.int64()), ("v", pa.string())])
    conn.write(_rel([{"id": 1, "v": "old"}], schema), WriteRequest(path=f"out/t.{fmt}"))
    target = base / "out" / f"t.{fmt}"
    before = target.read_bytes()
    if fmt == "xlsx" and mode == "append":
        mode = "overwrite"  # Excel append is refused up front (see below)
    with pytest.raises(LoadError, match=r"source connection lost.*left unchanged"):
        conn.write(_failing(schema), WriteRequest(path=f"out/t.{fmt}", write_mode=mode))
    assert target.read_bytes() == before
    assert _leftovers(base / "out") == []


def test_failed_first_write_leaves_nothing(conn: FileConnector, base: Path) -> None:
    schema = pa.schema([("id", pa.int64()), ("v", pa.string())])
    with pytest.raises(LoadError):
        conn.write(_failing(schema), WriteRequest(path="new/t.parquet"))
    assert list((base / "new").iterdir()) == []


def test_overwrite_replaces_and_keeps_mode(conn: FileConnector, base: Path) -> None:
    conn.write(_rel([{"a": 1}, {"a": 2}]), WriteRequest(path="t.csv"))
    os.chmod(base / "t.csv", 0o640)
    result = conn.write(_rel([{"a": 3}]), WriteRequest(path="t.csv", write_mode="overwrite"))
    assert result.rows_loaded == 1
    assert (base / "t.csv").read_text() == '"a"\n3\n'
    assert (base / "t.csv").stat().st_mode & 0o777 == 0o640


def test_write_streams_batches(conn: FileConnector, base: Path) -> None:
    """The writer consumes the relation batch by batch (it never asks for a table)."""
    seen: list[int] = []
    schema = pa.schema([("n", pa.int64())])

    def batches() -> Iterator[pa.RecordBatch]:
        for i in range(5):
            seen.append(i)
            yield pa.RecordBatch.from_pydict({"n": list(range(i * 10, i * 10 + 10))}, schema=schema)

    result = conn.write(Relation(schema, batches), WriteRequest(path="s.parquet", batch_size=10))
    assert result.rows_loaded == 50 and seen == [0, 1, 2, 3, 4]
    assert pq.ParquetFile(base / "s.parquet").metadata.num_row_groups == 5


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "json", "csv.gz", "jsonl.gz"])
def test_append_text_formats(conn: FileConnector, base: Path, fmt: str) -> None:
    conn.write(_rel([{"id": 1, "v": "a"}, {"id": 2, "v": None}]), WriteRequest(path=f"t.{fmt}"))
    result = conn.write(_rel([{"v": "c", "id": 3}]), WriteRequest(path=f"t.{fmt}"))
    assert result.rows_loaded == 1 and result.extra["appended"] is True
    rows = conn.read(ReadRequest(path=f"t.{fmt}")).to_table().to_pylist()
    assert rows == [{"id": 1, "v": "a"}, {"id": 2, "v": None}, {"id": 3, "v": "c"}]
    if fmt == "csv":
        assert (base / "t.csv").read_text().count('"id"') == 1  # one header


def test_append_csv_without_trailing_newline(conn: FileConnector, base: Path) -> None:
    (base / "t.csv").write_text("id,v\n1,a")
    conn.write(_rel([{"id": 2, "v": "b"}]), WriteRequest(path="t.csv"))
    rows = conn.read(ReadRequest(path="t.csv")).to_table().to_pylist()
    assert rows == [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}]


def test_append_gzip_is_valid_gzip(conn: FileConnector, base: Path) -> None:
    conn.write(_rel([{"id": 1}]), WriteRequest(path="t.csv.gz"))
    conn.write(_rel([{"id": 2}]), WriteRequest(path="t.csv.gz"))
    assert gzip.decompress((base / "t.csv.gz").read_bytes()) == b'"id"\n1\n2\n'


def test_append_csv_column_mismatch(conn: FileConnector, base: Path) -> None:
    conn.write(_rel([{"id": 1, "v": "a"}]), WriteRequest(path="t.csv"))
    before = (base / "t.csv").read_bytes()
    with pytest.raises(LoadError, match=r"missing from the new rows: v; not in the file: w"):
        conn.write(_rel([{"id": 2, "w": "b"}]), WriteRequest(path="t.csv"))
    assert (base / "t.csv").read_bytes() == before


def test_append_parquet_keeps_row_groups(conn: FileConnector, base: Path) -> None:
    schema = pa.schema([("id", pa.int64()), ("d", pa.decimal128(10, 2))])
    first = pa.table({"id": [1, 2], "d": pa.array([decimal.Decimal("1.5"), None], schema[1].type)})
    conn.write(Relation.from_table(first), WriteRequest(path="t.parquet"))
    more = pa.table(
        {
            "id": pa.array([3], pa.int32()),
            "d": pa.array([decimal.Decimal("3.1")], pa.decimal128(5, 1)),
        }
    )
    result = conn.write(Relation.from_table(more), WriteRequest(path="t.parquet"))
    assert result.rows_loaded == 1
    table = conn.read(ReadRequest(path="t.parquet")).to_table()
    assert table.schema == schema
    assert table.column("id").to_pylist() == [1, 2, 3]
    assert table.column("d").to_pylist() == [
        decimal.Decimal("1.50"),
        None,
        decimal.Decimal("3.10"),
    ]
    assert pq.ParquetFile(base / "t.parquet").metadata.num_row_groups == 2


def test_append_parquet_schema_mismatch_names_columns(conn: FileConnector, base: Path) -> None:
    conn.write(_rel([{"id": 1, "v": "a"}]), WriteRequest(path="t.parquet"))
    before = (base / "t.parquet").read_bytes()
    with pytest.raises(LoadError, match=r"missing from the new rows: v; not in the file: x"):
        conn.write(_rel([{"id": 2, "x": 1.5}]), WriteRequest(path="t.parquet"))
    with pytest.raises(LoadError, match=r"column v is string in the file but int64 now"):
        conn.write(_rel([{"id": 2, "v": 7}]), WriteRequest(path="t.parquet"))
    assert (base / "t.parquet").read_bytes() == before
    assert _leftovers(base) == []


def test_append_creates_missing_file_and_dirs(conn: FileConnector, base: Path) -> None:
    result = conn.write(_rel([{"a": 1}]), WriteRequest(path="x/y/z.jsonl", write_mode="append"))
    assert result.extra["appended"] is False
    assert (base / "x" / "y" / "z.jsonl").read_text() == '{"a": 1}\n'


def test_append_excel_is_refused(conn: FileConnector, base: Path) -> None:
    conn.write(_rel([{"a": 1}]), WriteRequest(path="t.xlsx"))
    with pytest.raises(LoadError, match="overwrite"):
        conn.write(_rel([{"a": 2}]), WriteRequest(path="t.xlsx"))


def test_unsupported_write_mode(conn: FileConnector) -> None:
    with pytest.raises(SpecError, match="upsert"):
        conn.write(_rel([{"a": 1}]), WriteRequest(path="t.csv", write_mode="upsert"))


def test_nested_columns_are_refused_for_csv(conn: FileConnector, base: Path) -> None:
    with pytest.raises(LoadError, match=r"tags \(list<"):
        conn.write(_rel([{"tags": ["a", "b"]}]), WriteRequest(path="t.csv"))
    conn.write(_rel([{"tags": ["a", "b"]}]), WriteRequest(path="t.jsonl"))
    assert conn.read(ReadRequest(path="t.jsonl")).to_table().to_pylist() == [{"tags": ["a", "b"]}]


@pytest.mark.parametrize("path", ["../escape.csv", "a/../../escape.csv", "/etc/escape.csv"])
def test_target_outside_base_dir_is_rejected(
    conn: FileConnector, tmp_path: Path, path: str
) -> None:
    with pytest.raises(ConnectorError, match="outside base_dir"):
        conn.write(_rel([{"a": 1}]), WriteRequest(path=path))
    assert not (tmp_path / "escape.csv").exists()


def test_target_through_symlink_is_rejected(
    conn: FileConnector, base: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (base / "link").symlink_to(outside)
    with pytest.raises(ConnectorError, match="symbolic link"):
        conn.write(_rel([{"a": 1}]), WriteRequest(path="link/t.csv"))
    (outside / "f.csv").write_text("a\n1\n")
    (base / "f.csv").symlink_to(outside / "f.csv")
    with pytest.raises(ConnectorError, match="symbolic link"):
        conn.write(_rel([{"a": 1}]), WriteRequest(path="f.csv", write_mode="overwrite"))
    with pytest.raises(ConnectorError, match="symbolic link"):
        conn.read(ReadRequest(path="link/*.csv"))
    assert (outside / "f.csv").read_text() == "a\n1\n"


def test_paths_inside_base_dir_work(conn: FileConnector, base: Path) -> None:
    conn.write(_rel([{"a": 1}]), WriteRequest(path="sub/../t.csv"))
    conn.write(_rel([{"a": 2}]), WriteRequest(path=str(base / "abs.csv")))
    conn.write(_rel([{"a": 3}]), WriteRequest(path=f"file://{base}/url.csv"))
    assert sorted(p.name for p in base.iterdir()) == ["abs.csv", "t.csv", "url.csv"]


def test_without_base_dir_relative_paths_use_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    conn = FileConnector({})
    conn.write(_rel([{"a": 1}]), WriteRequest(path="out/t.csv"))
    assert (tmp_path / "out" / "t.csv").exists()
    assert conn.read(ReadRequest(path="out/t.csv")).to_table().num_rows == 1


class MemoryParams(FileParams):
    """The file params plus the bucket."""

    bucket: str


class MemoryConnector(FileConnector):
    """What an object-store connector looks like: only the storage hooks differ."""

    kinds = ("memory",)
    Params = MemoryParams
    config: MemoryParams

    def filesystem(self) -> fsspec.AbstractFileSystem:
        return fsspec.filesystem("memory")

    def root(self) -> str | None:
        return "/" + self.config.bucket

    def location(self, path: str) -> str:
        return "memory:/" + path


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet", "xlsx"])
def test_pluggable_filesystem(fmt: str, sample: pa.Table) -> None:
    conn = MemoryConnector({"bucket": f"bucket-{fmt}"})
    table = sample.select(["id", "name"])
    result = conn.write(Relation.from_table(table), WriteRequest(path=f"dir/t.{fmt}"))
    assert result.location == f"memory://bucket-{fmt}/dir/t.{fmt}"
    conn.write(Relation.from_table(table), WriteRequest(path=f"dir/u.{fmt}"))
    if fmt != "xlsx":
        conn.write(Relation.from_table(table), WriteRequest(path=f"dir/t.{fmt}"))  # append
    rel = conn.read(ReadRequest(path=f"dir/*.{fmt}", options={"source_file_column": True}))
    rows = rel.to_table().to_pylist()
    expected_t = 8 if fmt != "xlsx" else 4
    assert [r["_source_file"] for r in rows] == [f"dir/t.{fmt}"] * expected_t + [f"dir/u.{fmt}"] * 4
    assert conn.test_connection() is True
    with pytest.raises(ConnectorError, match="outside base_dir"):
        conn.read(ReadRequest(path="../other/x.csv"))
    with pytest.raises(ConnectorError, match=r"file not found: memory://bucket-.*/nope\.csv"):
        conn.read(ReadRequest(path="nope.csv"))
    leftovers = [p for p in fsspec.filesystem("memory").find(f"/bucket-{fmt}") if ".tmp-" in p]
    assert leftovers == []
