"""Decimals in Kafka messages and Redis values are exact JSON numbers with their digits (as in
JSON/JSONL files); Redis hash fields hold those digits as text."""

from __future__ import annotations

import json
from decimal import Decimal

import pyarrow as pa
import pytest

from nexus_dagster.connectors.base import ReadRequest, WriteRequest
from nexus_dagster.connectors.kafka import KafkaConnector
from nexus_dagster.connectors.redis import RedisConnector
from nexus_dagster.relation import Relation

MONEY = pa.table({
    "id": pa.array([1, 2], pa.int64()),
    "amount": pa.array([Decimal("900.10"), Decimal("12345678901234567.89")],
                       pa.decimal128(21, 2)),
    "rate": [0.5, 1e-05],
})


@pytest.mark.kafka
def test_kafka_json_messages_carry_decimals_as_exact_numbers(bootstrap: str, topic: str):
    kafka = KafkaConnector({"bootstrap_servers": bootstrap, "consumer_group": f"d_{topic}"})
    kafka.write(Relation.from_table(MONEY), WriteRequest(table=topic, key_columns=("id",)))
    relation = kafka.read(ReadRequest(table=topic, options={"value_format": "string"}))
    values = sorted(relation.to_table()["value"].to_pylist())
    kafka.close()
    assert values == ['{"id": 1, "amount": 900.10, "rate": 0.5}',
                      '{"id": 2, "amount": 12345678901234567.89, "rate": 1e-05}']
    amounts = [json.loads(v, parse_float=Decimal)["amount"] for v in values]
    assert amounts == [Decimal("900.10"), Decimal("12345678901234567.89")]


@pytest.mark.redis
def test_redis_string_values_carry_decimals_as_exact_numbers(
    redis_conn: RedisConnector, prefix: str
):
    redis_conn.write(Relation.from_table(MONEY), WriteRequest(
        options={"key_template": prefix + ":{id}", "data_type": "string"}))
    assert redis_conn.client.get(f"{prefix}:2") == (
        '{"id": 2, "amount": 12345678901234567.89, "rate": 1e-05}')


@pytest.mark.redis
def test_redis_hash_fields_hold_the_decimal_digits(redis_conn: RedisConnector, prefix: str):
    redis_conn.write(Relation.from_table(MONEY), WriteRequest(
        table=prefix, write_mode="upsert", key_columns=("id",)))
    assert redis_conn.client.hgetall(f"{prefix}:1") == {
        "id": "1", "amount": "900.10", "rate": "0.5"}
    assert redis_conn.client.hgetall(f"{prefix}:2")["amount"] == "12345678901234567.89"
