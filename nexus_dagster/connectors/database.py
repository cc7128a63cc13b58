"""Relational databases through SQLAlchemy: PostgreSQL, MySQL/MariaDB, SQLite and any dialect.

Reads stream a server-side cursor into Arrow batches; writes use each system's bulk path
(PostgreSQL COPY, MySQL LOAD DATA LOCAL INFILE, SQLite executemany) inside one transaction, with a
temporary staging table for ``overwrite`` and ``upsert``.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.pool import NullPool, StaticPool

from nexus_dagster.connectors.base import (
    AfterLoad,
    Connector,
    Cursor,
    LoadResult,
    ReadRequest,
    Scd2Options,
    WriteRequest,
)
from nexus_dagster.connectors.sql import (
    change_apply,
    load,
    mysql_load,
    pg_upsert,
    retention,
    scd2,
    source_delete,
    sync,
)
from nexus_dagster.connectors.sql.fast_read import fast_reader
from nexus_dagster.connectors.sql.session import (
    compile_statement,
    describe_exception,
    install_session_setup,
    query_source,
    strip_query,
)
from nexus_dagster.connectors.sql.types import (
    ColumnInfo,
    assume_timezone,
    coerce_cursor_value,
    infer_column,
    is_naive_timestamp,
    mysql_column,
    normalize_for_write,
    pg_column,
    rows_to_batch,
    sa_column,
    sa_type_for,
    sa_type_for_read,
)
from nexus_dagster.connectors.sql.url import (
    ConnectionSettings,
    DatabaseParams,
    connection_settings,
)
from nexus_dagster.errors import (
    ConnectorError,
    LoadError,
    NexusError,
    RetriableError,
    RetriableLoadError,
    SpecError,
)
from nexus_dagster.failures import is_transient
from nexus_dagster.relation import Relation

#: connection ``type`` (or URL scheme) -> the Dagster kind shown on assets
_KIND_ALIASES = {
    "postgresql": "postgres",
    "postgres": "postgres",
    "mysql": "mysql",
    "mariadb": "mariadb",
    "sqlite": "sqlite",
    "duckdb": "duckdb",
    "mssql": "sqlserver",
    "oracle": "oracle",
}

#: the bulk step of a load: (connection, table, columns, batches) -> rows loaded
BulkLoad = Callable[[sa.Connection, sa.Table, Sequence[str], Iterator[pa.RecordBatch]], int]


def _retriable(cls: type[ConnectorError]) -> type[ConnectorError]:
    """The retriable kind of ``cls`` for a connection-type failure."""
    return RetriableLoadError if issubclass(cls, LoadError) else RetriableError


class DatabaseConnector(Connector):
    """Source and target for SQL databases.

    Params are Nexus ``connection_params``, typed by :class:`DatabaseParams`: ``type``
    (postgresql/postgres, mysql/mariadb, sqlite or any SQLAlchemy dialect name), ``host``,
    ``port``, ``database``, ``user``/``username``, ``password`` or a full SQLAlchemy ``url``;
    ``schema`` (default schema for unqualified table names), ``timeout`` (connect timeout,
    seconds, default 10). The model allows extra keys on purpose: any other key (``sslmode``,
    ``sslrootcert``, ``ssl_ca``, ...) is passed to the driver's ``connect()``.

    Example:
        >>> db = DatabaseConnector({"type": "sqlite", "database": "/tmp/app.db"})
        >>> relation = db.read(ReadRequest(table="orders", batch_size=10_000,
        ...                                cursor=Cursor("updated_at", "2024-01-01", True)))
        >>> db.write(relation, WriteRequest(table="orders_copy", write_mode="upsert",
        ...                                 key_columns=("id",)))  # doctest: +SKIP
        >>> relation.stats["cursor_max"]  # the next cursor value  # doctest: +SKIP
    """

    kinds: ClassVar[tuple[str, ...]] = ("database",)
    supports_incremental: ClassVar[bool] = True
    supports_replace_range: ClassVar[bool] = True
    write_modes: ClassVar[frozenset[str]] = frozenset(
        {"append", "overwrite", "upsert", "sync", "scd2"}
    )
    supports_delete_where: ClassVar[bool] = True
    after_load_actions: ClassVar[frozenset[str]] = frozenset({"delete"})
    source_requires: ClassVar[tuple[tuple[str, ...], ...]] = (("table", "query"),)
    target_requires: ClassVar[tuple[tuple[str, ...], ...]] = (("table",),)
    is_source: ClassVar[bool] = True
    is_target: ClassVar[bool] = True
    Params: ClassVar[type[DatabaseParams]] = DatabaseParams
    config: DatabaseParams

    def __init__(self, params: Mapping[str, Any]):
        super().__init__(params)
        self.settings: ConnectionSettings = connection_settings(self.config)
        self._engine: sa.Engine | None = None

    # --- connection ------------------------------------------------------------------------
    @property
    def backend(self) -> str:
        """``postgresql``, ``mysql`` (MariaDB too), ``sqlite`` or another dialect name."""
        return self.settings.backend

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine, created on first use (no pooling between operations)."""
        if self._engine is None:
            url = self.settings.url
            kwargs: dict[str, Any] = {"connect_args": dict(self.settings.connect_args)}
            memory_sqlite = self.backend == "sqlite" and url.database in (None, "", ":memory:")
            if memory_sqlite:
                kwargs["poolclass"] = StaticPool
                kwargs["connect_args"]["check_same_thread"] = False
            else:
                kwargs["poolclass"] = NullPool
            with self._errors("connecting to"):
                engine = sa.create_engine(url, **kwargs)
            install_session_setup(engine, self.backend)
            self._engine = engine
        return self._engine

    def _write_engine(self) -> sa.Engine:
        """The engine for loads: on SQLite its transactions take the write lock first."""
        if self.backend == "sqlite":
            return self.engine.execution_options(sqlite_immediate=True)
        return self.engine

    def close(self) -> None:
        """Close every connection the engine holds."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    dispose = close

    def describe(self) -> str:
        """The URL with the password masked."""
        return self.settings.masked

    @classmethod
    def prepare_params(cls, params: Mapping[str, Any], *, root: Path, role: str) -> dict[str, Any]:
        """A relative SQLite ``database`` file (or its other names ``dbname``/``db``/``path``) is
        taken from the project root (for a target, its folder is made); ``:memory:``, URLs and
        other systems are left alone."""
        prepared = dict(params)
        system = str(prepared.get("type") or prepared.get("driver") or "")
        if prepared.get("url") or not system.startswith("sqlite"):
            return prepared
        for name in ("database", "dbname", "db", "path"):
            database = prepared.get(name)
            if isinstance(database, str) and database not in ("", ":memory:"):
                path = Path(database).expanduser()
                if not path.is_absolute():
                    path = Path(root) / path
                if role == "target":
                    path.parent.mkdir(parents=True, exist_ok=True)
                prepared[name] = str(path)
        return prepared

    @classmethod
    def asset_kinds(
        cls, type_name: str, params: Mapping[str, Any], file_format: str | None = None
    ) -> set[str]:
        """The database system as Dagster knows its kinds (postgres, mysql, sqlite, ...), from
        ``type``/``driver`` or the URL's scheme; ``sql`` when it is only known at run time."""
        raw = str(params.get("type") or params.get("driver") or params.get("url") or "sql")
        dialect = raw.strip().split(":")[0].split("+")[0]
        if raw.strip().startswith(("${", "enc:")) or not dialect.isidentifier():
            dialect = "sql"
        return {_KIND_ALIASES.get(dialect, dialect)}

    def test_connection(self) -> bool:
        """True when the database accepts a connection and ``SELECT 1``; never raises."""
        try:
            with self.engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
            return True
        except Exception:
            return False

    def connection_problem(self) -> str | None:
        """None when the database accepts a connection and ``SELECT 1``, else the driver's
        reason with the credentials scrubbed."""
        try:
            with self._errors("connecting to"), self.engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
        except ConnectorError as exc:
            return str(exc)
        return None

    @contextmanager
    def _errors(
        self, action: str, table: str | None = None, cls: type[ConnectorError] = ConnectorError
    ) -> Iterator[None]:
        """Turn driver and SQLAlchemy errors into ``cls`` with a secret-free message."""
        try:
            yield
        except NexusError:
            raise
        except Exception as exc:
            detail = describe_exception(exc)
            where = f"table {table!r} in {self.describe()}" if table else self.describe()
            text = f"{action} {where} failed: {detail}"
            if cls is LoadError:
                text += " (the target was left as it was)"
            scrubbed = self.settings.scrub(text)
            kind = _retriable(cls) if is_transient(exc, detail) else cls
            if scrubbed != text or self.settings.scrub(str(exc)) != str(exc):
                raise kind(scrubbed) from None
            raise kind(scrubbed) from exc

    def split_table(self, table: str) -> tuple[str | None, str]:
        """``schema.table`` -> (schema, table); a bare name takes the ``schema`` param."""
        if "." in table:
            schema, _, name = table.rpartition(".")
            return schema, name
        return self.settings.schema, table

    def qualified_name(self, table: str) -> str:
        """The fully qualified name of a table: ``database.schema.table`` (PostgreSQL and other
        servers), ``database.table`` (MySQL/MariaDB, whose databases are schemas),
        ``main.table`` (SQLite, unless the table names another attached schema)."""
        schema, name = self.split_table(table)
        database = self.settings.url.database
        if self.backend == "mysql":
            parts = [schema or database, name]
        elif self.backend == "sqlite":
            parts = [schema or "main", name]
        else:
            default = "public" if self.backend == "postgresql" else None
            parts = [database, schema or default, name]
        return ".".join(str(p) for p in parts if p)

    def table_types_known(self, table: str) -> bool:
        """True when ``table`` is missing (a load creates it) or every column type reflects
        (no type SQLAlchemy cannot name)."""
        schema, name = self.split_table(table)
        with self.engine.connect() as connection:
            if not sa.inspect(connection).has_table(name, schema=schema):
                return True
            reflected = reflect_columns(connection, name, schema)
        return not any(isinstance(c.type, sa.types.NullType) for c in reflected.columns)

    def _missing_table(self, table: str) -> ConnectorError:
        return ConnectorError(f"table {table!r} does not exist in database {self.describe()}")

    # --- read -------------------------------------------------------------------------------
    def read(self, request: ReadRequest) -> Relation:
        """A lazy relation over a table or query, optionally filtered by an incremental cursor.

        The schema is probed now (``LIMIT 0`` / reflection); rows are fetched only while the
        relation is iterated, ``batch_size`` at a time, through a server-side cursor. While
        iterating, ``relation.stats`` holds ``rows_read``, ``batches`` and ``cursor_max`` (the
        largest value of the cursor column seen, i.e. the next cursor value; None until a row
        is seen). ``options["incremental_column"]`` tracks ``cursor_max`` without filtering;
        ``options["assume_timezone"]`` (e.g. ``"UTC"``) reads naive timestamps as that zone.
        With ``request.cdc`` the relation holds the table's changes from PostgreSQL logical
        replication instead (:mod:`~nexus_dagster.connectors.sql.change_capture`).

        Raises:
            SpecError: neither or both of ``table`` and ``query``, or an unknown cursor column.
            ConnectorError: the table does not exist or the database cannot be reached.
        """
        if bool(request.table) == bool(request.query):
            raise SpecError("a database source needs exactly one of 'table' or 'query'")
        if request.cdc is not None:
            return self._read_changes(request)
        batch_size = max(1, int(request.batch_size or 50_000))
        label = request.table or "query"
        with self._errors("reading", request.table), self.engine.connect() as connection:
            columns = self.probe_columns(connection, request)
        names = [c.name for c in columns]
        cursor = request.cursor
        track = cursor.column if cursor else request.options.get("incremental_column")
        if track is not None and track not in names:
            raise SpecError(
                f"incremental column {track!r} is not a column of {label}; columns: {names}"
            )
        zone = request.options.get("assume_timezone")
        fields = [
            pa.field(c.name, pa.timestamp("us", tz=zone))
            if zone and is_naive_timestamp(c.arrow)
            else pa.field(c.name, c.arrow)
            for c in columns
        ]
        schema = pa.schema(fields)
        statement = self.select_statement(request, columns, cursor)
        stats: dict[str, object] = {"rows_read": 0, "batches": 0, "cursor_max": None}
        if track is not None:
            stats["cursor_column"] = track
        track_index = names.index(track) if track is not None else None
        base_schema = pa.schema([pa.field(c.name, c.arrow) for c in columns])

        def open_batches() -> Iterator[pa.RecordBatch]:
            with self._errors("reading", request.table or "(query)"):
                for batch in self._batches(statement, columns, base_schema, batch_size):
                    if zone:
                        batch = assume_timezone(batch, zone)
                    stats["rows_read"] = int(stats["rows_read"]) + batch.num_rows  # type: ignore[arg-type]
                    stats["batches"] = int(stats["batches"]) + 1  # type: ignore[arg-type]
                    if track_index is not None:
                        top = pc.max(batch.column(track_index)).as_py()
                        current = stats["cursor_max"]
                        if top is not None and (current is None or top > current):
                            stats["cursor_max"] = top
                    yield batch

        return Relation(schema, open_batches, name=f"database {label}", stats=stats)

    def _read_changes(self, request: ReadRequest) -> Relation:
        """The table's changes from PostgreSQL logical replication (``cdc: true``; see
        :mod:`~nexus_dagster.connectors.sql.change_capture`)."""
        if self.backend != "postgresql" or not request.table or request.cdc is None:
            raise SpecError("cdc reads a table of a PostgreSQL database (table:, not query:)")
        # on first use: it brings psycopg2 and the pgoutput decoder, which no other read needs
        from nexus_dagster.connectors.sql import change_capture

        schema, name = self.split_table(request.table)
        with self._errors("reading", request.table), self.engine.connect() as connection:
            columns = self.probe_columns(connection, request)
            if schema is None:
                schema = connection.exec_driver_sql("SELECT current_schema()").scalar_one()
        target = change_capture.CaptureTarget(str(schema), name, request.cdc.publication,
                                              request.cdc.slot)  # fmt: skip
        connect_params = {**self.engine.dialect.create_connect_args(self.engine.url)[1],
                          **self.settings.connect_args}  # fmt: skip
        with self._errors("reading", request.table):
            changes = change_capture.change_relation(
                self.engine, connect_params, target, columns, request.state,
                max(1, int(request.batch_size or 50_000)),
            )

        def open_batches() -> Iterator[pa.RecordBatch]:
            with self._errors("reading the changes of", request.table):
                yield from changes

        return Relation(changes.schema, open_batches, changes.name, changes.stats)

    def acknowledge(self, relation: Relation) -> None:
        """Confirm a CDC read's replication slot up to the last change read (every target
        committed it); other reads have nothing to confirm."""
        confirm = relation.stats.get("confirm")
        if confirm is not None:
            from nexus_dagster.connectors.sql import change_capture

            with self._errors("confirming the replication slot of", None):
                change_capture.confirm(self.engine, *confirm)

    def probe_columns(self, connection: sa.Connection, request: ReadRequest) -> list[ColumnInfo]:
        """The result columns of the table or query, from ``LIMIT 0`` or reflection."""
        if request.table:
            schema, name = self.split_table(request.table)
            if not sa.inspect(connection).has_table(name, schema=schema):
                raise self._missing_table(request.table)
            source: sa.FromClause = sa.table(name, schema=schema)
        else:
            source = query_source(request.query or "", [])
        probe = sa.select(sa.literal_column("*")).select_from(source).limit(0)
        if self.backend in ("postgresql", "mysql"):
            sql, params = compile_statement(probe, connection.dialect)
            dbapi_cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                dbapi_cursor.execute(sql, params)
                if self.backend == "postgresql":
                    return [pg_column(d) for d in dbapi_cursor.description]
                fields = getattr(getattr(dbapi_cursor, "_result", None), "fields", None) or []
                return [
                    mysql_column(d, fields[i] if i < len(fields) else None)
                    for i, d in enumerate(dbapi_cursor.description)
                ]
            finally:
                dbapi_cursor.close()
        return self._probe_generic(connection, request)

    def _probe_generic(self, connection: sa.Connection, request: ReadRequest) -> list[ColumnInfo]:
        """SQLAlchemy types by reflection (tables, SQLite query views), else sampled values."""
        typed: list[tuple[str, sa.types.TypeEngine[Any]]]
        if request.table:
            schema, name = self.split_table(request.table)
            table = sa.Table(name, sa.MetaData(), schema=schema, autoload_with=connection)
            typed = [(c.name, c.type) for c in table.columns]
        elif self.backend == "sqlite":
            view = f"nexus_probe_{uuid.uuid4().hex[:12]}"
            quoted = connection.dialect.identifier_preparer.quote(view)
            connection.exec_driver_sql(f"CREATE TEMP VIEW {quoted} AS {strip_query(request.query)}")
            try:
                typed = [
                    (c["name"], c["type"])
                    for c in sa.inspect(connection).get_columns(view, schema="temp")
                ]
            finally:
                connection.exec_driver_sql(f"DROP VIEW temp.{quoted}")
        else:
            result = connection.execute(
                sa.select(sa.literal_column("*"))
                .select_from(query_source(request.query or "", []))
                .limit(0)
            )
            typed = [(name, sa.types.NullType()) for name in result.keys()]  # noqa: SIM118
            result.close()
        infos = [sa_column(n, t) for n, t in typed]
        if any(info is None for info in infos):
            source = self._source(request, [n for n, _ in typed], {})
            sample = connection.execute(sa.select(*source.c).limit(1)).first()
            infos = [
                info if info is not None else infer_column(n, sample[i] if sample else None)
                for i, (info, (n, _)) in enumerate(zip(infos, typed, strict=True))
            ]
        return [i for i in infos if i is not None]

    def _source(
        self, request: ReadRequest, names: Sequence[str], types: Mapping[str, Any]
    ) -> sa.FromClause:
        columns = [sa.column(n, types.get(n)) for n in names]
        if request.table:
            schema, name = self.split_table(request.table)
            return sa.table(name, *columns, schema=schema)
        return query_source(request.query or "", columns)

    def select_statement(
        self, request: ReadRequest, columns: Sequence[ColumnInfo], cursor: Cursor | None
    ) -> sa.Select[Any]:
        """``SELECT cols FROM table|(query) [WHERE cursor >[=] :value]``, typed for SQLAlchemy."""
        types: dict[str, Any] = {}
        if self.backend not in ("postgresql", "mysql"):
            types = {c.name: sa_type_for_read(c) for c in columns}
        source = self._source(request, [c.name for c in columns], types)
        statement = sa.select(*source.c)
        if cursor is not None:
            info = next(c for c in columns if c.name == cursor.column)
            value = sa.bindparam(
                "nexus_cursor",
                coerce_cursor_value(cursor.value, info.arrow),
                type_=types.get(info.name),
            )
            column = source.c[cursor.column]
            upper = None
            if cursor.upper is not None:
                upper = sa.bindparam(
                    "nexus_cursor_upper",
                    coerce_cursor_value(cursor.upper, info.arrow),
                    type_=types.get(info.name),
                )
            if self.backend == "sqlite" and (
                pa.types.is_timestamp(info.arrow) or pa.types.is_date(info.arrow)
            ):
                # SQLite keeps times as text in whatever format was written ("10:00:00",
                # "10:00:00.000000", "T10:00:00+00:00"); compare them as instants, not text.
                column, value = sa.func.julianday(column), sa.func.julianday(value)
                upper = sa.func.julianday(upper) if upper is not None else None
            statement = statement.where(column >= value if cursor.inclusive else column > value)
            if upper is not None:
                statement = statement.where(column < upper)
        return statement

    def _batches(
        self, statement: sa.Select[Any], columns: Sequence[ColumnInfo], schema: pa.Schema,
        batch_size: int,
    ) -> Iterator[pa.RecordBatch]:  # fmt: skip
        """Arrow batches of the statement: COPY (PostgreSQL), bulk text (MySQL), or rows."""
        fast = fast_reader(self.backend, self.engine, columns)
        if fast is not None:
            yield from fast(statement, schema, batch_size)
            return
        fetch = self._fetch_raw if self.backend in ("postgresql", "mysql") else self._fetch_sa
        for rows in fetch(statement, batch_size):
            yield rows_to_batch(rows, columns, schema)

    def _fetch_raw(self, statement: sa.Select[Any], batch_size: int) -> Iterator[Sequence[Any]]:
        """PostgreSQL named cursor / MySQL SSCursor: rows stream, ``batch_size`` at a time."""
        connection = self.engine.connect()
        finished = False
        try:
            sql, params = compile_statement(statement, connection.dialect)
            dbapi = connection.connection.dbapi_connection
            if self.backend == "postgresql":
                dbapi_cursor = dbapi.cursor(name=f"nexus_{uuid.uuid4().hex[:16]}")  # type: ignore[union-attr]
                dbapi_cursor.itersize = batch_size
            else:
                import pymysql.cursors

                dbapi_cursor = dbapi.cursor(pymysql.cursors.SSCursor)  # type: ignore[union-attr]
            dbapi_cursor.execute(sql, params)
            while rows := dbapi_cursor.fetchmany(batch_size):
                yield rows
            dbapi_cursor.close()
            finished = True
        finally:
            if finished or self.backend != "mysql":
                connection.close()
            else:
                # an unfinished MySQL stream would be drained row by row on close: drop it
                connection.invalidate()
                connection.close()

    def _fetch_sa(self, statement: sa.Select[Any], batch_size: int) -> Iterator[Sequence[Any]]:
        """Any dialect: SQLAlchemy streaming with the dialect's result type processing."""
        with self.engine.connect() as connection, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*does \\*not\\* support Decimal")
            result = connection.execution_options(
                stream_results=True, yield_per=batch_size
            ).execute(statement)
            yield from result.partitions(batch_size)

    # --- write ------------------------------------------------------------------------------
    def write(
        self, relation: Relation, request: WriteRequest, *, bulk_load: BulkLoad | None = None
    ) -> LoadResult:
        """Load the relation into ``request.table`` with the requested write mode.

        ``bulk_load`` replaces the bulk step (:meth:`bulk_load`) that moves the rows into the
        table or the staging table, inside the same transaction; a plan that moves rows its
        own way (the PostgreSQL COPY pipe) passes one, and keeps this method's write modes,
        table creation, staging and failure safety.

        ``append`` inserts in one transaction; ``overwrite`` and ``upsert`` bulk-load a
        temporary staging table and then replace (DELETE + INSERT ... SELECT) or merge
        (``ON CONFLICT`` / ``ON DUPLICATE KEY UPDATE``) in that same transaction. A missing
        table is created from the Arrow schema (with a primary key on ``key_columns`` for
        upsert) and dropped again if the load fails, so a failure leaves the target as it was.

        Raises:
            SpecError: an unknown write mode or no table.
            LoadError: key columns missing from the data, data columns missing from the table,
                no unique key for an upsert, or any database error during the load.
        """
        mode = request.write_mode
        if mode not in self.write_modes:
            raise SpecError(
                f"write_mode {mode!r} is not supported; use one of {sorted(self.write_modes)}"
            )
        if not request.table:
            raise SpecError("a database target needs 'table'")
        table_label = request.table
        data_columns = list(relation.schema.names)
        keys = tuple(request.key_columns)
        missing = [k for k in keys if k not in data_columns]
        if missing:
            raise LoadError(
                f"key column(s) {missing} are not in the data loaded into {table_label!r}; "
                f"data columns: {data_columns}"
            )
        if mode in ("upsert", "sync", "scd2") and not keys:
            raise LoadError(f"{mode} into {table_label!r} needs key_columns")
        changes = request.change_column if mode in ("upsert", "sync") else None
        if changes is not None and changes not in data_columns:
            raise LoadError(
                f"the changes loaded into {table_label!r} need their {changes!r} column "
                f"(insert/update/delete), and the data has none; keep {changes} in the "
                f"transformations; data columns: {data_columns}"
            )
        if mode != "append" and mode != "overwrite" and self.backend not in (
            "postgresql", "mysql", "sqlite"
        ):
            raise LoadError(
                f"{mode} is supported on PostgreSQL, MySQL/MariaDB and SQLite, not {self.backend}"
            )
        schema, name = self.split_table(request.table)
        created = False
        table_schema = relation.schema
        if changes is not None:  # the operation column is not the table's
            table_schema = table_schema.remove(table_schema.get_field_index(changes))
        if mode == "scd2":
            for version in scd2.version_fields(request.scd2 or Scd2Options()):
                if version.name not in table_schema.names:
                    table_schema = table_schema.append(version)
        more: dict[str, Any] = {}
        try:
            with self._errors("loading into", table_label, LoadError):
                created = self._ensure_table(table_schema, schema, name, mode, keys)
                with self._write_engine().begin() as connection:
                    replaced = self._delete_range(connection, relation.schema, schema, name,
                                                  request.replace_range)
                    result = self._load(connection, relation, schema, name, mode, keys,
                                        bulk_load or self.bulk_load, request, more)
                    if request.delete_where:
                        target = sa.Table(name, sa.MetaData(), schema=schema,
                                          autoload_with=connection)
                        more["rows_deleted_where"] = retention.delete_where(
                            connection, target, request.delete_where)
        except BaseException:
            if created:
                self._drop_quietly(schema, name)
            raise
        rows, inserted, updated, *unchanged = result
        return LoadResult(
            rows_loaded=rows,
            location=f"{self.describe()} {table_label}",
            rows_inserted=inserted,
            rows_updated=updated,
            extra={"write_mode": mode, "created_table": created,
                   "table_name": self.qualified_name(table_label),
                   "bulk_load": self.bulk_method() if bulk_load is None else "plan's own"}
            | ({"rows_replaced": replaced} if replaced is not None else {})
            | ({"rows_unchanged": unchanged[0]} if unchanged else {})
            | more,
        )

    def after_load(
        self, relation: Relation, request: ReadRequest, action: AfterLoad
    ) -> dict[str, int]:
        """Delete the rows this run read from the source table (``after_load: {delete:
        true}``), in one transaction: by ``action.keys`` when given, else by the read's
        incremental window (:mod:`~nexus_dagster.connectors.sql.source_delete`)."""
        if not request.table:
            raise SpecError("after_load delete on a database source needs table, not query")
        schema, name = self.split_table(request.table)
        with self._errors("deleting the rows read from", request.table, LoadError), \
                self._write_engine().begin() as connection:
            table = sa.Table(name, sa.MetaData(), schema=schema, autoload_with=connection)
            if action.keys is not None:
                deleted = source_delete.delete_keys(connection, table, action.keys,
                                                    self.bulk_load)
            else:
                column = action.window_column or ""
                index = relation.schema.get_field_index(column)
                if index < 0 or column not in table.c:
                    raise LoadError(
                        f"after_load delete: incremental column {column!r} is not a column "
                        f"of {request.table!r}"
                    )
                deleted = source_delete.delete_window(
                    connection, table, request.cursor, action, relation.schema.field(index).type
                )
        return {"rows_deleted": deleted}

    def _delete_range(
        self, connection: sa.Connection, data: pa.Schema, schema: str | None, name: str,
        window: tuple[str, Any, Any] | None,
    ) -> int | None:  # fmt: skip
        """DELETE the rows with ``start <= column < end`` (a partition), inside the load's
        transaction; returns how many were deleted, None without a window."""
        if window is None:
            return None
        column, start, end = window
        index = data.get_field_index(column)
        target = sa.Table(name, sa.MetaData(), schema=schema, autoload_with=connection)
        if index < 0 or column not in target.c:
            raise LoadError(
                f"partition column {column!r} must be in the data and in table {name!r} "
                f"({self.describe()})"
            )
        arrow = data.field(index).type
        col = target.c[column]
        result = connection.execute(sa.delete(target).where(
            col >= sa.bindparam("nexus_lo", coerce_cursor_value(start, arrow), type_=col.type),
            col < sa.bindparam("nexus_hi", coerce_cursor_value(end, arrow), type_=col.type),
        ))
        return int(result.rowcount or 0)

    def _ensure_table(
        self, schema_arrow: pa.Schema, schema: str | None, name: str, mode: str,
        keys: tuple[str, ...],
    ) -> bool:  # fmt: skip
        """Create the table from the Arrow schema when missing; True when it was created."""
        with self._write_engine().begin() as connection:
            if sa.inspect(connection).has_table(name, schema=schema):
                return False
            primary = set(keys) if mode in ("upsert", "sync") else set()
            columns = [
                sa.Column(
                    f.name,
                    sa_type_for(f.type, self.backend, key=f.name in primary),
                    primary_key=f.name in primary,
                    nullable=f.name not in primary,
                    autoincrement=False,
                )
                for f in schema_arrow
            ]
            options = {"mysql_charset": "utf8mb4"} if self.backend == "mysql" else {}
            sa.Table(name, sa.MetaData(), *columns, schema=schema, **options).create(connection)
        return True

    def _drop_quietly(self, schema: str | None, name: str) -> None:
        try:
            with self._write_engine().begin() as connection:
                sa.Table(name, sa.MetaData(), schema=schema).drop(connection, checkfirst=True)
        except Exception:
            pass

    def _load(
        self, connection: sa.Connection, relation: Relation, schema: str | None, name: str,
        mode: str, keys: tuple[str, ...], bulk: BulkLoad, request: WriteRequest,
        more: dict[str, Any],
    ) -> tuple[int, int | None, int | None]:  # fmt: skip
        """Move the rows in (directly, or through a staging table merged per ``mode``); counts
        beyond (rows, inserted, updated[, unchanged]) go into ``more``."""
        label = f"{schema}.{name}" if schema else name
        target = reflect_columns(connection, name, schema)
        changes = request.change_column if mode in ("upsert", "sync") else None
        columns = [c for c in relation.schema.names if c != changes]
        unknown = [c for c in columns if c not in target.c]
        if unknown:
            raise LoadError(
                f"column(s) {unknown} of the data do not exist in table {label!r} "
                f"({self.describe()}); table columns: {list(target.c.keys())}"
            )
        if mode in ("upsert", "sync"):
            self._check_unique_key(connection, schema, name, keys, label)
        batches = (normalize_for_write(batch) for batch in relation)
        if mode == "append":
            rows = bulk(connection, target, columns, batches)
            return rows, rows, 0
        if changes is not None:  # a change stream: deletes by key now, the rest merged below
            staging, rows, more["changes_read"], more["rows_deleted"] = (
                change_apply.stage_changes(connection, target, columns, keys, batches, changes,
                                           bulk, label)
            )  # fmt: skip
        else:
            staging = self._create_staging(connection, target, columns)
            rows = bulk(connection, staging, columns, batches)
        if mode == "overwrite":
            connection.execute(sa.delete(target))
            connection.execute(
                sa.insert(target).from_select(columns, sa.select(*[staging.c[c] for c in columns]))
            )
            return rows, rows, 0
        if mode == "scd2":
            counts = scd2.merge(connection, target, staging, columns, keys, rows,
                                request.scd2 or Scd2Options(), self.backend, label,
                                request.max_delete_fraction)
            more.update(rows_closed=counts.closed, rows_closed_missing=counts.closed_missing)
            return rows, counts.inserted, None, counts.unchanged  # type: ignore[return-value]
        if mode == "sync" and changes is None:
            more["rows_deleted"] = sync.delete_missing(connection, target, staging, keys,
                                                       request.max_delete_fraction, label)
        if self.backend == "postgresql":  # unique staged keys: one counting statement
            merged = pg_upsert.merge(connection, target, staging, columns, keys, rows)
            if merged is not None:
                return merged  # type: ignore[return-value]
        matched = connection.execute(
            sa.select(sa.func.count())
            .select_from(staging)
            .join(target, sa.and_(*[staging.c[k] == target.c[k] for k in keys]))
        ).scalar_one()
        others = [c for c in columns if c not in keys]

        def exact(column: Any) -> Any:  # MySQL collations compare 'b' = 'B': compare bytes
            if self.backend != "mysql":
                return column
            from sqlalchemy.dialects import mysql as mysql_dialect

            return sa.cast(column, mysql_dialect.BINARY())

        same = connection.execute(
            sa.select(sa.func.count())
            .select_from(staging)
            .join(target, sa.and_(*[staging.c[k] == target.c[k] for k in keys],
                                  *[exact(staging.c[c]).is_not_distinct_from(exact(target.c[c]))
                                    for c in others]))
        ).scalar_one() if others else matched
        connection.execute(self._merge(target, staging, columns, keys))
        return rows, rows - int(matched), int(matched) - int(same), int(same)  # type: ignore[return-value]

    def _check_unique_key(
        self, connection: sa.Connection, schema: str | None, name: str, keys: tuple[str, ...],
        label: str,
    ) -> None:  # fmt: skip
        inspector = sa.inspect(connection)
        candidates = [inspector.get_pk_constraint(name, schema=schema).get("constrained_columns")]
        candidates += [u["column_names"] for u in inspector.get_unique_constraints(name, schema)]
        candidates += [
            i["column_names"] for i in inspector.get_indexes(name, schema) if i["unique"]
        ]
        if not any(c and set(c) == set(keys) for c in candidates):
            cols = ", ".join(keys)
            raise LoadError(
                f"upsert into table {label!r} ({self.describe()}) needs a primary key or unique "
                f"constraint on ({cols}), and the table has none; add one, e.g. "
                f"ALTER TABLE {label} ADD PRIMARY KEY ({cols})"
            )

    def _create_staging(
        self, connection: sa.Connection, target: sa.Table, columns: Sequence[str]
    ) -> sa.Table:
        """A temporary table with the target's column types (no constraints), same session."""
        name = f"nexus_stg_{uuid.uuid4().hex[:12]}"
        select = sa.select(*[target.c[c] for c in columns]).where(sa.false())
        connection.execute(sa.CreateTableAs(select, name, temporary=True))
        return sa.Table(name, sa.MetaData(), *[sa.Column(c, target.c[c].type) for c in columns])

    def bulk_method(self) -> str:
        """How :meth:`bulk_load` moves rows on this backend (recorded as ``nexus/bulk_load``).

        MySQL/MariaDB fall back to multi-row INSERTs, with a warning in the run's log, when the
        server refuses LOAD DATA LOCAL INFILE."""
        methods = {"postgresql": "COPY FROM STDIN", "mysql": "LOAD DATA LOCAL INFILE"}
        return methods.get(self.backend, "INSERT")

    def bulk_load(
        self, connection: sa.Connection, table: sa.Table, columns: Sequence[str],
        batches: Iterator[pa.RecordBatch],
    ) -> int:  # fmt: skip
        """Move ``batches`` into ``table`` (``columns`` of it) inside the open transaction of
        ``connection``: COPY on PostgreSQL, LOAD DATA LOCAL on MySQL/MariaDB, batched INSERTs
        elsewhere. Returns the rows loaded."""
        preparer = connection.dialect.identifier_preparer
        table_sql = preparer.format_table(table)
        columns_sql = [preparer.quote(c) for c in columns]
        dbapi = connection.connection.dbapi_connection
        if self.backend == "postgresql":
            return load.pg_copy(dbapi, table_sql, columns_sql, batches)
        if self.backend == "mysql":
            return mysql_load.load(dbapi, table_sql, columns_sql, batches)
        subset = sa.Table(
            table.name, sa.MetaData(), *[sa.Column(c, table.c[c].type) for c in columns],
            schema=table.schema,
        )  # fmt: skip
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*does \\*not\\* support Decimal")
            return load.sa_insert(connection, subset, batches)

    def _merge(
        self, target: sa.Table, staging: sa.Table, columns: Sequence[str], keys: Sequence[str]
    ) -> sa.Executable:
        """INSERT ... SELECT FROM staging with the dialect's upsert clause; last row wins."""
        others = [c for c in columns if c not in keys]
        source = sa.select(*[staging.c[c] for c in columns])
        if self.backend == "postgresql":
            # ON CONFLICT cannot touch a row twice: keep the last staged row per key
            source = source.ext(pg_dialect.distinct_on(*[staging.c[k] for k in keys])).order_by(
                *[staging.c[k] for k in keys], sa.literal_column("ctid").desc()
            )
            statement = pg_dialect.insert(target).from_select(columns, source)
            if others:
                return statement.on_conflict_do_update(
                    index_elements=list(keys), set_={c: statement.excluded[c] for c in others}
                )
            return statement.on_conflict_do_nothing(index_elements=list(keys))
        if self.backend == "mysql":
            from sqlalchemy.dialects import mysql as mysql_dialect

            statement = mysql_dialect.insert(target).from_select(columns, source)
            update = others or [keys[0]]
            return statement.on_duplicate_key_update({c: statement.inserted[c] for c in update})
        statement = sqlite_dialect.insert(target).from_select(columns, source.where(sa.true()))
        if others:
            return statement.on_conflict_do_update(
                index_elements=list(keys), set_={c: statement.excluded[c] for c in others}
            )
        return statement.on_conflict_do_nothing(index_elements=list(keys))


def reflect_columns(connection: sa.Connection, name: str, schema: str | None) -> sa.Table:
    """A table's columns with their reflected types, nothing else: what a load reads from the
    table (names and types). Full reflection also reads keys, indexes, constraints and
    comments (PostgreSQL: seven catalog queries, ~4x the time on a run's first reflection).

    Raises:
        sqlalchemy.exc.NoSuchTableError: the table does not exist.
    """
    columns = sa.inspect(connection).get_columns(name, schema=schema)
    return sa.Table(
        name, sa.MetaData(), *[sa.Column(c["name"], c["type"]) for c in columns], schema=schema
    )
