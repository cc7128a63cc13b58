"""The PostgreSQL COPY pipe plan: a PostgreSQL -> PostgreSQL job whose transformations compile
to the same SQL in PostgreSQL and DuckDB runs as one ``COPY (SELECT ...) TO STDOUT (FORMAT
binary)`` piped into ``COPY ... FROM STDIN (FORMAT binary)``, with no row decoded in Python.

The steps are compiled with the transformation engine's public SQL builder
(:class:`~nexus_dagster.transforms.sql_builder.SqlBuilder`) in the source's dialect (values
bound, identifiers quoted), over the source's table or query and its incremental cursor. Only
steps the step table marks portable are pushed
(:func:`~nexus_dagster.transforms.portable.portable_steps`); the result columns are cast to the
target table's column types, which are the ones the general path creates (its output schema is
computed by running the transformation engine on no rows). Write modes, table creation, staging
and failure safety are the :class:`~nexus_dagster.connectors.database.DatabaseConnector`'s own:
only its bulk step is replaced by the pipe (its public ``bulk_load`` hook).

Anything else (other systems, several sources or targets, a target reading another step than
the last (``input``), other steps, partition runs, sensor
file runs, source options, column types whose text form differs between the paths) is left to
the next plan. ``NEXUS_PUSHDOWN=0`` turns this plan off.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from nexus_dagster import secrets
from nexus_dagster.connectors.base import LoadResult, ReadRequest
from nexus_dagster.connectors.database import DatabaseConnector
from nexus_dagster.connectors.sql import pg_copy
from nexus_dagster.connectors.sql.session import compile_statement
from nexus_dagster.connectors.sql.types import UNCONSTRAINED_DECIMAL, ColumnInfo
from nexus_dagster.relation import Relation
from nexus_dagster.run.cursors import RowCounter, next_cursor, start_cursor
from nexus_dagster.run.endpoints import write_request
from nexus_dagster.run.events import Event, SourceExtracted, TargetLoaded
from nexus_dagster.run.plan import RunContext
from nexus_dagster.run.progress import Progress
from nexus_dagster.spec.models import Transformation
from nexus_dagster.switches import switched_on
from nexus_dagster.transforms.expressions import sqlalchemy_type
from nexus_dagster.transforms.portable import portable_steps
from nexus_dagster.transforms.sql_builder import SqlBuilder
from nexus_dagster.transforms.steps import step_kind

__all__ = ["ENV_SWITCH", "PLAN_NAME", "PUSHABLE_OIDS", "PgPipePlan", "enabled", "plan", "render"]

ENV_SWITCH = "NEXUS_PUSHDOWN"
#: what a target loaded by this plan records as ``nexus/plan``
PLAN_NAME = "pg_copy_pipe"

#: PostgreSQL type OIDs whose values take the same path through both ways of running a job:
#: bool, int2/4/8, float4/8, text, varchar, date, timestamp, timestamptz, numeric(p, s)
PUSHABLE_OIDS = frozenset({16, 20, 21, 23, 700, 701, 25, 1043, 1082, 1114, 1184, 1700})


def enabled() -> bool:
    """False when ``NEXUS_PUSHDOWN`` is ``0``/``false``/``no``/``off``."""
    return switched_on(ENV_SWITCH)


def render(dbapi: Any, dialect: sa.Dialect, statement: sa.Select[Any]) -> str:
    """The statement as SQL text with its values quoted by the driver (COPY takes none), on
    an open psycopg2 connection (nothing is sent to the server)."""
    sql, params = compile_statement(statement, dialect)
    with dbapi.cursor() as cursor:
        return cursor.mogrify(sql, params).decode()


class PgPipePlan:
    """One PostgreSQL source piped into one PostgreSQL target; yields the general path's
    events.

    ``session`` is the source connection the planner probed on (a SQLAlchemy pool's raw
    connection, outside any transaction): the SQL is rendered and the COPY runs on it, so
    the source is connected to once per run; :meth:`run` closes it.
    """

    def __init__(
        self, context: RunContext, source: DatabaseConnector, target: DatabaseConnector,
        relation: Relation, statement: sa.Select[Any], steps: list[Transformation],
        out_schema: pa.Schema, session: Any,
    ):  # fmt: skip
        self.context = context
        self.source = source
        self.session = session
        self.target = target
        self.relation = relation
        self.statement = statement
        self.steps = steps
        self.out_schema = out_schema
        self.copied: pg_copy.PipeResult | None = None
        self.progress: Progress | None = None

    def bulk_load(
        self, connection: sa.Connection, table: sa.Table, columns: Sequence[str],
        batches: Iterator[pa.RecordBatch],
    ) -> int:  # fmt: skip
        """The target's bulk step: the binary COPY pipe from the source (``batches`` unused)."""
        preparer = connection.dialect.identifier_preparer
        copy_in = (
            f"COPY {preparer.format_table(table)} ({', '.join(preparer.quote(c) for c in columns)})"
            " FROM STDIN (FORMAT binary)"
        )
        self.copied = pg_copy.pipe(
            self.source.engine, self._source_sql(table, columns),
            connection.connection.dbapi_connection, copy_in, self._stats_sql(),
            on_read=self.progress.add_bytes if self.progress else None,
            source_dbapi=self.session.dbapi_connection,
        )  # fmt: skip
        return self.copied.rows

    def _source_sql(self, table: sa.Table, columns: Sequence[str]) -> str:
        """The source SELECT with the steps applied, each column cast to the table's type."""
        base = self.statement.subquery("nexus_src")
        typed = sa.select(*[
            sa.type_coerce(base.c[f.name], sqlalchemy_type(f.type)).label(f.name)
            for f in self.relation.schema
        ]).subquery("nexus_typed")
        name = self.context.spec.job.sources[0].name  # steps may read it by name (input)
        built = SqlBuilder({name: typed}, [name]).build(self.steps)
        out = built.subquery("nexus_out")
        final = sa.select(*[sa.cast(out.c[c], table.c[c].type).label(c) for c in columns])
        return render(self.session.dbapi_connection, self.source.engine.dialect, final)

    def _stats_sql(self) -> str | None:
        """``SELECT count(*)[, max(cursor)]`` over the (cursor-filtered) source, or None when
        no step has a condition and there is no cursor: then the rows copied are the rows
        extracted, and a second scan of the source would only repeat that count."""
        column = self.context.spec.job.sources[0].incremental_column
        if column is None and not any(
            expression.output is None
            for step in self.steps
            for expression in step_kind(step).expressions(step.config)
        ):
            return None
        base = self.statement.subquery("nexus_src")
        items: list[Any] = [sa.func.count()]
        if column is not None:
            items.append(sa.func.max(base.c[column]))
        return render(self.session.dbapi_connection, self.source.engine.dialect,
                      sa.select(*items).select_from(base))

    def run(self) -> Iterator[Event]:
        """Load the target, then report the source (same events as the general path)."""
        context = self.context
        job = context.spec.job
        source_spec, target_spec = job.sources[0], job.targets[0]
        stored = context.stored_cursors.get(source_spec.name)
        try:
            if context.log:
                context.log.info(secrets.mask(
                    f"pushdown: {source_spec.name} -> {target_spec.name} as one binary COPY "
                    f"pipe ({self.source.describe()} -> {self.target.describe()})"
                ))
            request = write_request(target_spec, self.target, context.spec.root,
                                    run_id=context.run_id,
                                    idempotency_scope=context.idempotency_scope)
            # the relation's batches are never read: the pipe moves the rows
            empty = Relation.from_batches(self.out_schema, [], name="pushdown")
            self.progress = Progress(context.log, f"load {target_spec.name}")
            loaded: LoadResult = self.target.write(empty, request, bulk_load=self.bulk_load)
            self.progress.finish()
            loaded.extra["rows_per_second"] = self.progress.rows_per_second(loaded.rows_loaded)
            extracted = self.copied.source_rows if self.copied else 0
            loaded.extra["pushdown"] = True
            loaded.extra["plan"] = PLAN_NAME
            loaded.extra["bulk_load"] = "COPY binary pipe"
            yield TargetLoaded(
                target=target_spec,
                result=loaded,
                schema=self.out_schema,
                rows_extracted=extracted,
                rows_transformed=loaded.rows_loaded,
                source_schemas={source_spec.name: self.relation.schema},
            )
            self.source.acknowledge(self.relation)
            counter = RowCounter(self.relation, source_spec.incremental_column)
            counter.see(extracted, self.copied.cursor_max if self.copied else None)
            yield SourceExtracted(
                source=source_spec,
                rows=extracted,
                schema=self.relation.schema,
                cursor_before=stored,
                cursor_after=next_cursor(source_spec, counter, stored),
                state=None,
            )
        finally:
            _close(self.session, self.target, self.source)


def _close(*opened: Any) -> None:
    """Close connectors and connections, ignoring errors (what the run raised matters)."""
    for item in opened:
        with contextlib.suppress(Exception):
            item.close()


def plan(context: RunContext) -> PgPipePlan | None:
    """A pipe plan for the job, or None when it must take another path.

    Deciding costs two connections to the source (the read's probe, then the session the
    plan keeps for its own probe, the SQL and the COPY) and one to the target (its column
    types); no data is read or written.
    Any problem while deciding (an unknown column, a server down) returns None, so that the
    general path reports it with its usual message.
    """
    job = context.spec.job
    if context.window is not None or context.source_files or not enabled():
        return None
    if context.staged:  # the load step of a split job reads staged Parquet, not the database
        return None
    if len(job.sources) != 1 or len(job.targets) != 1:
        return None
    steps = job.ordered_transformations()
    if job.targets[0].input not in (None, steps[-1].name if steps else None):
        return None  # the target writes an earlier step's result or the raw rows
    source_spec, target_spec = job.sources[0], job.targets[0]
    if source_spec.source_type != "database" or target_spec.target_type != "database":
        return None
    if source_spec.options or target_spec.options or not target_spec.table:
        return None
    if source_spec.after_load is not None:  # deleting what was read needs the rows' keys
        return None
    if source_spec.cdc:  # changes come from logical replication, not a query
        return None
    if job.rules:  # row rules split (or gate) the rows before any target is written
        return None
    opened: list[Any] = []
    try:
        source = context.open(source_spec)
        opened.append(source)
        target = context.open(target_spec)
        opened.append(target)
        if not (
            type(source) is DatabaseConnector
            and type(target) is DatabaseConnector
            and source.backend == "postgresql"
            and target.backend == "postgresql"
        ):
            return _close(*opened)
        cursor = start_cursor(source_spec, context.stored_cursors.get(source_spec.name))
        request = ReadRequest(table=source_spec.table, query=source_spec.query,
                              batch_size=source_spec.batch_size, cursor=cursor)  # fmt: skip
        relation = source.read(request)  # probes the columns once (no options: exact types)
        columns = [ColumnInfo(f.name, f.type) for f in relation.schema]
        session = source.engine.raw_connection()
        opened.append(session)
        oids = pg_copy.result_oids(session.dbapi_connection, source.engine.dialect,
                                   source.select_statement(request, columns, None))
        if not set(oids) <= PUSHABLE_OIDS:
            return _close(*opened)
        if any(f.type == UNCONSTRAINED_DECIMAL for f in relation.schema):
            return _close(*opened)
        if steps:
            from nexus_dagster.transforms.chain import apply_transformations

            # Table.from_batches, not Schema.empty_table (that one imports pandas: ~0.3 s)
            no_rows = pa.Table.from_batches([], schema=relation.schema)
            empty = Relation.from_table(no_rows, name=source_spec.name)
            out_schema = apply_transformations({source_spec.name: empty}, steps).schema
        else:
            out_schema = relation.schema
        if not portable_steps(steps, relation.schema, out_schema):
            return _close(*opened)
        if not target.table_types_known(target_spec.table):
            return _close(*opened)
        statement = source.select_statement(request, columns, cursor)
        return PgPipePlan(context, source, target, relation, statement, steps, out_schema,
                          session)
    except Exception:
        return _close(*opened)
