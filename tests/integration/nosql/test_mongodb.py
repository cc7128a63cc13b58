"""MongoDB connector against the FerretDB test server (MongoDB wire protocol, pymongo)."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest
from bson import ObjectId

from nexus_dagster import secrets
from nexus_dagster.connectors.base import Cursor, ReadRequest, WriteRequest
from nexus_dagster.connectors.mongodb import MongoDBConnector
from nexus_dagster.connectors.registry import connector_class
from nexus_dagster.errors import ConnectorError, DataError, LoadError, RetriableError, SpecError
from nexus_dagster.relation import Relation
from tests.integration.nosql.conftest import endpoint_events, run_job

pytestmark = pytest.mark.mongodb

UTC = dt.UTC


def docs(n: int = 5) -> list[dict]:
    return [
        {"_id": ObjectId(), "n": i, "name": f"Zoë {i}" if i else None,
         "address": {"city": "東京", "zip": 100 + i}, "tags": ["a", f"t{i}"],
         "updated_at": dt.datetime(2024, 1, 1 + i, 12, tzinfo=UTC)}
        for i in range(n)
    ]


@pytest.fixture
def conn(mongo_uri: str, mongo_db: str) -> MongoDBConnector:
    connector = MongoDBConnector({"uri": mongo_uri, "database": mongo_db})
    yield connector
    connector.close()


def test_registry_and_connection(conn: MongoDBConnector, mongo_uri: str):
    assert connector_class("mongodb") is MongoDBConnector
    assert conn.test_connection()
    assert conn.describe().startswith("mongodb://127.0.0.1:")


def test_read_maps_object_ids_nested_documents_and_lists(conn, mongo):
    seeded = docs()
    mongo.items.insert_many(seeded)
    relation = conn.read(ReadRequest(table="items", batch_size=2))
    assert relation.schema.names == ["_id", "n", "name", "address.city", "address.zip", "tags",
                                     "updated_at"]
    assert relation.schema.field("updated_at").type == pa.timestamp("us", tz="UTC")
    batches = list(relation)
    assert [b.num_rows for b in batches] == [2, 2, 1]
    rows = sorted(pa.Table.from_batches(batches).to_pylist(), key=lambda r: r["n"])
    assert rows[1]["_id"] == str(seeded[1]["_id"])
    assert rows[1]["address.city"] == "東京" and rows[1]["address.zip"] == 101
    assert rows[1]["tags"] == '["a", "t1"]'
    assert rows[0]["name"] is None
    assert rows[4]["updated_at"] == dt.datetime(2024, 1, 5, 12, tzinfo=UTC)

    as_json = conn.read(ReadRequest(table="items", options={"nested": "json"})).to_table()
    assert "address" in as_json.schema.names
    assert as_json.column("address")[0].as_py().startswith('{"city": "東京"')


def test_filter_projection_and_sort(conn, mongo):
    mongo.items.insert_many(docs())
    relation = conn.read(ReadRequest(
        table="items", query='{"n": {"$gte": 2}}',
        options={"projection": {"_id": 0, "n": 1, "address.zip": 1}, "sort": {"n": -1}},
    ))
    assert relation.schema.names == ["n", "address.zip"]
    assert relation.to_table().to_pylist() == [
        {"n": 4, "address.zip": 104}, {"n": 3, "address.zip": 103}, {"n": 2, "address.zip": 102}]
    with pytest.raises(SpecError, match="JSON object"):
        conn.read(ReadRequest(table="items", query="[1, 2]"))


def test_incremental_cursor_is_pushed_into_the_filter(conn, mongo):
    seeded = docs()
    mongo.items.insert_many(seeded)
    assert MongoDBConnector.supports_incremental
    start = conn.read(ReadRequest(table="items",
                                  cursor=Cursor("updated_at", "2024-01-03 12:00:00", True)))
    assert start.to_table().column("n").to_pylist() == [2, 3, 4]
    after = conn.read(ReadRequest(
        table="items", cursor=Cursor("updated_at", dt.datetime(2024, 1, 4, 12, tzinfo=UTC))))
    assert after.to_table().column("n").to_pylist() == [4]
    by_id = conn.read(ReadRequest(table="items", cursor=Cursor("_id", str(seeded[2]["_id"]))))
    assert by_id.to_table().column("n").to_pylist() == [3, 4]


def test_round_trip_append_restores_object_ids_and_nesting(conn, mongo):
    seeded = docs(3)
    mongo.items.insert_many(seeded)
    result = conn.write(conn.read(ReadRequest(table="items")),
                        WriteRequest(table="copy", write_mode="append"))
    assert (result.rows_loaded, result.rows_inserted, result.rows_updated) == (3, 3, 0)
    copied = {d["_id"]: d for d in mongo.copy.find()}
    original = seeded[1]
    assert copied[original["_id"]]["address"] == {"city": "東京", "zip": 101}
    assert copied[original["_id"]]["updated_at"] == original["updated_at"]
    assert sorted(mongo.list_collection_names()) == ["copy", "items"]  # no staging left


def test_upsert_reports_inserted_and_updated(conn, mongo):
    mongo.target.insert_many([{"code": "a", "qty": 1}, {"code": "b", "qty": 2}])
    ids = {d["code"]: d["_id"] for d in mongo.target.find()}
    data = pa.table({"code": ["b", "c"], "qty": [20, 30],
                     "price": pa.array([None, 1.5], pa.float64())})
    result = conn.write(Relation.from_table(data),
                        WriteRequest(table="target", write_mode="upsert", key_columns=("code",)))
    assert (result.rows_loaded, result.rows_inserted, result.rows_updated) == (2, 1, 1)
    stored = {d["code"]: d for d in mongo.target.find()}
    assert {k: v["qty"] for k, v in stored.items()} == {"a": 1, "b": 20, "c": 30}
    assert stored["b"]["_id"] == ids["b"]  # replaced in place, own _id kept


def test_overwrite_replaces_the_collection(conn, mongo):
    mongo.target.insert_many([{"x": 1}, {"x": 2}])
    result = conn.write(Relation.from_table(pa.table({"x": [9]})),
                        WriteRequest(table="target", write_mode="overwrite"))
    assert result.rows_loaded == 1
    assert [d["x"] for d in mongo.target.find()] == [9]
    assert mongo.list_collection_names() == ["target"]


def test_decimals_follow_decimal_as(conn, mongo):
    import decimal

    data = pa.table({"amount": pa.array([decimal.Decimal("12.34")], pa.decimal128(8, 2))})
    conn.write(Relation.from_table(data), WriteRequest(table="money",
                                                       options={"decimal_as": "string"}))
    assert mongo.money.find_one()["amount"] == "12.34"


@pytest.mark.parametrize("mode", ["append", "upsert", "overwrite"])
def test_failed_load_leaves_target_as_it_was(conn, mongo, mode):
    mongo.target.insert_many([{"code": "a", "qty": 1}])
    schema = pa.schema([("code", pa.string()), ("qty", pa.int64())])

    def broken():
        yield pa.record_batch([pa.array(["a", "z"]), pa.array([5, 6])], schema=schema)
        raise DataError("source broke half-way")

    with pytest.raises(DataError, match="half-way"):
        conn.write(Relation(schema, broken), WriteRequest(table="target", write_mode=mode,
                                                          key_columns=("code",)))
    assert [(d["code"], d["qty"]) for d in mongo.target.find()] == [("a", 1)]
    assert mongo.list_collection_names() == ["target"]


def test_unknown_field_after_the_sample_is_a_clear_error(conn, mongo):
    mongo.items.insert_many([{"n": 1}, {"n": 2, "late": "x"}])
    relation = conn.read(ReadRequest(table="items", options={"sample_size": 1, "sort": {"n": 1}}))
    with pytest.raises(DataError, match=r"late.*sample_size"):
        relation.to_table()


def test_server_down_and_bad_credentials_never_leak_the_password(mongo_uri, mongo_db):
    down = MongoDBConnector({"host": "127.0.0.1", "port": 1, "database": mongo_db,
                             "username": "etl", "password": "pw-down-123", "timeout_ms": 500})
    assert down.test_connection() is False
    with pytest.raises(RetriableError) as caught:
        down.read(ReadRequest(table="items"))
    assert "pw-down-123" not in str(caught.value) and "127.0.0.1:1" in str(caught.value)

    port = mongo_uri.split(":")[2].split("/")[0]
    uri = f"mongodb://etl:pw-wrong-456@127.0.0.1:{port}/?directConnection=true"
    wrong = MongoDBConnector({"uri": uri, "database": mongo_db, "timeout_ms": 2000})
    assert wrong.test_connection() is False
    with pytest.raises(ConnectorError) as caught:
        wrong.read(ReadRequest(table="items"))
    assert "pw-wrong-456" not in str(caught.value)
    assert "pw-wrong-456" not in wrong.describe()
    assert secrets.mask(uri).count("***") == 1


def test_connection_params_are_checked():
    with pytest.raises(SpecError, match="database"):
        MongoDBConnector({"host": "127.0.0.1"})
    with pytest.raises(SpecError, match=r"connection_params\.colection: .*Extra inputs"):
        MongoDBConnector({"host": "127.0.0.1", "database": "x", "colection": "y"})


JOB = """\
name: mongo_sync
sources:
  - name: events
    source_type: mongodb
    connection_params: {{type: mongodb, uri: "{uri}", database: {db}}}
    table: events
    options: {{filter: {{kind: click}}}}
    incremental_column: updated_at
    incremental_value: "2024-01-02 00:00:00"
    batch_size: 2
targets:
  - name: events_copy
    target_type: mongodb
    connection_params: {{type: mongodb, uri: "{uri}", database: {db}}}
    table: events_copy
    write_mode: upsert
    key_columns: [event_id]
"""


def test_dagster_job_incremental_upsert(tmp_path: Path, mongo_uri, mongo_db, mongo):
    folder = tmp_path / "job_specs"
    folder.mkdir()
    (folder / "mongo_sync.yaml").write_text(textwrap.dedent(JOB.format(uri=mongo_uri,
                                                                       db=mongo_db)))
    day = lambda d: dt.datetime(2024, 1, d, tzinfo=UTC)  # noqa: E731
    mongo.events.insert_many([
        {"event_id": 1, "kind": "click", "updated_at": day(1)},
        {"event_id": 2, "kind": "click", "updated_at": day(2)},
        {"event_id": 3, "kind": "view", "updated_at": day(3)},
        {"event_id": 4, "kind": "click", "updated_at": day(4)},
    ])
    instance = dg.DagsterInstance.ephemeral()
    result = run_job(folder, "mongo_sync", instance)
    assert result.success
    assert sorted(d["event_id"] for d in mongo.events_copy.find()) == [2, 4]
    assert endpoint_events(result)["mongo_sync/events_copy"]["dagster/row_count"].value == 2

    mongo.events.insert_one({"event_id": 5, "kind": "click", "updated_at": day(5)})
    mongo.events.update_one({"event_id": 2}, {"$set": {"updated_at": day(6), "note": "late"}})
    result = run_job(folder, "mongo_sync", instance)
    assert result.success
    meta = endpoint_events(result)["mongo_sync/events_copy"]
    assert meta["nexus/rows_extracted"].value == 2
    copied = {d["event_id"]: d for d in mongo.events_copy.find()}
    assert sorted(copied) == [2, 4, 5] and copied[2]["note"] == "late"

    result = run_job(folder, "mongo_sync", instance)  # nothing new
    assert result.success and mongo.events_copy.count_documents({}) == 3


@pytest.mark.parametrize("mode", ["append", "upsert"])
def test_server_side_failure_is_undone(conn, mongo, mode):
    """A duplicate-key error half-way through the final write: what was written is undone."""
    mongo.target.create_index("email", unique=True)
    mongo.target.insert_many([{"code": "a", "email": "a@x", "qty": 1},
                              {"code": "b", "email": "b@x", "qty": 2}])
    before = sorted((d["code"], d["email"], d["qty"]) for d in mongo.target.find())
    data = pa.table({"code": ["a", "n", "z"], "email": ["a2@x", "n@x", "b@x"], "qty": [10, 3, 9]})
    if mode == "append":
        data = data.slice(1)  # n@x goes in, then b@x clashes
    with pytest.raises(LoadError, match="left as it was"):
        conn.write(Relation.from_table(data), WriteRequest(table="target", write_mode=mode,
                                                           key_columns=("code",)))
    assert sorted((d["code"], d["email"], d["qty"]) for d in mongo.target.find()) == before
    assert mongo.list_collection_names() == ["target"]
