"""Change data capture from PostgreSQL logical replication (cdc: true), on a PostgreSQL server
of the module's own with wal_level=logical (the shared test server stays as it is): changes
read with _op and the table's types, applied by sync targets round after round, a failed load
leaving the slot unconfirmed so the next run applies the same changes, and every test slot
dropped even when a test fails."""

from __future__ import annotations

import datetime as dt
import decimal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest
import sqlalchemy as sa

from nexus_dagster.connectors.base import ChangeCapture, ReadRequest, WriteRequest
from nexus_dagster.connectors.database import DatabaseConnector
from nexus_dagster.errors import ConnectorError, DataError, LoadError
from nexus_dagster.relation import Relation
from tests.integration.database.helpers import fetch
from tests.integration.dedicated_pg import DedicatedPostgres, dedicated_postgres, run_sql
from tests.integration.streams.kv_support import endpoint_events, run_job, write_spec
from tests.integration.streams.kv_support import failure_text as run_failure

ROLE, ROLE_PASSWORD = "nexus_cdc", "cdc-Pw-41b2"
SETTINGS = {"wal_level": "logical", "max_replication_slots": "10", "max_wal_senders": "10"}


@pytest.fixture(scope="module")
def server() -> Iterator[DedicatedPostgres]:
    with dedicated_postgres(SETTINGS) as pg:
        pg.create_role(ROLE, ROLE_PASSWORD, "LOGIN REPLICATION")
        yield pg


@pytest.fixture
def cdc(server: DedicatedPostgres) -> Iterator[dict[str, object]]:
    """A fresh orders table owned by the REPLICATION role, and publication/slot names that
    are dropped after the test, passed or failed (a slot keeps WAL until it is dropped)."""
    suffix = uuid.uuid4().hex[:8]
    names = {"table": f"orders_{suffix}", "target": f"copy_{suffix}",
             "publication": f"pub_{suffix}", "slot": f"slot_{suffix}"}
    params = {**server.params(), "user": ROLE, "password": ROLE_PASSWORD}
    url = server.url.replace(f"postgres:{server.params()['password']}",
                             f"{ROLE}:{ROLE_PASSWORD}")
    run_sql(url, f"CREATE TABLE {names['table']} (id int PRIMARY KEY, name text, "
                 "amount numeric(10,2), at timestamptz)")
    try:
        yield {**names, "params": params, "url": url}
    finally:
        _drop_slot(server.url, str(names["slot"]))
        run_sql(server.url, f"DROP PUBLICATION IF EXISTS {names['publication']}",
                f"DROP TABLE IF EXISTS {names['table']}", f"DROP TABLE IF EXISTS {names['target']}")


def _drop_slot(url: str, slot: str) -> None:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            deadline = time.monotonic() + 30
            while True:
                row = connection.execute(sa.text(
                    "SELECT active FROM pg_replication_slots WHERE slot_name = :s"), {"s": slot},
                ).first()
                if row is None:
                    return
                if not row.active or time.monotonic() > deadline:
                    connection.execute(sa.text("SELECT pg_drop_replication_slot(:s)"),
                                       {"s": slot})
                    return
                time.sleep(0.1)
    finally:
        engine.dispose()


def _slot_position(url: str, slot: str) -> str | None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots "
                "WHERE slot_name = :s"), {"s": slot}).scalar_one_or_none()
    finally:
        engine.dispose()


def _rows(url: str, table: str) -> list[tuple]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            return [tuple(r) for r in connection.execute(sa.text(
                f"SELECT id, name, amount, at FROM {table} ORDER BY id"))]
    finally:
        engine.dispose()


def _read(cdc: dict, state: dict | None = None) -> tuple[pa.Table, DatabaseConnector, object]:
    connector = DatabaseConnector(cdc["params"])
    relation = connector.read(ReadRequest(
        table=str(cdc["table"]), batch_size=2, state=state,
        cdc=ChangeCapture(str(cdc["publication"]), str(cdc["slot"]))))
    return relation.to_table(), connector, relation


AT = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC)


def test_inserts_updates_and_deletes_are_read_with_op_and_the_table_types(cdc) -> None:
    table, connector, _ = _read(cdc)  # creates the publication and the slot: nothing yet
    connector.close()
    assert table.num_rows == 0
    run_sql(str(cdc["url"]),
            f"INSERT INTO {cdc['table']} VALUES (1, 'ann', 9.50, '2024-05-01 14:30+02'), "
            "(2, 'bob', NULL, NULL), (3, 'cy', 1.25, NULL)",
            f"UPDATE {cdc['table']} SET name = 'Bob', amount = 3 WHERE id = 2",
            f"DELETE FROM {cdc['table']} WHERE id = 3",
            f"UPDATE {cdc['table']} SET id = 10 WHERE id = 1")  # a key change
    table, connector, relation = _read(cdc)
    connector.close()
    assert table.schema.field("amount").type == pa.decimal128(10, 2)
    assert table.schema.field("at").type == pa.timestamp("us", tz="UTC")
    assert table.to_pylist() == [
        {"id": 1, "name": "ann", "amount": decimal.Decimal("9.50"), "at": AT, "_op": "insert"},
        {"id": 2, "name": "bob", "amount": None, "at": None, "_op": "insert"},
        {"id": 3, "name": "cy", "amount": decimal.Decimal("1.25"), "at": None, "_op": "insert"},
        {"id": 2, "name": "Bob", "amount": decimal.Decimal("3.00"), "at": None, "_op": "update"},
        {"id": 3, "name": None, "amount": None, "at": None, "_op": "delete"},
        {"id": 1, "name": None, "amount": None, "at": None, "_op": "delete"},
        {"id": 10, "name": "ann", "amount": decimal.Decimal("9.50"), "at": AT, "_op": "update"},
    ]
    assert relation.stats["changes"] == {"insert": 3, "update": 2, "delete": 1}
    assert relation.stats["state"]["slot"] == cdc["slot"]


def test_unconfirmed_changes_are_read_again_and_confirmed_ones_are_not(cdc) -> None:
    _read(cdc)[1].close()
    run_sql(str(cdc["url"]), f"INSERT INTO {cdc['table']} VALUES (1, 'a', 1, NULL)")
    first, connector, relation = _read(cdc)
    connector.close()  # not acknowledged: as if a target failed
    again, connector, relation = _read(cdc)
    assert first.to_pylist() == again.to_pylist() and again.num_rows == 1
    connector.acknowledge(relation)
    connector.close()
    assert _slot_position(str(cdc["url"]), str(cdc["slot"])) == relation.stats["state"]["lsn"]
    after, connector, _ = _read(cdc, relation.stats["state"])
    connector.close()
    assert after.num_rows == 0


JOB = """\
name: {job}
sources:
  - name: orders
    source_type: database
    connection: app_db
    table: {table}
    cdc: true
    publication: {publication}
    slot: {slot}
    batch_size: 2
targets:
  - name: orders_copy
    target_type: database
    connection: app_db
    table: {target}
    write_mode: sync
    key_columns: [id]
"""


def _job(tmp_path: Path, cdc: dict, job: str) -> Path:
    specs = write_spec(tmp_path, job, JOB.format(job=job, **{k: v for k, v in cdc.items()
                                                            if isinstance(v, str)}))
    params = cdc["params"]
    (specs / "connections.yaml").write_text(
        "app_db:\n" + "".join(f"  {k}: {v}\n" for k, v in params.items()))
    return specs


def test_sync_target_equals_the_source_after_each_round(tmp_path: Path, cdc) -> None:
    specs, instance = _job(tmp_path, cdc, "cdc_rounds"), dg.DagsterInstance.ephemeral()
    source, target = str(cdc["table"]), str(cdc["target"])
    assert run_job(specs, "cdc_rounds", instance).success  # creates publication and slot
    rounds = [
        [f"INSERT INTO {source} SELECT i, 'n' || i, i * 1.5, NULL FROM generate_series(1, 7) i"],
        [f"UPDATE {source} SET name = 'changed', at = '2024-05-01 12:30Z' WHERE id IN (2, 3)",
         f"DELETE FROM {source} WHERE id IN (4, 5)", f"INSERT INTO {source} VALUES (8, 'x', 0)"],
        [f"DELETE FROM {source} WHERE id = 8", f"INSERT INTO {source} VALUES (8, 'again', 2)",
         f"UPDATE {source} SET id = 70 WHERE id = 7", f"INSERT INTO {source} VALUES (4, 'b', 1)",
         f"UPDATE {source} SET amount = NULL WHERE id = 1"],
        [],  # nothing changed: nothing to apply, nothing to confirm
    ]
    for number, statements in enumerate(rounds):
        if statements:
            run_sql(str(cdc["url"]), *statements)
        result = run_job(specs, "cdc_rounds", instance)
        assert result.success, run_failure(result)
        assert _rows(str(cdc["url"]), target) == _rows(str(cdc["url"]), source), number
    loaded = endpoint_events(result)["cdc_rounds/orders_copy"]
    assert loaded["nexus/rows_deleted"].value == 0
    read = endpoint_events(result)["cdc_rounds/orders"]
    assert read["nexus/rows_extracted"].value == 0
    kept = read["nexus/state"].value  # the position Dagster keeps is the one confirmed
    assert kept["slot"] == cdc["slot"]
    assert kept["lsn"] == _slot_position(str(cdc["url"]), str(cdc["slot"]))


def test_a_failed_load_leaves_the_slot_unconfirmed_and_the_next_run_applies_the_same_changes(
    tmp_path: Path, cdc
) -> None:
    specs, instance = _job(tmp_path, cdc, "cdc_retry"), dg.DagsterInstance.ephemeral()
    source, target, url = str(cdc["table"]), str(cdc["target"]), str(cdc["url"])
    run_sql(url, f"CREATE TABLE {target} (id int PRIMARY KEY, name text CHECK (name <> 'bad'), "
                 "amount numeric(10,2), at timestamptz)")
    assert run_job(specs, "cdc_retry", instance).success
    run_sql(url, f"INSERT INTO {source} VALUES (1, 'a', 1, NULL), (2, 'b', 2, NULL)")
    assert run_job(specs, "cdc_retry", instance).success
    confirmed = _slot_position(url, str(cdc["slot"]))
    run_sql(url, f"UPDATE {source} SET name = 'bad' WHERE id = 1",
            f"DELETE FROM {source} WHERE id = 2", f"INSERT INTO {source} VALUES (3, 'c', 3)")
    failed = run_job(specs, "cdc_retry", instance)
    assert not failed.success
    assert f"{target}_name_check" in run_failure(failed)
    assert _slot_position(url, str(cdc["slot"])) == confirmed
    assert _rows(url, target) == [(1, "a", decimal.Decimal("1.00"), None),
                                  (2, "b", decimal.Decimal("2.00"), None)]  # as it was
    run_sql(url, f"ALTER TABLE {target} DROP CONSTRAINT {target}_name_check")
    result = run_job(specs, "cdc_retry", instance)
    assert result.success, run_failure(result)
    assert _rows(url, target) == _rows(url, source)
    loaded = endpoint_events(result)["cdc_retry/orders_copy"]
    assert (loaded["nexus/rows_deleted"].value, loaded["dagster/row_count"].value) == (1, 2)
    assert _slot_position(url, str(cdc["slot"])) != confirmed


CHANGES = pa.schema([("id", pa.int64()), ("name", pa.string()), ("_op", pa.string())])


def _changes(rows: list[tuple]) -> Relation:
    table = pa.Table.from_pylist([dict(zip(CHANGES.names, r, strict=True)) for r in rows],
                                 CHANGES)
    return Relation.from_table(table, batch_size=2)


@pytest.mark.parametrize("mode", ["sync", "upsert"])
def test_changes_apply_by_key_with_the_last_change_of_each_key_winning(db, mode: str) -> None:
    """On PostgreSQL, MariaDB and SQLite: deletes delete by key, the rest is upserted; nothing
    else is deleted (the changes are not a full extract)."""
    request = WriteRequest(table="t", write_mode=mode, key_columns=("id",), change_column="_op")
    first = db.write(_changes([(1, "a", "insert"), (2, "b", "insert"), (3, "c", "insert")]),
                     request)
    assert first.extra["rows_deleted"] == 0
    result = db.write(_changes([
        (2, "B", "update"), (3, None, "delete"), (4, "d", "insert"), (4, "D", "update"),
        (5, "e", "insert"), (5, None, "delete"), (3, "c2", "insert"), (1, None, "delete"),
    ]), request)
    assert sorted(fetch(db, "SELECT id, name FROM t")) == [(2, "B"), (3, "c2"), (4, "D")]
    assert (result.extra["rows_deleted"], result.extra["changes_read"]) == (1, 8)
    assert [c["name"] for c in sa.inspect(db.engine).get_columns("t")] == ["id", "name"]


def test_a_change_without_a_known_op_fails_the_load_and_changes_nothing(db) -> None:
    request = WriteRequest(table="t", write_mode="sync", key_columns=("id",), change_column="_op")
    db.write(_changes([(1, "a", "insert")]), request)
    with pytest.raises(LoadError, match=r"'_op'.*\['upsert'\]"):
        db.write(_changes([(1, None, "delete"), (2, "b", "upsert")]), request)
    assert fetch(db, "SELECT id, name FROM t") == [(1, "a")]


def test_a_server_without_logical_wal_is_refused_naming_the_setting(pg) -> None:
    """The shared test server runs wal_level=replica: the read fails before creating
    anything, and says what to set."""
    with pg.engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE orders (id int PRIMARY KEY)")
    with pytest.raises(ConnectorError, match=r"wal_level=replica; .*needs wal_level=logical"):
        pg.read(ReadRequest(table="orders", cdc=ChangeCapture("pub_x", "slot_x")))


def test_a_role_without_replication_is_told_which_right_it_lacks(server, cdc) -> None:
    server.create_role("nexus_plain", "plain-Pw-9c1d")
    table = f"plain_{uuid.uuid4().hex[:8]}"
    params = {**server.params(), "user": "nexus_plain", "password": "plain-Pw-9c1d"}
    plain = DatabaseConnector(params)
    try:
        with plain.engine.begin() as connection:
            connection.exec_driver_sql(f"CREATE TABLE {table} (id int PRIMARY KEY)")
        with pytest.raises(ConnectorError, match=r"slot .*REPLICATION attribute"):
            plain.read(ReadRequest(table=table, cdc=ChangeCapture(
                str(cdc["publication"]), str(cdc["slot"]))))
    finally:
        plain.close()
        run_sql(server.url, f"DROP TABLE IF EXISTS {table}")


def test_a_large_value_an_update_did_not_send_is_kept_in_the_target(tmp_path: Path, cdc) -> None:
    """PostgreSQL leaves unchanged TOASTed values out of an update's change (REPLICA IDENTITY
    DEFAULT); the target keeps the real value, not a null."""
    specs, instance = _job(tmp_path, cdc, "cdc_toast"), dg.DagsterInstance.ephemeral()
    source, target, url = str(cdc["table"]), str(cdc["target"]), str(cdc["url"])
    assert run_job(specs, "cdc_toast", instance).success
    big = "(SELECT string_agg(md5(i::text || random()::text), '') FROM generate_series(1, 500) i)"
    run_sql(url, f"INSERT INTO {source} VALUES (1, {big}, 1, NULL), (2, 'small', 2, NULL)")
    assert run_job(specs, "cdc_toast", instance).success
    run_sql(url, f"UPDATE {source} SET amount = 5 WHERE id IN (1, 2)")
    table, connector, _ = _read(cdc)  # the change as read: the large value filled in
    connector.close()
    assert [len(r["name"]) for r in table.to_pylist()] == [16_000, 5]
    result = run_job(specs, "cdc_toast", instance)
    assert result.success, run_failure(result)
    assert _rows(url, target) == _rows(url, source)
    assert len(_rows(url, target)[0][1]) == 16_000


def test_a_truncate_of_the_table_fails_the_read_saying_how_to_start_over(cdc) -> None:
    _read(cdc)[1].close()
    run_sql(str(cdc["url"]), f"INSERT INTO {cdc['table']} VALUES (1, 'a', 1, NULL)",
            f"TRUNCATE {cdc['table']}")
    with pytest.raises(DataError, match=rf"truncated.*pg_drop_replication_slot\('{cdc['slot']}'\)"):
        _read(cdc)
