"""The PostgreSQL -> PostgreSQL pushdown pipe and the COPY csv reader give what the general
path gives: same rows, exact types, write modes, cursors, and a failed load changes nothing."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import psycopg2
import pytest
import sqlalchemy as sa

from nexus_dagster.connectors.base import ReadRequest
from nexus_dagster.connectors.database import DatabaseConnector
from nexus_dagster.errors import LoadError
from nexus_dagster.run import SourceExtracted, TargetLoaded, execute
from nexus_dagster.spec.loader import JobSpec
from nexus_dagster.spec.models import ETLJob

SETUP = """
CREATE TABLE orders (id bigint PRIMARY KEY, created_at timestamptz, qty int, status text,
                     amount numeric(12,2), email varchar(80), paid boolean, day date);
INSERT INTO orders VALUES
 (1, '2024-01-01 10:00:00.123456+02', 2, 'paid', 12.34, 'ünï@x.io', true, '2024-01-01'),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (3, '2024-03-01 00:00:00+00', 5, '', -0.01, 'a,"b"' || chr(10) || 'c', false, '2024-03-01'),
 (4, '2024-03-02 00:00:00+00', 7, 'new', 99999.99, '日本', true, NULL);
"""
STEPS = [
    {"name": "keep", "transformation_type": "filter", "order": 1,
     "config": {"condition": "amount >= 0 or amount is None"}},
    {"name": "calc", "transformation_type": "map", "order": 2,
     "config": {"mappings": {"amount_x2": "amount * 2", "qty_next": "qty + 1",
                             "label": "status + \"!\""}}},
]


def spec(url: str, target: str, mode: str = "append", steps=STEPS, **source) -> JobSpec:
    params = {"type": "postgresql", "url": url}
    job = ETLJob.model_validate({
        "name": "perf",
        "sources": [{"name": "orders", "source_type": "database", "connection_params": params,
                     "table": "orders", **source}],
        "transformations": steps,
        "targets": [{"name": "out", "target_type": "database", "connection_params": params,
                     "table": target, "write_mode": mode,
                     "key_columns": ["id"] if mode == "upsert" else []}],
    })
    return JobSpec(job=job, file=None, root=Path("."))


def run(monkeypatch, job: JobSpec, pushdown: bool, cursors=None) -> list:
    monkeypatch.setenv("NEXUS_PUSHDOWN", "1" if pushdown else "0")
    return list(execute(job, {}, stored_cursors=cursors))


def rows(engine: sa.Engine, table: str) -> list[tuple]:
    with engine.connect() as connection:
        return connection.exec_driver_sql(f"SELECT * FROM {table} ORDER BY id").fetchall()


def types(engine: sa.Engine, table: str) -> list[tuple]:
    with engine.connect() as connection:
        return connection.exec_driver_sql(
            "SELECT column_name, format_type(atttypid, atttypmod) FROM information_schema.columns"
            " JOIN pg_attribute ON attrelid = %s::regclass AND attname = column_name"
            " WHERE table_name = %s ORDER BY ordinal_position", (table, table)).fetchall()


@pytest.fixture
def pg(pg_url: str):
    engine = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    with engine.begin() as connection:
        connection.exec_driver_sql(SETUP)
    yield pg_url, engine
    engine.dispose()


def test_pushdown_equals_general_path(pg, monkeypatch):
    url, engine = pg
    fast = run(monkeypatch, spec(url, "fast", incremental_column="id"), pushdown=True)
    slow = run(monkeypatch, spec(url, "slow", incremental_column="id"), pushdown=False)
    assert fast[0].result.extra.get("pushdown") is True
    assert "pushdown" not in slow[0].result.extra
    assert rows(engine, "fast") == rows(engine, "slow")
    assert types(engine, "fast") == types(engine, "slow")
    assert dict(types(engine, "fast"))["amount"] == "numeric(12,2)"
    assert dict(types(engine, "fast"))["created_at"] == "timestamp with time zone"
    got = {r[0]: r for r in rows(engine, "fast")}
    assert set(got) == {1, 2, 4}
    assert got[4][4] == Decimal("99999.99") and got[4][8] == Decimal("199999.98")
    assert got[1][5] == "ünï@x.io" and got[2][1] is None
    for a, b in zip(fast, slow, strict=True):
        assert type(a) is type(b)
        if isinstance(a, TargetLoaded):
            assert (a.rows_extracted, a.rows_transformed, a.result.rows_loaded) == (
                b.rows_extracted, b.rows_transformed, b.result.rows_loaded) == (4, 3, 3)
            assert a.schema == b.schema
        if isinstance(a, SourceExtracted):
            assert a.cursor_after == b.cursor_after == {"column": "id", "type": "int",
                                                        "value": "4"}


def test_cursor_advances_from_stored_value(pg, monkeypatch):
    url, engine = pg
    stored = {"orders": {"column": "id", "type": "int", "value": "2"}}
    events = run(monkeypatch, spec(url, "inc", incremental_column="id"), True, stored)
    assert events[0].result.extra.get("pushdown") is True
    assert [r[0] for r in rows(engine, "inc")] == [4]  # 3 is filtered out (amount < 0)
    assert events[0].rows_extracted == 2
    assert events[1].cursor_after["value"] == "4"


@pytest.mark.parametrize("mode", ["overwrite", "upsert"])
def test_write_modes_match(pg, monkeypatch, mode):
    url, engine = pg
    plain = [STEPS[0]]
    for table in ("fast_m", "slow_m"):
        with engine.begin() as connection:
            connection.exec_driver_sql(
                f"CREATE TABLE {table} (LIKE orders INCLUDING ALL);"
                f"INSERT INTO {table} SELECT * FROM orders WHERE id = 1;"
                f"UPDATE {table} SET status = 'old';"
                f"INSERT INTO {table} (id, status) VALUES (9, 'keep?')")
    fast = run(monkeypatch, spec(url, "fast_m", mode, plain), pushdown=True)
    slow = run(monkeypatch, spec(url, "slow_m", mode, plain), pushdown=False)
    assert fast[0].result.extra.get("pushdown") is True
    assert rows(engine, "fast_m") == rows(engine, "slow_m")
    assert (fast[0].result.rows_inserted, fast[0].result.rows_updated) == (
        slow[0].result.rows_inserted, slow[0].result.rows_updated)
    ids = [r[0] for r in rows(engine, "fast_m")]
    assert ids == ([1, 2, 4] if mode == "overwrite" else [1, 2, 4, 9])


def test_failed_pipe_leaves_target_unchanged(pg, monkeypatch):
    url, engine = pg
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE small (id bigint, created_at timestamptz, qty int, status text,"
            " amount numeric(4,2), email text, paid boolean, day date);"
            "INSERT INTO small (id, status) VALUES (100, 'before')")
    with pytest.raises(LoadError, match="overflow"):
        run(monkeypatch, spec(url, "small", steps=[]), pushdown=True)
    assert rows(engine, "small") == [(100, None, None, "before", None, None, None, None)]
    with pytest.raises(LoadError):  # created by the failed load: dropped again
        run(monkeypatch, spec(url, "fresh", steps=[{
            "name": "bad", "transformation_type": "map", "order": 1,
            "config": {"mappings": {"qty": "qty * 1000000000"}}}]), pushdown=True)
    assert not sa.inspect(engine).has_table("fresh")


def test_unportable_expression_takes_general_path(pg, monkeypatch):
    url, engine = pg
    steps = [{"name": "s", "transformation_type": "filter", "order": 1,
              "config": {"condition": "status > \"a\""}}]  # collation-dependent in SQL
    events = run(monkeypatch, spec(url, "general", steps=steps), pushdown=True)
    assert "pushdown" not in events[0].result.extra
    assert [r[0] for r in rows(engine, "general")] == [1, 4]


def test_copy_reader_equals_row_reader(pg, monkeypatch):
    url, _ = pg
    connector = DatabaseConnector({"type": "postgresql", "url": url})
    try:
        monkeypatch.setenv("NEXUS_FAST_READ", "1")
        fast = connector.read(ReadRequest(table="orders", batch_size=2)).to_table()
        monkeypatch.setenv("NEXUS_FAST_READ", "0")
        slow = connector.read(ReadRequest(table="orders", batch_size=2)).to_table()
        empty = connector.read(ReadRequest(query="SELECT * FROM orders WHERE false")).to_table()
    finally:
        connector.close()
    assert fast.schema == slow.schema
    assert str(fast.schema.field("amount").type) == "decimal128(12, 2)"
    assert str(fast.schema.field("created_at").type) == "timestamp[us, tz=UTC]"
    assert fast.sort_by("id").to_pylist() == slow.sort_by("id").to_pylist()
    assert fast.sort_by("id").column("status").to_pylist() == ["paid", None, "", "new"]
    assert empty.num_rows == 0


class _Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str) -> None:
        self.lines.append(message)

    warning = info


def test_pushdown_logs_pipe_progress_and_reports_rows_per_second(pg, monkeypatch):
    url, engine = pg
    with engine.begin() as connection:  # ~2.5 MB through the pipe: several 1 MB reads
        connection.exec_driver_sql(
            "INSERT INTO orders (id, status, amount) SELECT g, repeat('x', 100), 1.5"
            " FROM generate_series(10, 20009) g")
    monkeypatch.setenv("NEXUS_PROGRESS_BATCHES", "1")  # a line per chunk read from the pipe
    log = _Lines()
    monkeypatch.setenv("NEXUS_PUSHDOWN", "1")
    events = list(execute(spec(url, "fast"), {}, log=log))
    (loaded,) = [e for e in events if isinstance(e, TargetLoaded)]
    assert loaded.result.extra["plan"] == "pg_copy_pipe"
    progress = [line for line in log.lines if line.startswith("progress ")]
    assert len(progress) >= 3, log.lines
    sizes = [float(re.match(r"progress load out: ([\d.,]+) MB through the pipe, [\d.,]+ MB/s "
                            r"in [\d.,]+ s$", line).group(1).replace(",", ""))
             for line in progress]
    assert sizes == sorted(sizes) and sizes[-1] > 2.0
    assert loaded.result.extra["rows_per_second"] > 0


def test_pushdown_without_a_condition_counts_the_copied_rows_as_extracted(pg, monkeypatch):
    # no filter and no cursor: the pipe skips the second scan that counts the source
    url, engine = pg
    only_map = [STEPS[1]]
    fast = run(monkeypatch, spec(url, "fast", steps=only_map), pushdown=True)
    slow = run(monkeypatch, spec(url, "slow", steps=only_map), pushdown=False)
    assert fast[0].result.extra["plan"] == "pg_copy_pipe"
    counts = [(e.rows_extracted, e.rows_transformed, e.result.rows_loaded)
              for e in (fast[0], slow[0])]
    assert counts == [(4, 4, 4), (4, 4, 4)]
    assert fast[1].rows == slow[1].rows == 4
    assert rows(engine, "fast") == rows(engine, "slow")


def test_pushdown_run_connects_to_postgresql_at_most_five_times(pg, monkeypatch):
    """Two source connections (the read's column probe; then one session for the plan's own
    probe, the rendered SQL and the COPY) and three target ones (its column types, the table
    creation, the load's transaction): every new connection costs a backend start and auth."""
    url, _ = pg
    opened: list[str] = []
    real_connect = psycopg2.connect

    def counting_connect(*args, **kwargs):
        opened.append("connection")
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(psycopg2, "connect", counting_connect)
    events = run(monkeypatch, spec(url, "fast"), pushdown=True)
    assert events[0].result.extra["plan"] == "pg_copy_pipe"
    assert events[0].result.rows_loaded == 3
    assert len(opened) <= 5, opened
