"""The document -> column rule shared by the MongoDB and search connectors (no server)."""

from __future__ import annotations

import datetime as dt
import decimal

import pyarrow as pa
import pytest
from bson import Decimal128, ObjectId

from nexus_dagster.connectors import documents
from nexus_dagster.connectors.mongodb import _to_document
from nexus_dagster.errors import DataError, SpecError


def test_flatten_rule():
    oid = ObjectId()
    doc = {"_id": oid, "a": {"b": 1, "c": {"d": "x"}}, "tags": [1, {"k": oid}], "empty": {},
           "when": dt.datetime(2024, 1, 1), "price": Decimal128("1.50")}
    flat = documents.flatten(doc)
    assert flat == {"_id": str(oid), "a.b": 1, "a.c.d": "x",
                    "tags": f'[1, {{"k": "{oid}"}}]', "empty": None,
                    "when": dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
                    "price": decimal.Decimal("1.50")}
    as_json = documents.flatten(doc, "json")
    assert as_json["a"] == '{"b": 1, "c": {"d": "x"}}'
    with pytest.raises(SpecError, match="nested"):
        documents.flatten(doc, "explode")


def test_schema_inference_and_type_drift():
    rows = [{"n": 1, "mixed": 1, "t": "2024-01-01T00:00:00Z"}, {"n": None, "mixed": "a"}]
    schema = documents.infer_schema(rows, {"t": "timestamp[us, tz=UTC]"}, first=("_id",))
    assert schema.names == ["_id", "n", "mixed", "t"]
    assert schema.field("mixed").type == pa.string()
    batch = documents.rows_to_batch(rows, schema, "test")
    assert batch.column(2).to_pylist() == ["1", "a"]
    assert batch.column(3)[0].as_py() == dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    with pytest.raises(DataError, match=r"column 'n'.*column_types"):
        documents.rows_to_batch([{"n": "text"}], schema, "test")
    with pytest.raises(DataError, match="sample_size"):
        documents.rows_to_batch([{"new": 1}], schema, "test")


def test_unflatten_and_bson_documents():
    assert documents.unflatten({"a.b": 1, "a.c": 2, "d": 3}) == {"a": {"b": 1, "c": 2}, "d": 3}
    assert documents.unflatten({"a": 1, "a.b": 2}) == {"a": 1, "a.b": 2}  # clash: kept dotted
    oid = ObjectId()
    doc = _to_document({"_id": str(oid), "p.q": decimal.Decimal("2.5"),
                        "day": dt.date(2024, 5, 1)}, object_id=True, fold=True)
    assert doc == {"_id": oid, "p": {"q": Decimal128("2.5")},
                   "day": dt.datetime(2024, 5, 1, tzinfo=dt.UTC)}
    assert _to_document({"x": decimal.Decimal("1.1")}, True, True, "string") == {"x": "1.1"}
