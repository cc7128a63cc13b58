"""XML files: records by path, namespaces, attributes and nested elements flattened like
documents, repeated elements as JSON lists, missing fields, unicode; entities never expanded;
written as one document and read back."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from nexus_dagster.connectors.base import ReadRequest, WriteRequest
from nexus_dagster.connectors.file import FileConnector
from nexus_dagster.errors import DataError
from nexus_dagster.relation import Relation

ORDERS = """<?xml version="1.0" encoding="UTF-8"?>
<o:export xmlns:o="urn:acme:orders" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <o:meta><o:created>2024-05-01</o:created></o:meta>
  <o:orders>
    <o:order id="1" status="paid">
      <o:customer vip="true"><o:name>Zoë Ærø</o:name><o:city>東京</o:city></o:customer>
      <o:item>pen</o:item><o:item>ink</o:item>
      <o:total currency="EUR">12.50</o:total>
    </o:order>
    <!-- a comment -->
    <o:order id="2">
      <o:customer><o:name>Bob &amp; Co</o:name></o:customer>
      <o:note xsi:nil="true"/>
      <o:total currency="USD">3</o:total>
    </o:order>
  </o:orders>
</o:export>
"""


def test_records_by_path_flattened_with_namespaces_attributes_and_repeats(
    base: Path, conn: FileConnector
) -> None:
    (base / "orders.xml").write_text(ORDERS, encoding="utf-8")
    rel = conn.read(ReadRequest(path="orders.xml", options={"records_path": "orders/order"}))
    assert rel.schema == pa.schema([
        ("id", pa.int64()), ("status", pa.string()), ("customer.vip", pa.bool_()),
        ("customer.name", pa.string()), ("customer.city", pa.string()), ("item", pa.string()),
        ("total.currency", pa.string()), ("total._text", pa.float64()), ("note", pa.string()),
    ])
    assert rel.to_table().to_pylist() == [
        {"id": 1, "status": "paid", "customer.vip": True, "customer.name": "Zoë Ærø",
         "customer.city": "東京", "item": '["pen", "ink"]', "total.currency": "EUR",
         "total._text": 12.5, "note": None},
        {"id": 2, "status": None, "customer.vip": None, "customer.name": "Bob & Co",
         "customer.city": None, "item": None, "total.currency": "USD", "total._text": 3.0,
         "note": None},
    ]


def test_rooted_path_and_a_field_only_late_records_have(base: Path, conn: FileConnector) -> None:
    rows = "".join(f"<r><n>{i}</n></r>" for i in range(5)) + "<r><n>5</n><late>x</late></r>"
    (base / "a.xml").write_text(f"<root><skip><r><n>99</n></r></skip>{rows}</root>")
    rel = conn.read(ReadRequest(path="a.xml", batch_size=2,
                                options={"records_path": "/root/r"}))
    table = rel.to_table()
    assert table.column("n").to_pylist() == [0, 1, 2, 3, 4, 5]
    assert table.column("late").to_pylist() == [None] * 5 + ["x"]


def test_default_records_are_the_root_children(base: Path, conn: FileConnector) -> None:
    (base / "a.xml").write_text("<rows><row a='1'/><row a='2'>t</row></rows>")
    assert conn.read(ReadRequest(path="a.xml")).to_table().to_pylist() == [
        {"a": 1, "_text": None}, {"a": 2, "_text": "t"},
    ]


def test_entities_are_not_expanded_and_external_ones_not_fetched(
    base: Path, conn: FileConnector
) -> None:
    (base / "secret.txt").write_text("TOP-SECRET")
    (base / "evil.xml").write_text(
        '<?xml version="1.0"?>\n'
        f'<!DOCTYPE r [<!ENTITY x SYSTEM "file://{base}/secret.txt">'
        '<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>\n'
        "<r><row><v>&x;</v><w>&b;</w><id>1</id></row></r>"
    )
    rows = conn.read(ReadRequest(path="evil.xml")).to_table().to_pylist()
    assert rows == [{"v": None, "w": None, "id": 1}]


def test_no_record_at_the_path_and_broken_xml_fail_naming_the_file(
    base: Path, conn: FileConnector
) -> None:
    (base / "a.xml").write_text("<r><x>1</x></r>")
    with pytest.raises(DataError, match=r"a.xml: no record at options.records_path 'r/y'"):
        conn.read(ReadRequest(path="a.xml", options={"records_path": "r/y"}))
    (base / "b.xml").write_text("<r><x>1</x>")
    with pytest.raises(DataError, match=r"cannot read .*b.xml as xml"):
        conn.read(ReadRequest(path="b.xml"))


def test_written_document_reads_back(base: Path, conn: FileConnector) -> None:
    table = pa.table({"id": [1, 2], "name": ["Zoë <&>", None], "ok": [True, False]})
    conn.write(Relation.from_table(table), WriteRequest(
        path="out.xml", write_mode="overwrite",
        options={"root_element": "orders", "record_element": "order"}))
    text = (base / "out.xml").read_text()
    assert text.startswith("<?xml version='1.0' encoding='utf-8'?>\n<orders><order>")
    assert "<name>Zoë &lt;&amp;&gt;</name>" in text
    back = conn.read(ReadRequest(path="out.xml", options={"records_path": "orders/order"}))
    assert back.to_table().to_pylist() == [
        {"id": 1, "name": "Zoë <&>", "ok": True}, {"id": 2, "name": None, "ok": False},
    ]
