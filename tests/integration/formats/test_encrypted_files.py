"""Files encrypted with the project's Fernet keys (``options.encryption: fernet``): read as a
stream after the key is checked, written as a standard Fernet token atomically; a wrong key
fails naming the file and never the key."""

from __future__ import annotations

import gzip
import zipfile
from io import BytesIO
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cryptography.fernet import Fernet

from nexus_dagster import secrets
from nexus_dagster.connectors.base import ReadRequest, WriteRequest
from nexus_dagster.connectors.file import FileConnector
from nexus_dagster.errors import DataError, LoadError, SpecError
from nexus_dagster.relation import Relation

FERNET = {"encryption": "fernet"}


def test_encrypted_csv_is_read(base: Path, conn: FileConnector, master_key: str) -> None:
    (base / "orders.csv.enc").write_bytes(Fernet(master_key).encrypt("id,name\n1,Zoë\n".encode()))
    rel = conn.read(ReadRequest(path="orders.csv.enc", options=FERNET))
    assert rel.to_table().to_pylist() == [{"id": 1, "name": "Zoë"}]


def test_encrypted_gzip_xml_fixed_width_zip_and_parquet_are_read(
    base: Path, conn: FileConnector, master_key: str
) -> None:
    f = Fernet(master_key)
    (base / "a.jsonl.gz.enc").write_bytes(f.encrypt(gzip.compress(b'{"id": 1}\n')))
    (base / "b.xml.enc").write_bytes(f.encrypt(b"<r><row><id>2</id></row></r>"))
    (base / "c.fwf.enc").write_bytes(f.encrypt(b"3\r\n"))
    archive = BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("d.csv", "id\n4\n")
        z.writestr("e.csv", "id\n5\n")
    (base / "d.zip.enc").write_bytes(f.encrypt(archive.getvalue()))
    parquet = BytesIO()
    pq.write_table(pa.table({"id": [6]}), parquet)
    (base / "f.parquet.enc").write_bytes(f.encrypt(parquet.getvalue()))
    ids = []
    for path, extra in [("a.jsonl.gz.enc", {}), ("b.xml.enc", {}),
                        ("c.fwf.enc", {"widths": [1], "names": ["id"]}),
                        ("d.zip.enc", {}), ("f.parquet.enc", {})]:
        ids += conn.read(ReadRequest(path=path, options={**FERNET, **extra})).to_table() \
            .column("id").to_pylist()
    assert ids == [1, 2, 3, 4, 5, 6]


def test_a_rotated_key_still_reads_with_the_new_key_first(base: Path, conn: FileConnector) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    (base / "a.csv.enc").write_bytes(Fernet(old).encrypt(b"id\n1\n"))
    with secrets.master_keys(f"{new},{old}"):
        rel = conn.read(ReadRequest(path="a.csv.enc", options=FERNET))
        assert rel.to_table().column("id").to_pylist() == [1]


def test_wrong_key_fails_naming_the_file_without_the_key(
    base: Path, conn: FileConnector, master_key: str
) -> None:
    other = Fernet.generate_key()
    (base / "a.csv.enc").write_bytes(Fernet(other).encrypt(b"id\n1\n"))
    with pytest.raises(DataError) as caught:
        conn.read(ReadRequest(path="a.csv.enc", options=FERNET))
    text = str(caught.value)
    assert "a.csv.enc cannot be decrypted with MASTER_ENCRYPTION_KEY" in text
    assert master_key not in text and other.decode() not in text


def test_tampered_or_plain_file_fails_before_any_row(
    base: Path, conn: FileConnector, master_key: str
) -> None:
    token = bytearray(Fernet(master_key).encrypt(b"id\n1\n2\n"))
    token[60] = ord("A") if token[60] != ord("A") else ord("B")
    (base / "t.csv.enc").write_bytes(bytes(token))
    with pytest.raises(DataError, match=r"t.csv.enc cannot be decrypted"):
        conn.read(ReadRequest(path="t.csv.enc", options=FERNET))
    (base / "p.csv.enc").write_bytes(b"id\n1\n")
    with pytest.raises(DataError, match=r"p.csv.enc is not a Fernet token"):
        conn.read(ReadRequest(path="p.csv.enc", options=FERNET))


def test_no_master_key_is_a_spec_error_naming_the_variable(
    base: Path, conn: FileConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MASTER_ENCRYPTION_KEY", raising=False)
    (base / "a.csv.enc").write_bytes(b"x")
    with pytest.raises(SpecError, match=r"options.encryption: fernet needs the master key"):
        conn.read(ReadRequest(path="a.csv.enc", options=FERNET))


def test_a_large_encrypted_file_streams_in_batches(
    base: Path, conn: FileConnector, master_key: str
) -> None:
    text = "id,v\n" + "".join(f"{i},row{i}\n" for i in range(200_000))
    (base / "big.csv.enc").write_bytes(Fernet(master_key).encrypt(text.encode()))
    rel = conn.read(ReadRequest(path="big.csv.enc", batch_size=10_000, options=FERNET))
    sizes = [b.num_rows for b in rel]
    assert sum(sizes) == 200_000 and max(sizes) == 10_000


@pytest.mark.parametrize("fmt", ["csv", "parquet", "xml", "jsonl"])
def test_encrypted_target_is_a_fernet_token_of_the_file(
    base: Path, conn: FileConnector, master_key: str, fmt: str
) -> None:
    table = pa.table({"id": [1, 2], "name": ["Zoë", None]})
    conn.write(Relation.from_table(table), WriteRequest(
        path=f"out.{fmt}.enc", write_mode="overwrite", options=FERNET))
    plain = Fernet(master_key).decrypt((base / f"out.{fmt}.enc").read_bytes())
    (base / f"plain.{fmt}").write_bytes(plain)
    assert conn.read(ReadRequest(path=f"plain.{fmt}")).to_table().to_pylist() == \
        table.to_pylist()
    back = conn.read(ReadRequest(path=f"out.{fmt}.enc", options=FERNET))
    assert back.to_table().to_pylist() == table.to_pylist()


def test_append_to_an_encrypted_local_file_is_refused_and_leaves_it(
    base: Path, conn: FileConnector, master_key: str
) -> None:
    token = Fernet(master_key).encrypt(b"id\n1\n")
    (base / "a.csv.enc").write_bytes(token)
    with pytest.raises(LoadError, match="appending to an encrypted file"):
        conn.write(Relation.from_table(pa.table({"id": [2]})),
                   WriteRequest(path="a.csv.enc", write_mode="append", options=FERNET))
    assert (base / "a.csv.enc").read_bytes() == token
    assert sorted(p.name for p in base.iterdir()) == ["a.csv.enc"]
