"""Engine sessions and statements: per-dialect session setup, user queries as subqueries,
compilation to DBAPI SQL, driver messages without SQLAlchemy's statement dump."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event


def install_session_setup(engine: sa.Engine, backend: str) -> None:
    """UTC sessions, JSON as text (PostgreSQL), real transactions for DDL (SQLite)."""
    if backend == "postgresql":

        @event.listens_for(engine, "connect")
        def _pg_connect(dbapi_connection: Any, _record: Any) -> None:
            import psycopg2.extras

            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET TIME ZONE 'UTC'")
            dbapi_connection.commit()
            psycopg2.extras.register_default_json(dbapi_connection, loads=lambda text: text)
            psycopg2.extras.register_default_jsonb(dbapi_connection, loads=lambda text: text)

    elif backend == "mysql":

        @event.listens_for(engine, "connect")
        def _mysql_connect(dbapi_connection: Any, _record: Any) -> None:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET time_zone = '+00:00'")

        from nexus_dagster.connectors.sql.mysql_load import allow_local_infile

        allow_local_infile(engine)

    elif backend == "sqlite":
        # pysqlite does not BEGIN before DDL; take over transaction control (SQLAlchemy recipe)
        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection: sa.Connection) -> None:
            # loads take the write lock up front (BEGIN IMMEDIATE) so that concurrent writers
            # (parallel partition runs) wait for the busy timeout instead of failing with
            # "database is locked" when a read lock cannot be upgraded
            immediate = connection.get_execution_options().get("sqlite_immediate", False)
            connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def strip_query(query: str | None) -> str:
    return (query or "").strip().rstrip(";").strip()


def query_source(query: str, columns: Sequence[sa.ColumnClause[Any]]) -> sa.Subquery:
    """A user query as a subquery: ``(query) AS nexus_q``."""
    return sa.text(strip_query(query)).columns(*columns).subquery("nexus_q")


def compile_statement(statement: sa.Select[Any], dialect: sa.Dialect) -> tuple[str, Any]:
    """SQL text and DBAPI parameters (dict or tuple, per the driver's paramstyle)."""
    compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.params
    if compiled.positional:
        return str(compiled), tuple(params[name] for name in compiled.positiontup or ())
    return str(compiled), params


def describe_exception(exc: BaseException) -> str:
    """The driver's own message, first lines, without SQLAlchemy's statement/parameter dump."""
    original = getattr(exc, "orig", None)
    text = str(original) if original is not None else str(exc)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    kind = type(original if original is not None else exc).__name__
    return f"{kind}: {' '.join(lines[:3])}" if lines else kind
