"""Every member of a zip archive is read, with ``_source_file`` naming archive and member, or
the read fails clearly: never only the first member (issue 14 item 8)."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import pytest

from nexus_dagster.connectors.base import ReadRequest
from nexus_dagster.connectors.file import FileConnector
from nexus_dagster.errors import DataError, SpecError


def _zip(path: Path, members: dict[str, bytes | str]) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)


def test_every_csv_member_is_read_with_archive_and_member_in_source_file(
    base: Path, conn: FileConnector
) -> None:
    _zip(base / "orders.zip", {"jan.csv": "id,v\n1,a\n2,b\n", "feb.csv": "id,v\n3,c\n"})
    rel = conn.read(ReadRequest(path="orders.zip", options={"source_file_column": True}))
    assert rel.to_table().to_pylist() == [
        {"id": 1, "v": "a", "_source_file": "orders.zip!jan.csv"},
        {"id": 2, "v": "b", "_source_file": "orders.zip!jan.csv"},
        {"id": 3, "v": "c", "_source_file": "orders.zip!feb.csv"},
    ]


def test_directory_hidden_non_matching_and_empty_members_are_left_out_and_reported(
    base: Path, conn: FileConnector
) -> None:
    _zip(base / "orders.csv.zip", {
        "2024/": "",
        "2024/jan.csv": "id\n1\n",
        "2024/feb.csv.gz": gzip.compress(b"id\n2\n"),
        "empty.csv": "",
        "notes.json": '[{"id": 9}]',
        "README.txt": "not data",
        "__MACOSX/2024/._jan.csv": "resource fork",
    })
    rel = conn.read(ReadRequest(path="orders.csv.zip", options={"source_file_column": True}))
    assert rel.to_table().to_pylist() == [
        {"id": 1, "_source_file": "orders.csv.zip!2024/jan.csv"},
        {"id": 2, "_source_file": "orders.csv.zip!2024/feb.csv.gz"},
    ]
    assert rel.stats["skipped_members"] == [
        "orders.csv.zip!notes.json", "orders.csv.zip!README.txt",
        "orders.csv.zip!__MACOSX/2024/._jan.csv",
    ]
    assert rel.stats["empty_members"] == ["orders.csv.zip!empty.csv"]


def test_archive_members_glob_chooses_members_in_the_source_format(
    base: Path, conn: FileConnector
) -> None:
    _zip(base / "export.zip", {"a.dat": "id;v\n1;x\n", "b.dat": "id;v\n2;y\n", "c.csv": "z\n"})
    rel = conn.read(ReadRequest(path="export.zip", file_format="csv",
                                options={"archive_members": "*.dat", "delimiter": ";"}))
    assert rel.to_table().to_pylist() == [{"id": 1, "v": "x"}, {"id": 2, "v": "y"}]


def test_members_of_different_formats_are_each_read_in_their_own(
    base: Path, conn: FileConnector
) -> None:
    _zip(base / "mixed.zip", {"a.csv": "id\n1\n", "b.jsonl": '{"id": 2}\n'})
    assert conn.read(ReadRequest(path="mixed.zip")).to_table().to_pylist() == [
        {"id": 1}, {"id": 2},
    ]


def test_archive_with_no_member_to_read_fails_naming_the_members(
    base: Path, conn: FileConnector
) -> None:
    _zip(base / "docs.zip", {"README.txt": "x", "LICENSE": "y"})
    with pytest.raises(DataError, match=r"docs.zip: no member to read \(README.txt, LICENSE\)"):
        conn.read(ReadRequest(path="docs.zip"))


def test_archive_whose_chosen_members_are_all_empty_fails(
    base: Path, conn: FileConnector
) -> None:
    _zip(base / "e.zip", {"a.csv": ""})
    with pytest.raises(DataError, match="every member chosen to be read is empty"):
        conn.read(ReadRequest(path="e.zip"))


def test_nested_archive_member_fails_instead_of_being_skipped(
    base: Path, conn: FileConnector
) -> None:
    _zip(base / "outer.zip", {"a.csv": "id\n1\n", "inner.csv.zip": b"PK..."})
    with pytest.raises(DataError, match=r"outer.zip!inner.csv.zip is an archive inside"):
        conn.read(ReadRequest(path="outer.zip"))


def test_member_chosen_by_glob_without_a_format_is_a_spec_error(
    base: Path, conn: FileConnector
) -> None:
    _zip(base / "raw.zip", {"a.dat": "id\n1\n"})
    with pytest.raises(SpecError, match=r"raw.zip!a.dat: .*set file_format"):
        conn.read(ReadRequest(path="raw.zip", options={"archive_members": "*.dat"}))


def test_a_broken_member_fails_the_read_naming_it(base: Path, conn: FileConnector) -> None:
    _zip(base / "o.zip", {"a.csv": "id\n1\n", "b.csv": "id\nx\n"})
    with pytest.raises(DataError, match=r"o.zip!b.csv as csv: .*invalid value 'x'"):
        conn.read(ReadRequest(path="o.zip", options={"column_types": {"id": "int64"}}))


def test_a_file_that_is_not_a_zip_archive_fails_clearly(base: Path, conn: FileConnector) -> None:
    (base / "fake.zip").write_bytes(b"id\n1\n")
    with pytest.raises(DataError, match=r"fake.zip is not a readable zip archive"):
        conn.read(ReadRequest(path="fake.zip"))
