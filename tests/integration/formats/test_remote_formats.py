"""XML, fixed-width, zip members and Fernet-encrypted files on an object store (moto S3) and
on SFTP (OpenSSH): the same format code through fsspec."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from io import BytesIO

import pyarrow as pa
import pytest
from cryptography.fernet import Fernet

from nexus_dagster.connectors.base import ReadRequest, WriteRequest
from nexus_dagster.errors import DataError
from nexus_dagster.relation import Relation
from tests.support import Store, cleanup, make_store

XML = "<orders><order id='1'><who><name>Zoë</name></who></order><order id='2'/></orders>"


@pytest.fixture(params=[pytest.param("s3", marks=pytest.mark.s3),
                        pytest.param("sftp", marks=pytest.mark.sftp)])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """A fresh bucket (moto S3) or folder (SFTP)."""
    made = make_store(request.param)
    yield made
    cleanup(made)


def test_xml_and_fixed_width_are_read(store: Store) -> None:
    store.put("in/orders.xml", XML.encode())
    store.put("in/people.fwf", "1 Zoë\r\n2 Bob\r\n".encode())
    conn = store.connector()
    assert conn.read(ReadRequest(path="in/orders.xml")).to_table().to_pylist() == [
        {"id": 1, "who.name": "Zoë"}, {"id": 2, "who.name": None},
    ]
    rel = conn.read(ReadRequest(path="in/people.fwf",
                                options={"widths": [2, 4], "names": ["id", "name"]}))
    assert rel.to_table().to_pylist() == [{"id": 1, "name": "Zoë"}, {"id": 2, "name": "Bob"}]


def test_every_zip_member_is_read_with_its_source_file(store: Store) -> None:
    archive = BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("jan.csv", "id\n1\n")
        z.writestr("feb.csv", "id\n2\n")
    store.put("in/orders.zip", archive.getvalue())
    rel = store.connector().read(ReadRequest(path="in/orders.zip",
                                             options={"source_file_column": True}))
    assert rel.to_table().to_pylist() == [
        {"id": 1, "_source_file": "in/orders.zip!jan.csv"},
        {"id": 2, "_source_file": "in/orders.zip!feb.csv"},
    ]


def test_encrypted_xml_is_read_and_a_wrong_key_named(store: Store, master_key: str) -> None:
    store.put("in/orders.xml.enc", Fernet(master_key).encrypt(XML.encode()))
    store.put("in/other.csv.enc", Fernet(Fernet.generate_key()).encrypt(b"id\n1\n"))
    conn = store.connector()
    rel = conn.read(ReadRequest(path="in/orders.xml.enc", options={"encryption": "fernet"}))
    assert rel.to_table().column("who.name").to_pylist() == ["Zoë", None]
    with pytest.raises(DataError, match=r"in/other.csv.enc cannot be decrypted") as caught:
        conn.read(ReadRequest(path="in/other.csv.enc", options={"encryption": "fernet"}))
    assert master_key not in str(caught.value)


def test_encrypted_target_is_written_atomically_and_reads_back(
    store: Store, master_key: str
) -> None:
    table = pa.table({"id": [1, 2], "name": ["Zoë", None]})
    conn = store.connector()
    options = {"encryption": "fernet"}
    conn.write(Relation.from_table(table),
               WriteRequest(path="out/orders.xml.enc", write_mode="overwrite", options=options))
    assert store.listing("out") == ["out/orders.xml.enc"]
    assert Fernet(master_key).decrypt(store.get("out/orders.xml.enc")).startswith(b"<?xml")
    back = conn.read(ReadRequest(path="out/orders.xml.enc", options=options))
    assert back.to_table().to_pylist() == table.to_pylist()
