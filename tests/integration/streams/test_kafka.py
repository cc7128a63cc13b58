"""Kafka connector against the real broker from scripts/services.py (KRaft, Maven jars)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from nexus_dagster.connectors.base import ReadRequest, WriteRequest
from nexus_dagster.connectors.kafka import KafkaConnector
from nexus_dagster.errors import ConnectorError, DataError, SpecError
from nexus_dagster.relation import Relation
from nexus_dagster.spec.loader import load_project
from tests.integration.streams.kv_support import (
    endpoint_events,
    failure_text,
    run_job,
    write_spec,
)
from tests.support import produce_messages

pytestmark = pytest.mark.kafka


def connector(bootstrap: str, group: str = "g", **extra) -> KafkaConnector:
    return KafkaConnector({"bootstrap_servers": bootstrap, "consumer_group": group, **extra})


def read_all(kafka: KafkaConnector, topic: str, **options) -> tuple[Relation, pa.Table]:
    relation = kafka.read(ReadRequest(table=topic, options=options, batch_size=4))
    return relation, relation.to_table()


ROWS = pa.table({
    "id": pa.array([1, 2, 3, 4, 5], pa.int64()),
    "name": ["a", "Zürich ☃", None, "d", "e"],
    "amount": [1.5, None, 3.25, -4.0, 0.0],
    "paid": [True, False, None, True, True],
    "at": pa.array([dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)] * 5,
                   pa.timestamp("us", tz="UTC")),
})


def test_round_trip_with_keys_and_metadata_columns(bootstrap: str, topic: str):
    kafka = connector(bootstrap, f"rt_{topic}")
    loaded = kafka.write(Relation.from_table(ROWS, batch_size=2),
                         WriteRequest(table=topic, options={"key_column": "id"}))
    assert loaded.rows_loaded == 5
    relation, table = read_all(kafka, topic, metadata_columns=["key", "partition", "offset",
                                                               "timestamp"],
                               column_types={"at": "timestamp[us, tz=UTC]"})
    assert table.column_names == ["_key", "_partition", "_offset", "_timestamp", "id", "name",
                                  "amount", "paid", "at"]
    assert table.select(ROWS.column_names).to_pylist() == ROWS.to_pylist()
    assert table["_key"].to_pylist() == ["1", "2", "3", "4", "5"]
    assert table["_partition"].to_pylist() == [0] * 5
    assert table["_timestamp"].type == pa.timestamp("ms", tz="UTC")
    kafka.acknowledge(relation)
    kafka.close()

    again = connector(bootstrap, f"rt_{topic}")
    assert read_all(again, topic)[1].num_rows == 0  # offsets were committed
    again.close()


def test_no_acknowledge_means_the_same_messages_again(bootstrap: str, topic: str):
    produce_messages(bootstrap, topic, [{"n": i} for i in range(6)])
    first = connector(bootstrap, f"ack_{topic}")
    assert read_all(first, topic)[1]["n"].to_pylist() == list(range(6))
    first.close()  # closed without acknowledge(): a failed load
    second = connector(bootstrap, f"ack_{topic}")
    relation, table = read_all(second, topic)
    assert table["n"].to_pylist() == list(range(6))
    second.acknowledge(relation)
    second.close()
    produce_messages(bootstrap, topic, [{"n": 6}])
    third = connector(bootstrap, f"ack_{topic}")
    assert read_all(third, topic)[1]["n"].to_pylist() == [6]
    third.close()


def test_bounded_batches_continue_where_the_last_commit_left(bootstrap: str, topic: str):
    produce_messages(bootstrap, topic, [{"n": i} for i in range(25)], partitions=3)
    seen: list[int] = []
    for expected in (10, 10, 5, 0):
        kafka = connector(bootstrap, f"bound_{topic}")
        relation, table = read_all(kafka, topic, max_messages=10)
        assert table.num_rows == expected
        seen += table["n"].to_pylist() if expected else []
        kafka.acknowledge(relation)
        kafka.close()
    assert sorted(seen) == list(range(25))


def test_topic_pattern_and_value_formats(bootstrap: str, topic: str):
    produce_messages(bootstrap, topic, [{"a": 1, "nested": {"x": [1, 2]}}, [1, 2], "text"])
    produce_messages(bootstrap, f"{topic}_b", [{"a": 2}])
    kafka = connector(bootstrap, f"pat_{topic}")
    _, table = read_all(kafka, f"^{topic}(_b)?$", metadata_columns=["topic"])
    rows = sorted(table.to_pylist(), key=lambda r: (r["_topic"], str(r["a"])))
    assert [r["_topic"] for r in rows] == [topic] * 3 + [f"{topic}_b"]
    assert {"a": 1, "nested": '{"x": [1, 2]}', "value": None} in [
        {k: r[k] for k in ("a", "nested", "value")} for r in rows]
    assert sorted(r["value"] for r in rows if r["value"]) == ["[1, 2]", "text"]
    kafka.close()

    produce_messages(bootstrap, f"{topic}_b", [b"not json {"])
    strict = connector(bootstrap, f"fmt_{topic}")
    with pytest.raises(DataError, match="value_format: string"):
        read_all(strict, f"{topic}_b")
    strict.close()
    text = connector(bootstrap, f"fmt_{topic}")
    _, table = read_all(text, f"{topic}_b", value_format="string")
    assert table["value"].to_pylist() == ['{"a": 2}', "not json {"]
    text.close()


def test_field_appearing_after_first_batch_is_a_clear_error(bootstrap: str, topic: str):
    produce_messages(bootstrap, topic, [{"a": i} for i in range(5)] + [{"a": 9, "late": "x"}])
    kafka = connector(bootstrap, f"late_{topic}")
    with pytest.raises(DataError, match=r"'late'.*column_types"):
        read_all(kafka, topic)
    kafka.close()
    typed = connector(bootstrap, f"late_{topic}")
    _, table = read_all(typed, topic, column_types={"late": "string"})
    assert table["late"].to_pylist() == [None] * 5 + ["x"]
    typed.close()


def test_server_down_is_a_clear_error_and_secrets_are_masked():
    kafka = KafkaConnector({"bootstrap_servers": "127.0.0.1:1", "consumer_group": "g",
                            "timeout": 2, "security_protocol": "SASL_PLAINTEXT",
                            "sasl_mechanism": "PLAIN", "sasl_username": "u",
                            "sasl_password": "Very-Secret-42"})
    assert kafka.test_connection() is False
    with pytest.raises(ConnectorError, match="bootstrap_servers") as failure:
        kafka.read(ReadRequest(table="orders"))
    assert "Very-Secret-42" not in str(failure.value)
    assert "Very-Secret-42" not in kafka.describe()
    with pytest.raises(SpecError, match=r"connection_params\.sasl_pasword: .*Extra inputs"):
        KafkaConnector({"bootstrap_servers": "x:1", "sasl_pasword": "typo"})


def test_spec_problems_name_the_field(tmp_path: Path, bootstrap: str):
    specs = write_spec(tmp_path, "bad", f"""\
        name: bad
        sources:
          - name: events
            source_type: kafka
            connection_params: {{bootstrap_servers: "{bootstrap}"}}
            table: events
            options: {{max_mesages: 10}}
        targets:
          - name: out
            target_type: kafka
            connection_params: {{bootstrap_servers: "{bootstrap}"}}
            table: out
            write_mode: upsert
            key_columns: [id]
        """)
    with pytest.raises(SpecError) as failure:
        load_project(specs)
    text = str(failure.value)
    assert "sources[0].options: options.max_mesages is not a Kafka source option" in text
    assert "consumer_group" in text
    assert "write_mode 'upsert'" in text


JOB = """\
name: kafka_events
sources:
  - name: events
    source_type: kafka
    connection_params:
      bootstrap_servers: "{bootstrap}"
      consumer_group: "{group}"
    table: "{topic}"
    batch_size: 3
    options: {{max_messages: 1000, metadata_columns: [offset]}}
targets:
  - name: events_table
    target_type: database
    connection_params: {{type: sqlite, database: output/events.db}}
    table: events
"""


def test_dagster_job_is_at_least_once(tmp_path: Path, bootstrap: str, topic: str):
    specs = write_spec(tmp_path, "kafka_events",
                       JOB.format(bootstrap=bootstrap, group=f"job_{topic}", topic=topic))
    produce_messages(bootstrap, topic, [{"id": i, "name": f"n{i}"} for i in range(5)])
    db = tmp_path / "output/events.db"
    db.parent.mkdir()
    with sqlite3.connect(db) as con:  # a target that fails once: a NOT NULL column no row has
        con.execute("create table events (_offset integer, id integer, name text, "
                    "required text not null)")
    instance = dg.DagsterInstance.ephemeral()
    failed = run_job(specs, "kafka_events", instance)
    assert not failed.success
    assert "required" in failure_text(failed)

    with sqlite3.connect(db) as con:
        con.execute("drop table events")
    result = run_job(specs, "kafka_events", instance)
    assert result.success
    with sqlite3.connect(db) as con:
        assert con.execute("select id, name from events order by id").fetchall() == [
            (i, f"n{i}") for i in range(5)]  # the messages of the failed run, read again
    assert endpoint_events(result)["kafka_events/events"]["nexus/rows_extracted"].value == 5

    produce_messages(bootstrap, topic, [{"id": 5, "name": "n5"}, {"id": 6, "name": "n6"}])
    result = run_job(specs, "kafka_events", instance)
    assert result.success
    assert endpoint_events(result)["kafka_events/events_table"]["dagster/row_count"].value == 2
    with sqlite3.connect(db) as con:
        assert con.execute("select count(*), count(distinct id) from events").fetchone() == (7, 7)


def test_dagster_job_writes_a_topic(tmp_path: Path, bootstrap: str, topic: str):
    (tmp_path / "data").mkdir()
    (tmp_path / "data/orders.csv").write_text("id,customer,amount\n1,ann,9.5\n2,bob,\n3,ann,1\n")
    specs = write_spec(tmp_path, "orders_out", f"""\
        name: orders_out
        sources:
          - {{name: orders, source_type: file, file_path: data/orders.csv}}
        transformations:
          - {{name: doubled, transformation_type: map, config: {{mappings: {{x2: amount * 2}}}}}}
        targets:
          - name: orders_topic
            target_type: kafka
            connection_params: {{brokers: ["{bootstrap}"]}}
            table: "{topic}"
            options: {{key_column: customer, partitions: 2}}
        """)
    result = run_job(specs, "orders_out", dg.DagsterInstance.ephemeral())
    assert result.success, failure_text(result)
    assert endpoint_events(result)["orders_out/orders_topic"]["dagster/row_count"].value == 3
    kafka = connector(bootstrap, f"out_{topic}")
    _, table = read_all(kafka, topic, metadata_columns=["key"])
    rows = sorted(table.to_pylist(), key=lambda r: r["id"])
    assert rows == [
        {"_key": "ann", "id": 1, "customer": "ann", "amount": 9.5, "x2": 19.0},
        {"_key": "bob", "id": 2, "customer": "bob", "amount": None, "x2": None},
        {"_key": "ann", "id": 3, "customer": "ann", "amount": 1.0, "x2": 2.0},
    ]
    kafka.close()
