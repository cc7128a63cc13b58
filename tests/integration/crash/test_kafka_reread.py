"""Kafka offsets are committed only after every target committed: a load that fails on a
later batch, and a job whose second target fails, both leave the consumer group's offsets where
they were, and the next run reads the same messages again (nothing lost, nothing skipped).

Real broker (scripts/services.py), real PostgreSQL targets; the failure is a row trigger that
raises at id FAIL_AT while the table ``fail_switch`` has a row, after counting every row it saw.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from tests.integration.dedicated_pg import autocommit_engine, run_sql
from tests.integration.streams.kv_support import failure_text, write_spec
from tests.support import produce_messages, run_job

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

MESSAGES, FAIL_AT, BATCH, PARTITIONS = 4_000, 3_000, 500, 2


def _produce(bootstrap: str, topic: str, first: int, last: int) -> None:
    """Messages {id, name} for ids first..last-1; id i lands in partition i % PARTITIONS
    (``first`` is a multiple of PARTITIONS)."""
    produce_messages(bootstrap, topic, [{"id": i, "name": f"n{i}"} for i in range(first, last)],
                     PARTITIONS)


def _committed(bootstrap: str, group: str, topic: str) -> list[int]:
    """The group's committed offset per partition (negative: nothing committed)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        found = consumer.committed([TopicPartition(topic, p) for p in range(PARTITIONS)],
                                   timeout=10)
        return [tp.offset for tp in found]
    finally:
        consumer.close()


def _failing_table(url: str, table: str, key: bool = False) -> None:
    """``table`` (id, name) whose row trigger counts rows and raises at FAIL_AT while armed."""
    primary = " primary key" if key else ""
    run_sql(url,
            f"CREATE TABLE {table} (id bigint{primary}, name text)",
            "CREATE TABLE IF NOT EXISTS fail_switch (armed int)",
            f"CREATE SEQUENCE {table}_seen",
            f"CREATE FUNCTION {table}_check() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN\n"
            f"    PERFORM nextval('{table}_seen');\n"
            f"    IF NEW.id = {FAIL_AT} AND EXISTS (SELECT 1 FROM fail_switch) THEN\n"
            f"        RAISE EXCEPTION 'nexus test: {table} refuses id {FAIL_AT}';\n"
            "    END IF; RETURN NEW; END $$",
            f"CREATE TRIGGER {table}_check BEFORE INSERT ON {table} FOR EACH ROW "
            f"EXECUTE FUNCTION {table}_check()")


def _scalar(url: str, sql: str):
    engine = autocommit_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql)).one()
    finally:
        engine.dispose()


def _spec(bootstrap: str, group: str, topic: str, url: str, targets: str) -> str:
    return f"""\
        name: kafka_events
        sources:
          - name: events
            source_type: kafka
            connection_params: {{bootstrap_servers: "{bootstrap}", consumer_group: "{group}"}}
            table: "{topic}"
            batch_size: {BATCH}
            options: {{max_messages: 100000}}
        targets:
{targets.format(url=url)}"""


def _rows(url: str, table: str) -> tuple[int, int, int, int]:
    """(rows, distinct ids, min id, max id)."""
    return tuple(_scalar(url, f"SELECT count(*), count(DISTINCT id), coalesce(min(id), -1), "
                              f"coalesce(max(id), -1) FROM {table}"))


def test_a_load_failing_on_a_later_batch_reads_the_same_messages_next_run(
        tmp_path: Path, bootstrap: str, topic: str, pg_url: str):
    group = f"g_{topic}"
    _failing_table(pg_url, "events")
    run_sql(pg_url, "INSERT INTO fail_switch VALUES (1)")
    _produce(bootstrap, topic, 0, MESSAGES)
    specs = write_spec(tmp_path, "kafka_events", _spec(bootstrap, group, topic, pg_url, """\
          - {{name: events_table, target_type: database, connection_params: {{url: "{url}"}},
             table: events, write_mode: append}}"""))
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        failed = run_job(specs, "kafka_events", instance)
        assert not failed.success
        assert f"refuses id {FAIL_AT}" in failure_text(failed)
        # the rows of earlier batches had reached the target before the failing one
        assert _scalar(pg_url, "SELECT last_value FROM events_seen")[0] > BATCH
        assert _rows(pg_url, "events")[0] == 0  # rolled back
        assert all(o < 0 for o in _committed(bootstrap, group, topic))  # offsets not moved

        run_sql(pg_url, "DELETE FROM fail_switch")
        assert run_job(specs, "kafka_events", instance).success
        assert _rows(pg_url, "events") == (MESSAGES, MESSAGES, 0, MESSAGES - 1)
        assert sum(_committed(bootstrap, group, topic)) == MESSAGES

        _produce(bootstrap, topic, MESSAGES, MESSAGES + 10)  # and the next run goes on from there
        assert run_job(specs, "kafka_events", instance).success
        assert _rows(pg_url, "events") == (MESSAGES + 10, MESSAGES + 10, 0, MESSAGES + 9)


def test_a_job_whose_second_target_fails_reads_the_same_messages_next_run(
        tmp_path: Path, bootstrap: str, topic: str, pg_url: str):
    group = f"g_{topic}"
    run_sql(pg_url, "CREATE TABLE events_a (id bigint primary key, name text)")
    _failing_table(pg_url, "events_b")
    run_sql(pg_url, "INSERT INTO fail_switch VALUES (1)")
    _produce(bootstrap, topic, 0, MESSAGES)
    specs = write_spec(tmp_path, "kafka_events", _spec(bootstrap, group, topic, pg_url, """\
          - {{name: first, target_type: database, connection_params: {{url: "{url}"}},
             table: events_a, write_mode: upsert, key_columns: [id]}}
          - {{name: second, target_type: database, connection_params: {{url: "{url}"}},
             table: events_b, write_mode: append}}"""))
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        failed = run_job(specs, "kafka_events", instance)
        assert not failed.success
        assert f"events_b refuses id {FAIL_AT}" in failure_text(failed)
        assert _rows(pg_url, "events_a")[0] == MESSAGES  # the first target had committed
        assert _rows(pg_url, "events_b")[0] == 0
        assert all(o < 0 for o in _committed(bootstrap, group, topic))  # offsets not moved

        run_sql(pg_url, "DELETE FROM fail_switch")
        assert run_job(specs, "kafka_events", instance).success
        # every message again: the second target has them all, the first (upsert) no twice
        assert _rows(pg_url, "events_b") == (MESSAGES, MESSAGES, 0, MESSAGES - 1)
        assert _rows(pg_url, "events_a") == (MESSAGES, MESSAGES, 0, MESSAGES - 1)
        assert sum(_committed(bootstrap, group, topic)) == MESSAGES
