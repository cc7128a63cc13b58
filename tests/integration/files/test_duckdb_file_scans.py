"""Local CSV and Parquet sources scanned by DuckDB itself (nexus_dagster/run/file_scans.py):
the same rows, types, order and counts as the Arrow path (``NEXUS_FILE_SCAN=0``), projections
and filters pushed into the scan, and the sources that keep the Arrow path."""

from __future__ import annotations

import datetime as dt
import decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nexus_dagster.connectors.base import Cursor, ReadRequest
from nexus_dagster.connectors.file import FileConnector
from nexus_dagster.errors import DataError
from nexus_dagster.run import SourceExtracted, TargetLoaded, execute
from nexus_dagster.run.file_scans import FILE_SCAN_ENV, FileScan, file_scan
from nexus_dagster.spec.loader import load_project
from nexus_dagster.spec.models import DataSource
from tests.support import write_job

#: quoted delimiters, doubled quotes and a newline in a field, CRLF, a blank line, a quoted
#: empty string (not null), ``NA`` and empty fields as nulls, decimals, dates, booleans
CSV_ROWS = (
    "id,name,amount,day,flag,region\r\n"
    '1,"Zoë, ""the"" first\nline",10.50,2024-01-02,true,north\r\n'
    "\r\n"
    "2,,NA,,false,south\r\n"
    '3,"",2.25,2024-03-04,,north\r\n'
    "4,東京,-7.75,2023-12-31,true,NA\r\n"
    "5,plain,0.10,2024-02-29,false,south\r\n"
)
CSV_OPTIONS = {"null_values": ["", "NA"], "column_types": {"amount": "decimal(12,2)"}}
_SCANNED = FileScan.scanned


def _source(path: Path, fmt: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    source = {"name": "src", "source_type": "file", "file_path": str(path), "file_format": fmt}
    if options:
        source["options"] = options
    return source


def _job(tmp_path: Path, source: dict[str, Any], steps: list[dict[str, Any]]) -> Path:
    return write_job(tmp_path, {
        "name": "scan_job", "sources": [source], "transformations": steps,
        "targets": [{"name": "out", "target_type": "file", "file_format": "parquet",
                     "file_path": str(tmp_path / "out.parquet"), "write_mode": "overwrite"}],
    })  # fmt: skip


def _run(folder: Path, monkeypatch: pytest.MonkeyPatch, *, scan: bool
         ) -> tuple[pa.Table, int, int, list[str]]:
    """The job's output table, rows_extracted, the source's rows, and the scans DuckDB read."""
    monkeypatch.setenv(FILE_SCAN_ENV, "1" if scan else "0")
    used: list[str] = []

    def scanned(self: FileScan, con: Any) -> None:
        used.append(self.fmt)
        _SCANNED(self, con)

    monkeypatch.setattr(FileScan, "scanned", scanned)
    project = load_project(folder)
    events = list(execute(project.job("scan_job"), project.connections))
    loaded = next(e for e in events if isinstance(e, TargetLoaded))
    source = next(e for e in events if isinstance(e, SourceExtracted))
    table = pq.read_table(folder.parent / "out.parquet")
    return table, loaded.rows_extracted, source.rows, used


def _same_both_ways(folder: Path, monkeypatch: pytest.MonkeyPatch, fmt: str) -> pa.Table:
    """Run with and without the scan: assert the scan was read and everything is equal."""
    arrow = _run(folder, monkeypatch, scan=False)
    scanned = _run(folder, monkeypatch, scan=True)
    assert arrow[3] == [] and scanned[3] == [fmt]
    assert scanned[0].schema == arrow[0].schema
    assert scanned[0].to_pylist() == arrow[0].to_pylist()
    assert scanned[1:3] == arrow[1:3]
    return scanned[0]


def test_csv_scan_gives_the_arrow_paths_rows_types_order_and_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(CSV_ROWS.encode())
    folder = _job(tmp_path, _source(path, "csv", CSV_OPTIONS), [
        {"name": "some", "transformation_type": "filter",
         "config": {"condition": "id != 5"}},
        {"name": "more", "transformation_type": "map",
         "config": {"mappings": {"double": "amount * 2"}}},
        {"name": "ordered", "transformation_type": "sort",
         "config": {"columns": ["region", "id"], "ascending": [True, False]}},
    ])  # fmt: skip
    table = _same_both_ways(folder, monkeypatch, "csv")
    assert table.column("id").to_pylist() == [3, 1, 2, 4]
    assert table.column("name").to_pylist()[:2] == ["", 'Zoë, "the" first\nline']
    assert table.schema.field("amount").type == pa.decimal128(12, 2)
    assert table.schema.field("day").type == pa.date32()


def test_csv_glob_scan_keeps_file_and_row_order_for_order_dependent_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """deduplicate keeps the first row of each key in read order (files sorted, rows in
    file order): the scan's row numbers must follow that order across files."""
    folder_in = tmp_path / "in"
    folder_in.mkdir()
    for part in range(3):
        lines = ["key,part,row"] + [f"{row % 7},{part},{row}" for row in range(2000)]
        (folder_in / f"part_{part}.csv").write_text("\n".join(lines) + "\n")
    folder = _job(tmp_path, _source(folder_in / "part_*.csv", "csv"), [
        {"name": "latest", "transformation_type": "sort",
         "config": {"columns": ["key"], "ascending": [True]}},
        {"name": "first", "transformation_type": "deduplicate",
         "config": {"subset": ["key"], "keep": "last"}},
    ])  # fmt: skip
    table = _same_both_ways(folder, monkeypatch, "csv")
    # the last row of each key in read order is in the last file
    assert set(table.column("part").to_pylist()) == {2}


def test_parquet_glob_scan_keeps_file_and_row_order_for_order_dependent_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Parquet scan numbers rows by file and row within the file (several row groups, a
    filter skipping rows): deduplicate keeps the same row as the Arrow path."""
    folder_in = tmp_path / "in"
    folder_in.mkdir()
    for part in range(3):
        pq.write_table(pa.table({"key": [row % 7 for row in range(2000)],
                                 "part": [part] * 2000, "row": list(range(2000))}),
                       folder_in / f"part_{part}.parquet", row_group_size=300)
    folder = _job(tmp_path, _source(folder_in / "part_*.parquet", "parquet"), [
        {"name": "some", "transformation_type": "filter", "config": {"condition": "row % 3 != 1"}},
        {"name": "first", "transformation_type": "deduplicate",
         "config": {"subset": ["key"], "keep": "first"}},
    ])  # fmt: skip
    table = _same_both_ways(folder, monkeypatch, "parquet")
    assert table.column("part").to_pylist() == [0] * 7
    assert table.column("row").to_pylist() == [0, 2, 3, 5, 6, 8, 11]


def test_parquet_glob_scan_gives_the_arrow_paths_result_and_metadata_row_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder_in = tmp_path / "in"
    folder_in.mkdir()
    schema = pa.schema([("id", pa.int64()), ("name", pa.string()),
                        ("amount", pa.decimal128(12, 2)), ("day", pa.date32()),
                        ("ts", pa.timestamp("us", tz="UTC")), ("ratio", pa.float64())])
    for part in range(2):
        base = part * 1000
        pq.write_table(pa.table({
            "id": [base + i for i in range(1000)],
            "name": [None if i % 10 == 0 else f"n{i % 13}" for i in range(1000)],
            "amount": [None if i % 7 == 0 else decimal.Decimal(i) / 100 for i in range(1000)],
            "day": [dt.date(2024, 1, 1) + dt.timedelta(days=i % 40) for i in range(1000)],
            "ts": [dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=i)
                   for i in range(1000)],
            "ratio": [i / 3 for i in range(1000)],
        }, schema=schema), folder_in / f"part_{part}.parquet", row_group_size=300)
    folder = _job(tmp_path, _source(folder_in / "*.parquet", "parquet"), [
        {"name": "recent", "transformation_type": "filter",
         "config": {"condition": 'day >= to_date("2024-01-10")'}},
        {"name": "per_name", "transformation_type": "aggregate",
         "config": {"group_by": ["name"],
                    "aggregations": {"total": ["amount", "sum"], "first_id": ["id", "min"],
                                     "rows": ["id", "size"], "last_ts": ["ts", "max"]}}},
    ])  # fmt: skip
    table = _same_both_ways(folder, monkeypatch, "parquet")
    assert table.num_rows >= 13
    assert _run(folder, monkeypatch, scan=True)[1:3] == (2000, 2000)  # the files' metadata


def test_scan_pushes_projection_and_filter_into_the_file_read(tmp_path: Path) -> None:
    """DuckDB's plan of a query over the scan reads only the used columns, and the Parquet
    scan filters row groups itself (the filter is in READ_PARQUET, not above it)."""
    parquet = tmp_path / "wide.parquet"
    pq.write_table(pa.table({"a": list(range(100)), "b": list(range(100)),
                             "huge": ["x" * 1000] * 100}), parquet)
    csv = tmp_path / "wide.csv"
    csv.write_text("a,b,huge\n" + "".join(f"{i},{i},{'x' * 50}\n" for i in range(100)))
    source = DataSource.model_validate({"name": "s", "source_type": "file", "file_path": "x"})
    plans = {}
    for path, fmt in ((parquet, "parquet"), (csv, "csv")):
        connector = FileConnector({})
        request = ReadRequest(path=str(path), file_format=fmt)
        scan = file_scan(source, connector, request, connector.read(request), lambda n: None)
        assert scan is not None
        con = duckdb.connect()
        con.execute(f"CREATE VIEW v AS {scan.select_sql()}")
        plans[fmt] = con.execute("EXPLAIN SELECT a FROM v WHERE b > 90").fetchall()[0][1]
        con.close()
    read_parquet = plans["parquet"][plans["parquet"].index("READ_PARQUET"):]
    assert "huge" not in plans["parquet"] and "Filters" in read_parquet
    assert "b>90" in read_parquet.replace(" ", "")
    read_csv = plans["csv"][plans["csv"].index("READ_CSV"):]
    assert "huge" not in plans["csv"] and "Projections" in read_csv


def test_csv_scan_counts_rows_without_a_profile(tmp_path: Path) -> None:
    """Rows are counted from the statement's profile; without one, by counting the files."""
    path = tmp_path / "in.csv"
    path.write_bytes(CSV_ROWS.encode())
    source = DataSource.model_validate({"name": "s", "source_type": "file", "file_path": "x"})
    connector = FileConnector({})
    request = ReadRequest(path=str(path), options=CSV_OPTIONS)
    counts: list[int] = []
    scan = file_scan(source, connector, request, connector.read(request), counts.append)
    assert scan is not None
    con = duckdb.connect()
    con.execute("SET enable_profiling = 'no_output'")
    con.sql(f"SELECT id FROM ({scan.select_sql()})").fetchall()
    scan.scanned(con)
    scan.scanned(duckdb.connect())  # no profile
    assert counts == [5, 5]


@pytest.mark.parametrize(
    ("name", "options", "cursor"),
    [
        ("in.csv.gz", {}, None),
        ("in.csv", {"encoding": "latin-1"}, None),
        ("in.csv", {"names": ["a", "b", "c", "d", "e", "f"]}, None),
        ("in.csv", {"source_file_column": True}, None),
        ("in.csv", {}, Cursor("id", 2, inclusive=False)),
        ("in.csv", {"column_types": {"day": "date64"}}, None),
    ],
    ids=["compressed", "latin-1", "column-names", "source-file-column", "cursor",
         "date64"],
)
def test_sources_the_scan_cannot_reproduce_keep_the_arrow_path(
    tmp_path: Path, name: str, options: dict[str, Any], cursor: Cursor | None
) -> None:
    import gzip

    path = tmp_path / name
    data = CSV_ROWS.replace("NA", "").encode()
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    source = DataSource.model_validate({"name": "s", "source_type": "file", "file_path": "x"})
    connector = FileConnector({})
    request = ReadRequest(path=str(path), file_format="csv", options=options, cursor=cursor)
    assert file_scan(source, connector, request, connector.read(request), print) is None
    plain = ReadRequest(path=str(path), file_format="csv")
    if not name.endswith(".gz"):  # the same file without those options is scanned
        assert file_scan(source, connector, plain, connector.read(plain), print) is not None


def test_csv_scan_refuses_decimal_digits_the_arrow_path_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A value past the first block with more non-zero fraction digits than the column's
    scale fails both ways (DuckDB alone would round it); trailing zeros are fine."""
    lines = ["id,amount"] + [f"{i},{i}.50" for i in range(3000)] + ["3000,1.230", "3001,"]
    path = tmp_path / "in.csv"
    path.write_text("\n".join([*lines, "3002,1.2345"]) + "\n")
    options = {"column_types": {"amount": "decimal(12,2)"}, "block_size": 4096}
    folder = _job(tmp_path, _source(path, "csv", options), [
        {"name": "all", "transformation_type": "filter", "config": {"condition": "id >= 0"}},
    ])  # fmt: skip
    for scan in (False, True):
        with pytest.raises(DataError) as failed:
            _run(folder, monkeypatch, scan=scan)
        assert "in.csv" in str(failed.value)
    assert "'amount' has the value '1.2345'" in str(failed.value)
    path.write_text("\n".join(lines) + "\n")
    table = _same_both_ways(folder, monkeypatch, "csv")
    assert table.column("amount").to_pylist()[-2:] == [decimal.Decimal("1.23"), None]


def test_source_read_twice_in_one_statement_is_scanned_once_and_counted_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A self-join reads the source twice: the scan is copied once into a temporary table."""
    path = tmp_path / "in.csv"
    path.write_bytes(CSV_ROWS.encode())
    folder = _job(tmp_path, _source(path, "csv", CSV_OPTIONS), [
        {"name": "pairs", "transformation_type": "join",
         "config": {"left": "src", "right": "src", "left_on": "region", "right_on": "region",
                    "suffixes": ["", "_other"]}},
    ])  # fmt: skip
    table = _same_both_ways(folder, monkeypatch, "csv")
    assert table.num_rows == 2 * 2 + 2 * 2  # north x north, south x south (NA region: null)
    assert _run(folder, monkeypatch, scan=True)[1:3] == (5, 5)


@pytest.mark.parametrize("scale", [0, 2])
def test_csv_scan_decimal_check_accepts_exactly_the_values_pyarrow_accepts(
    tmp_path: Path, scale: int
) -> None:
    """Each value alone in a file: the scan reads it (to the same decimal) exactly when
    pyarrow's CSV reader does, and refuses it naming the value when pyarrow refuses it."""
    import pyarrow.csv as pacsv

    values = ["17", "-7", "5.", "0.5", "1.25", "-1.25", "1.250", "1.2500", "1.251", "1.2345",
              "12345678901.99", "12345678901.990", "12345678901.991", ".5", ".005", ".000"]
    type_ = pa.decimal128(15, scale)
    source = DataSource.model_validate({"name": "s", "source_type": "file", "file_path": "x"})
    connector = FileConnector({})
    for index, value in enumerate(values):
        path = tmp_path / f"v{index}.csv"
        path.write_text("id,amount\n1,1\n")
        options = {"column_types": {"amount": f"decimal(15,{scale})"}}
        request = ReadRequest(path=str(path), options=options)
        scan = file_scan(source, connector, request, connector.read(request), print)
        assert scan is not None
        path.write_text(f"id,amount\n1,{value}\n")  # the scan reads the file when queried
        try:
            expected = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
                column_types={"amount": type_})).column("amount").to_pylist()
        except pa.ArrowInvalid:
            expected = None
        try:
            got = [row[0] for row in duckdb.sql(
                f"SELECT amount FROM ({scan.select_sql()})").fetchall()]
        except duckdb.Error as exc:
            assert expected is None, (value, str(exc))
            assert f"has the value '{value}'" in str(exc)
        else:
            assert got == expected, value
