"""Every store as source and target: formats, globs and prefixes, overwrite/append, errors."""

from __future__ import annotations

import datetime as dt
import decimal
import gzip
import io
import json
import zipfile

import pyarrow as pa
import pytest

from nexus_dagster.connectors.base import ReadRequest, WriteRequest
from nexus_dagster.errors import ConnectorError, LoadError
from nexus_dagster.relation import Relation

from .conftest import Store


def sample() -> pa.Table:
    return pa.table({
        "id": pa.array([1, 2, None, 4], pa.int64()),
        "name": pa.array(["Zoë", "東京", None, ""], pa.string()),
        "amount": pa.array([decimal.Decimal("1.10"), None, decimal.Decimal("-12345.67"),
                            decimal.Decimal("0")], pa.decimal128(12, 2)),
        "ts": pa.array([dt.datetime(2024, 1, 1, 10, tzinfo=dt.UTC), None,
                        dt.datetime(2024, 6, 30, 23, 59, 59, tzinfo=dt.UTC),
                        dt.datetime(1999, 12, 31, tzinfo=dt.UTC)], pa.timestamp("us", "UTC")),
    })


def relation(table: pa.Table) -> Relation:
    return Relation(table.schema, lambda: iter(table.to_batches(max_chunksize=2)))


def read(conn, path: str, **options) -> pa.Table:
    rel = conn.read(ReadRequest(path=path, options=options, batch_size=3))
    return pa.Table.from_batches(list(rel), schema=rel.schema)


OPTIONS = {"column_types": {"amount": "decimal128(12,2)", "ts": "timestamp[us, tz=UTC]"}}


@pytest.mark.parametrize("name", ["x.csv", "x.tsv", "x.json", "x.jsonl", "x.parquet",
                                  "x.xlsx", "x.csv.gz", "x.jsonl.gz"])
def test_round_trip_every_format(store: Store, name: str):
    conn = store.connector()
    result = conn.write(relation(sample()), WriteRequest(path=f"out/{name}",
                                                         write_mode="overwrite"))
    assert result.rows_loaded == 4
    assert result.location.endswith(f"/out/{name}")
    back = read(store.connector(), f"out/{name}", **OPTIONS)
    expected = sample()
    assert back.column("id").to_pylist() == expected.column("id").to_pylist()
    names = expected.column("name").to_pylist()
    if name.endswith(".xlsx"):  # Excel has no empty string: an empty cell reads as null
        names = [None if n == "" else n for n in names]
    assert back.column("name").to_pylist() == names
    assert [None if v is None else decimal.Decimal(str(v)) for v in
            back.column("amount").to_pylist()] == expected.column("amount").to_pylist()
    if name.startswith("x.parquet"):
        assert back.schema == expected.schema
    assert store.listing("out") == [f"out/{name}"]  # no temporary object left


def test_zip_input_and_glob_with_source_file(store: Store):
    store.put("data/2024/a.csv", b"id,v\n1,a\n2,b\n")
    store.put("data/2024/b.csv.gz", gzip.compress(b"id,v\n3,c\n"))
    store.put("data/2023/c.csv", b"id,v\n9,z\n")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("d.csv", "id,v\n4,d\n")
    store.put("data/2024/d.csv.zip", buffer.getvalue())
    conn = store.connector()
    table = read(conn, "data/2024/*", source_file_column="_source_file")
    assert table.column("id").to_pylist() == [1, 2, 3, 4]
    assert table.column("_source_file").to_pylist() == [
        "data/2024/a.csv", "data/2024/a.csv", "data/2024/b.csv.gz", "data/2024/d.csv.zip!d.csv"]
    # a prefix reads every file under it
    assert sorted(read(store.connector(), "data/").column("id").to_pylist()) == [1, 2, 3, 4, 9]


def test_overwrite_replaces_and_append_adds_parts(store: Store):
    conn = store.connector()
    first = pa.table({"id": [1, 2]})
    second = pa.table({"id": [3]})
    conn.write(relation(first), WriteRequest(path="t/orders.parquet", write_mode="overwrite"))
    conn.write(relation(second), WriteRequest(path="t/orders.parquet", write_mode="overwrite"))
    assert read(store.connector(), "t/orders.parquet").column("id").to_pylist() == [3]
    assert store.listing("t") == ["t/orders.parquet"]

    a = conn.write(relation(first), WriteRequest(path="t/events.csv", write_mode="append",
                                                 run_id="run-one"))
    old_part = store.get(a.location.rsplit("/", 3)[-3] + "/" + "/".join(
        a.location.rsplit("/", 2)[-2:]))
    b = conn.write(relation(second), WriteRequest(path="t/events.csv", write_mode="append",
                                                  run_id="run-two"))
    assert a.extra["write_mode"] == b.extra["write_mode"] == "append"
    parts = [p for p in store.listing("t") if p.startswith("t/events/")]
    assert len(parts) == 2
    assert parts[0].startswith("t/events/part-") and parts[0].endswith("-run-one.csv")
    assert parts[1].endswith("-run-two.csv")
    assert store.get(parts[0]) == old_part  # the old part was not rewritten
    assert read(store.connector(), "t/events/").column("id").to_pylist() == [1, 2, 3]
    assert read(store.connector(), "t/events/*.csv").column("id").to_pylist() == [1, 2, 3]


def test_failed_write_leaves_target_unchanged(store: Store):
    conn = store.connector()
    conn.write(relation(pa.table({"id": [1]})), WriteRequest(path="f/out.csv",
                                                            write_mode="overwrite"))
    before = store.get("f/out.csv")
    schema = pa.schema([("id", pa.int64())])

    def broken():
        yield pa.record_batch([pa.array([7, 8])], schema=schema)
        raise RuntimeError("source died mid-stream")

    with pytest.raises((LoadError, ConnectorError, RuntimeError)):
        conn.write(Relation(schema, broken), WriteRequest(path="f/out.csv",
                                                          write_mode="overwrite"))
    assert store.get("f/out.csv") == before
    assert store.listing("f") == ["f/out.csv"]


def test_path_cannot_leave_the_bucket_or_base_dir(store: Store):
    with pytest.raises(ConnectorError, match="outside"):
        store.connector().read(ReadRequest(path="../elsewhere/x.csv"))


WRONG = "Wr0ng-Secret-Value-123"


def wrong_credentials(store: Store, tmp_path) -> dict:
    if store.kind == "s3":
        return {"secret_key": WRONG}
    if store.kind == "azure_blob":
        import base64

        return {"account_key": base64.b64encode(WRONG.encode() * 3).decode()}
    if store.kind == "gcs":
        # the emulator checks no credentials: a broken service-account key file must fail
        # clearly, without its private key in the message
        key = tmp_path / "sa.json"
        key.write_text(json.dumps({
            "type": "service_account", "project_id": "p", "private_key_id": "1",
            "private_key": f"-----BEGIN PRIVATE KEY-----\n{WRONG}\n-----END PRIVATE KEY-----\n",
            "client_email": "etl@p.iam.gserviceaccount.com", "client_id": "1",
            "token_uri": "https://oauth2.googleapis.com/token"}))
        return {"credentials": str(key)}
    return {"password": WRONG}


def test_wrong_password_is_a_clear_error_without_the_secret(store: Store, tmp_path):
    store.put("in/a.csv", b"id\n1\n")
    bad = wrong_credentials(store, tmp_path)
    conn = store.connector(**bad)
    with pytest.raises(ConnectorError) as info:
        conn.read(ReadRequest(path="in/a.csv"))
    message = str(info.value)
    secret = next(iter(bad.values()))
    assert WRONG not in message and secret not in message
    assert any(p in message for p in conn.auth_params), message
    assert conn.system in message
