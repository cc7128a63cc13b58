"""Redis connector against the real redis-server from scripts/services.py."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from nexus_dagster.connectors.base import ReadRequest, WriteRequest
from nexus_dagster.connectors.redis import RedisConnector
from nexus_dagster.errors import ConnectorError, LoadError, SpecError
from nexus_dagster.relation import Relation
from nexus_dagster.spec.loader import load_project
from tests.integration.streams.kv_support import (
    endpoint_events,
    failure_text,
    run_job,
    write_spec,
)
from tests.support import redis_params

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def params() -> dict:
    """Connection params of the test server (password protected)."""
    return redis_params()


ROWS = pa.table({
    "id": pa.array([1, 2, 3], pa.int64()),
    "name": ["a", "Zürich ☃", None],
    "amount": [1.5, None, -2.25],
    "paid": [True, False, None],
    "day": pa.array([dt.date(2024, 1, 2)] * 3, pa.date32()),
})
TYPES = {"id": "int64", "amount": "float64", "paid": "bool", "day": "date32"}


def test_hash_round_trip_with_ttl(redis_conn: RedisConnector, prefix: str):
    loaded = redis_conn.write(
        Relation.from_table(ROWS, batch_size=2),
        WriteRequest(table=prefix, write_mode="upsert", key_columns=("id",),
                     options={"ttl_seconds": 600, "pipeline_size": 2}),
    )
    assert loaded.rows_loaded == 3
    client = redis_conn.client
    assert client.hgetall(f"{prefix}:2") == {"id": "2", "name": "Zürich ☃", "paid": "false",
                                             "day": "2024-01-02"}
    assert 0 < client.ttl(f"{prefix}:1") <= 600
    table = redis_conn.read(ReadRequest(options={"key_pattern": f"{prefix}:*",
                                                 "data_type": "hash", "column_types": TYPES}))
    table = table.to_table().sort_by("id")
    assert table["_key"].to_pylist() == [f"{prefix}:1", f"{prefix}:2", f"{prefix}:3"]
    assert table.select(ROWS.column_names).to_pylist() == ROWS.to_pylist()

    # upsert replaces the whole key: a field that became null disappears
    changed = pa.table({"id": [1], "name": pa.array([None], pa.string())})
    redis_conn.write(Relation.from_table(changed),
                     WriteRequest(table=prefix, write_mode="upsert", key_columns=("id",)))
    assert client.hgetall(f"{prefix}:1") == {"id": "1"}
    assert client.ttl(f"{prefix}:1") == -1


def test_string_json_round_trip(redis_conn: RedisConnector, prefix: str):
    redis_conn.write(Relation.from_table(ROWS), WriteRequest(
        options={"key_template": prefix + ":order:{id}", "data_type": "string"}))
    assert json.loads(redis_conn.client.get(f"{prefix}:order:1")) == {
        "id": 1, "name": "a", "amount": 1.5, "paid": True, "day": "2024-01-02"}
    relation = redis_conn.read(ReadRequest(table=f"{prefix}:order:*", options={
        "data_type": "string", "value_format": "json", "column_types": {"day": "date32"}}))
    rows = relation.to_table().sort_by("id").select(ROWS.column_names)
    assert rows.to_pylist() == ROWS.to_pylist()


def test_null_key_column_fails_the_chunk(redis_conn: RedisConnector, prefix: str):
    with pytest.raises(Exception, match="no value for key column 'name'"):
        redis_conn.write(Relation.from_table(ROWS.slice(2)), WriteRequest(
            options={"key_template": prefix + ":{name}"}))
    with pytest.raises(SpecError, match="'missing', which is not in the data"):
        redis_conn.write(Relation.from_table(ROWS), WriteRequest(
            options={"key_template": prefix + ":{missing}"}))


def test_every_key_type_by_pattern_with_scan(redis_conn: RedisConnector, prefix: str):
    client = redis_conn.client
    client.set(f"{prefix}:s", "plain")
    client.hset(f"{prefix}:h", mapping={"f": "1"})
    client.rpush(f"{prefix}:l", "x", "y")
    client.sadd(f"{prefix}:set", "m1", "m2")
    client.zadd(f"{prefix}:z", {"low": 1.0, "high": 2.5})
    client.xadd(f"{prefix}:stream", {"f": "2"}, id="1-1")
    client.set(f"other{prefix}", "not matched")
    keys_before = client.info("commandstats").get("cmdstat_keys", {}).get("calls", 0)

    relation = redis_conn.read(ReadRequest(options={"key_pattern": f"{prefix}:*",
                                                    "scan_count": 2}))
    rows = relation.to_table().to_pylist()
    compact = sorted((r["_key"].split(":")[1], r["value"], r["f"], r["_index"], r["score"])
                     for r in rows)
    assert compact == [
        ("h", None, "1", None, None),
        ("l", "x", None, 0, None), ("l", "y", None, 1, None),
        ("s", "plain", None, None, None),
        ("set", "m1", None, None, None), ("set", "m2", None, None, None),
        ("stream", None, "2", None, None),
        ("z", "high", None, None, 2.5), ("z", "low", None, None, 1.0),
    ]
    assert relation.stats["state"]["stream_ids"] == {f"{prefix}:stream": "1-1"}
    assert client.info("commandstats").get("cmdstat_keys", {}).get("calls", 0) == keys_before

    lists = redis_conn.read(ReadRequest(options={"key_pattern": f"{prefix}:*",
                                                 "data_type": "list"}))
    assert lists.schema.names == ["_key", "_index", "value"]
    assert lists.to_table()["value"].to_pylist() == ["x", "y"]


def test_stream_continues_after_the_kept_id(redis_conn: RedisConnector, prefix: str):
    client = redis_conn.client
    for i in range(5):
        client.xadd(f"{prefix}:events", {"n": str(i)})
    options = {"key_pattern": f"{prefix}:*", "data_type": "stream",
               "column_types": {"n": "int64"}}
    first = redis_conn.read(ReadRequest(options=options, batch_size=2))
    assert first.to_table()["n"].to_pylist() == list(range(5))
    state = first.stats["state"]
    client.xadd(f"{prefix}:events", {"n": "5"})
    second = redis_conn.read(ReadRequest(options=options, state=state))
    assert second.to_table()["n"].to_pylist() == [5]
    empty = redis_conn.read(ReadRequest(options=options, state=second.stats["state"]))
    assert empty.schema.names == ["_key", "_id", "n"]  # the kept columns, no rows
    assert empty.to_table().num_rows == 0


def test_server_down_and_wrong_password_are_clear(params: dict, prefix: str):
    down = RedisConnector({"host": "127.0.0.1", "port": 1, "timeout": 2,
                           "password": "Very-Secret-42"})
    assert down.test_connection() is False
    with pytest.raises(ConnectorError, match="Redis is running") as failure:
        down.read(ReadRequest(options={"key_pattern": "x*"}))
    assert "Very-Secret-42" not in str(failure.value)

    wrong = RedisConnector({**params, "password": "Wrong-Secret-42"})
    assert wrong.test_connection() is False
    with pytest.raises(LoadError, match="password") as failure:
        wrong.write(Relation.from_table(ROWS), WriteRequest(
            options={"key_template": prefix + ":{id}"}))
    assert "Wrong-Secret-42" not in str(failure.value)
    assert RedisConnector(params).test_connection() is True
    with pytest.raises(SpecError, match=r"connection_params\.pasword: .*Extra inputs"):
        RedisConnector({"host": "x", "pasword": "typo"})


def test_spec_problems_name_the_option(tmp_path: Path):
    specs = write_spec(tmp_path, "bad", """\
        name: bad
        sources:
          - name: cache
            source_type: redis
            connection_params: {host: 127.0.0.1}
            options: {data_type: json}
        targets:
          - name: out
            target_type: redis
            connection_params: {host: 127.0.0.1}
            options: {key_template: "user:{id!r}"}
        """)
    with pytest.raises(SpecError) as failure:
        load_project(specs)
    text = str(failure.value)
    assert "sources[0].options: a redis source needs options.key_pattern" in text
    assert "targets[0].options: options.key_template" in text


STREAM_JOB = """\
name: redis_events
sources:
  - name: events
    source_type: redis
    connection_params:
      host: 127.0.0.1
      port: {port}
      password: ${{NEXUS_TEST_REDIS_PASSWORD}}
    options:
      key_pattern: "{prefix}:stream:*"
      data_type: stream
      column_types: {{n: int64}}
targets:
  - name: events_table
    target_type: database
    connection_params: {{type: sqlite, database: output/events.db}}
    table: events
  - name: events_cache
    target_type: redis
    connection_params:
      host: 127.0.0.1
      port: {port}
      password: ${{NEXUS_TEST_REDIS_PASSWORD}}
    write_mode: upsert
    key_columns: [_key, _id]
    table: "{prefix}:copy"
    options: {{ttl_seconds: 300}}
"""


def test_dagster_stream_job_is_incremental_and_at_least_once(
    tmp_path: Path, params: dict, redis_conn: RedisConnector, prefix: str
):
    client = redis_conn.client
    for i in range(3):
        client.xadd(f"{prefix}:stream:a", {"n": str(i)})
    client.xadd(f"{prefix}:stream:b", {"n": "10"})
    specs = write_spec(tmp_path, "redis_events",
                       STREAM_JOB.format(port=params["port"], prefix=prefix))
    db = tmp_path / "output/events.db"
    db.parent.mkdir()
    with sqlite3.connect(db) as con:  # a target that fails once
        con.execute("create table events (_key text, _id text, n integer, need text not null)")
    instance = dg.DagsterInstance.ephemeral()
    failed = run_job(specs, "redis_events", instance)
    assert not failed.success
    assert params["password"] not in failure_text(failed)

    with sqlite3.connect(db) as con:
        con.execute("drop table events")
    result = run_job(specs, "redis_events", instance)
    assert result.success, failure_text(result)
    with sqlite3.connect(db) as con:
        assert sorted(r[0] for r in con.execute("select n from events")) == [0, 1, 2, 10]
    meta = endpoint_events(result)
    assert meta["redis_events/events"]["nexus/rows_extracted"].value == 4
    copied = sorted(client.scan_iter(match=f"{prefix}:copy:*"))
    assert len(copied) == 4 and 0 < client.ttl(copied[0]) <= 300

    client.xadd(f"{prefix}:stream:a", {"n": "3"})
    result = run_job(specs, "redis_events", instance)
    assert result.success, failure_text(result)
    assert endpoint_events(result)["redis_events/events_table"]["dagster/row_count"].value == 1
    with sqlite3.connect(db) as con:
        assert sorted(r[0] for r in con.execute("select n from events")) == [0, 1, 2, 3, 10]

    result = run_job(specs, "redis_events", instance)  # nothing new: same columns, no rows
    assert result.success, failure_text(result)
    assert endpoint_events(result)["redis_events/events_table"]["dagster/row_count"].value == 0
