"""The pushdown fast path: a PostgreSQL -> PostgreSQL job whose transformations are filters and
maps runs as one ``COPY (SELECT ...) TO STDOUT (FORMAT binary)`` piped into ``COPY ... FROM
STDIN (FORMAT binary)``, with no row ever decoded in Python.

The filters and maps are compiled with the same SQLAlchemy builder the DuckDB engine uses, in
the source's dialect (values bound, identifiers quoted), over the source's table or query and
its incremental cursor. Only expressions whose meaning is the same in PostgreSQL and DuckDB are
pushed (see :func:`portable_expression`); the result columns are cast to the target table's
column types, which are the ones the general path creates (its output schema is computed by
running the transformation engine on no rows). Write modes, table creation, staging and
failure safety are the :class:`~nexus_dagster.connectors.database.DatabaseConnector`'s own:
only its bulk step is replaced by the pipe.

Anything else (other systems, several sources or targets, other transformations, partition
runs, source options, column types whose text form differs between the paths) takes the
general path. ``NEXUS_PUSHDOWN=0`` turns the fast path off.

Example:
    >>> from nexus_dagster import pushdown
    >>> plan = pushdown.plan(spec, connections, stored_cursors={})  # doctest: +SKIP
    >>> events = list(plan.run(run_id="r1")) if plan else None  # doctest: +SKIP
"""

from __future__ import annotations

import ast
import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from nexus_dagster import secrets
from nexus_dagster.connectors.base import Cursor, LoadResult, ReadRequest, WriteRequest
from nexus_dagster.connectors.database import DatabaseConnector
from nexus_dagster.connectors.sql import pg_copy
from nexus_dagster.connectors.sql.session import compile_statement
from nexus_dagster.connectors.sql.types import UNCONSTRAINED_DECIMAL
from nexus_dagster.relation import Relation
from nexus_dagster.spec.loader import JobSpec
from nexus_dagster.spec.models import FilterConfig, MapConfig, Transformation
from nexus_dagster.transforms.expressions import sqlalchemy_type

ENV_SWITCH = "NEXUS_PUSHDOWN"

#: PostgreSQL type OIDs whose values take the same path through both ways of running a job:
#: bool, int2/4/8, float4/8, text, varchar, date, timestamp, timestamptz, numeric(p, s)
PUSHABLE_OIDS = frozenset({16, 20, 21, 23, 700, 701, 25, 1043, 1082, 1114, 1184, 1700})

_NUMERIC = {"int", "decimal", "float"}
_COMPARE_ORDER = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)


def enabled() -> bool:
    """False when ``NEXUS_PUSHDOWN`` is ``0``/``false``/``no``/``off``."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in {"0", "false", "no", "off"}


# ------------------------------------------------------------------------- expression check
def _kind(arrow_type: pa.DataType) -> str:
    if pa.types.is_boolean(arrow_type):
        return "bool"
    if pa.types.is_integer(arrow_type):
        return "int"
    if pa.types.is_decimal(arrow_type):
        return "decimal"
    if pa.types.is_floating(arrow_type):
        return "float"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "string"
    if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type):
        return "time"
    return "other"


def portable_expression(text: str, kinds: Mapping[str, str]) -> str | None:
    """The kind of an expression's value when PostgreSQL and DuckDB agree on its meaning,
    else None.

    Allowed: columns, int/str/bool/None literals, ``and``/``or``/``not``, comparisons (ordering
    ones on numbers and on two date/time columns only: string order depends on collations),
    ``in``/``not in`` literal lists, null tests, ``+``/``-``/``*`` on numbers, ``+`` on
    strings, unary minus, ``a if c else b``, ``abs`` and ``coalesce``. Float literals and
    division are left to DuckDB (binding and rounding differ).

    Args:
        text: the spec's expression.
        kinds: column name -> ``int``/``decimal``/``float``/``string``/``bool``/``time``/``other``.
    """
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        return None
    try:
        return _check(tree.body, kinds)
    except _NotPortable:
        return None


class _NotPortable(Exception):
    pass


def _check(node: ast.AST, kinds: Mapping[str, str]) -> str:
    if isinstance(node, ast.Name):
        kind = kinds.get(node.id)
        if kind is None or kind == "other":
            raise _NotPortable
        return kind
    if isinstance(node, ast.Constant):
        value = node.value
        if value is None:
            return "null"
        if isinstance(value, bool):
            return "bool"
        if isinstance(value, int):
            return "int"
        if isinstance(value, str):
            return "string"
        raise _NotPortable
    if isinstance(node, ast.BoolOp):
        for value in node.values:
            _check(value, kinds)
        return "bool"
    if isinstance(node, ast.UnaryOp):
        kind = _check(node.operand, kinds)
        if isinstance(node.op, ast.Not | ast.Invert):
            return "bool"
        if isinstance(node.op, ast.USub) and kind in _NUMERIC:
            return kind
        raise _NotPortable
    if isinstance(node, ast.Compare):
        return _compare(node, kinds)
    if isinstance(node, ast.BinOp):
        left, right = _check(node.left, kinds), _check(node.right, kinds)
        if isinstance(node.op, ast.Add) and left == right == "string":
            return "string"
        if isinstance(node.op, ast.Add | ast.Sub | ast.Mult) and {left, right} <= _NUMERIC:
            if "float" in (left, right):
                return "float"
            return "decimal" if "decimal" in (left, right) else "int"
        raise _NotPortable
    if isinstance(node, ast.IfExp):
        _check(node.test, kinds)
        body, other = _check(node.body, kinds), _check(node.orelse, kinds)
        if body == other or other == "null":
            return body
        if body == "null":
            return other
        raise _NotPortable
    if isinstance(node, ast.Call) and not node.keywords:
        if isinstance(node.func, ast.Attribute) and not node.args:
            if node.func.attr in ("isnull", "isna", "notnull", "notna"):
                _check(node.func.value, kinds)
                return "bool"
            raise _NotPortable
        if isinstance(node.func, ast.Name) and node.func.id in ("abs", "coalesce"):
            args = [_check(a, kinds) for a in node.args]
            real = [a for a in args if a != "null"]
            if not real or len(set(real)) != 1:
                raise _NotPortable
            if node.func.id == "abs" and (len(args) != 1 or real[0] not in _NUMERIC):
                raise _NotPortable
            return real[0]
    raise _NotPortable


def _compare(node: ast.Compare, kinds: Mapping[str, str]) -> str:
    left_node = node.left
    for op, right_node in zip(node.ops, node.comparators, strict=True):
        left = _check(left_node, kinds)
        if isinstance(op, ast.In | ast.NotIn):
            if not isinstance(right_node, ast.List | ast.Tuple):
                raise _NotPortable
            items = {_check(item, kinds) for item in right_node.elts} - {"null"}
            if not items <= ({left} if left != "null" else set()) | (
                _NUMERIC - {"float"} if left in _NUMERIC else set()
            ):
                raise _NotPortable
        else:
            right = _check(right_node, kinds)
            if isinstance(op, ast.Is | ast.IsNot):
                if right != "null":
                    raise _NotPortable
            elif isinstance(op, _COMPARE_ORDER):
                both_time = left == right == "time" and not isinstance(
                    left_node, ast.Constant
                ) and not isinstance(right_node, ast.Constant)
                if not ({left, right} <= _NUMERIC or both_time):
                    raise _NotPortable
            elif "null" not in (left, right) and left != right and not (
                {left, right} <= _NUMERIC
            ):
                raise _NotPortable
        left_node = right_node
    return "bool"


def portable_steps(steps: Sequence[Transformation], schema: pa.Schema, out: pa.Schema) -> bool:
    """True when every step is a filter or map whose expressions are portable."""
    kinds = {f.name: _kind(f.type) for f in schema}
    for step in steps:
        config = step.config
        if isinstance(config, FilterConfig):
            if portable_expression(config.condition, kinds) is None:
                return False
        elif isinstance(config, MapConfig):
            for name, text in config.mappings.items():
                if portable_expression(text, kinds) is None:
                    return False
                index = out.get_field_index(name)
                kinds[name] = _kind(out.field(index).type) if index >= 0 else "other"
        else:
            return False
    return True


# ------------------------------------------------------------------------- the plan
@dataclass
class _Source:
    connector: DatabaseConnector
    request: ReadRequest
    relation: Relation
    statement: sa.Select[Any]
    #: the incremental column whose max the run reports, if any
    track: str | None = None


class _PipeTarget(DatabaseConnector):
    """A PostgreSQL target whose bulk step is the binary COPY pipe from ``source``."""

    source: _Source
    steps: list[Transformation]
    copied: pg_copy.PipeResult | None = None

    def _bulk(
        self, connection: sa.Connection, table: sa.Table, columns: Sequence[str],
        batches: Iterator[pa.RecordBatch],
    ) -> int:  # fmt: skip
        select_sql = self._source_sql(table, columns)
        preparer = connection.dialect.identifier_preparer
        copy_in = (
            f"COPY {preparer.format_table(table)} ({', '.join(preparer.quote(c) for c in columns)})"
            " FROM STDIN (FORMAT binary)"
        )
        stats_sql = self._stats_sql()
        result = pg_copy.pipe(
            self.source.connector.engine, select_sql, connection.connection.dbapi_connection,
            copy_in, stats_sql,
        )  # fmt: skip
        self.copied = result
        return result.rows

    def _source_sql(self, table: sa.Table, columns: Sequence[str]) -> str:
        """The source SELECT with the steps applied, each column cast to the table's type."""
        from nexus_dagster.transforms.engine import _Builder

        base = self.source.statement.subquery("nexus_src")
        schema = self.source.relation.schema
        typed = sa.select(
            *[sa.type_coerce(base.c[f.name], sqlalchemy_type(f.type)).label(f.name) for f in schema]
        ).subquery("nexus_typed")
        built = _Builder(None, {"src": typed}, ["src"], None, False).build(self.steps)  # type: ignore[arg-type]
        out = built.subquery("nexus_out")
        final = sa.select(*[sa.cast(out.c[c], table.c[c].type).label(c) for c in columns])
        return render(self.source.connector, final)

    def _stats_sql(self) -> str:
        """``SELECT count(*)[, max(cursor)]`` over the (cursor-filtered) source."""
        base = self.source.statement.subquery("nexus_src")
        column = self.source.track
        items: list[Any] = [sa.func.count()]
        if column is not None:
            items.append(sa.func.max(base.c[column]))
        return render(self.source.connector, sa.select(*items).select_from(base))


class Plan:
    """A job that runs as a pushdown; :meth:`run` yields the runner's events."""

    def __init__(self, spec: JobSpec, source: _Source, target: _PipeTarget,
                 out_schema: pa.Schema, stored: Mapping[str, Any] | None, log: Any):  # fmt: skip
        self.spec = spec
        self.source = source
        self.target = target
        self.out_schema = out_schema
        self.stored = stored
        self.log = log

    def run(self, run_id: str | None = None) -> Iterator[Any]:
        """Load the target, then report the source (same events as the general path)."""
        from nexus_dagster.runner import SourceExtracted, TargetLoaded, _Counter, _next_cursor

        job = self.spec.job
        source_spec, target_spec = job.sources[0], job.targets[0]
        try:
            if self.log:
                self.log.info(secrets.mask(
                    f"pushdown: {source_spec.name} -> {target_spec.name} as one binary COPY "
                    f"pipe ({self.source.connector.describe()} -> {self.target.describe()})"
                ))
            request = WriteRequest(
                table=target_spec.table,
                write_mode=target_spec.write_mode.value,
                key_columns=tuple(target_spec.key_columns),
                options=target_spec.options,
                batch_size=target_spec.batch_size,
                run_id=run_id,
            )
            # the relation's batches are never read: the pipe moves the rows
            relation = Relation.from_batches(self.out_schema, [], name="pushdown")
            loaded: LoadResult = self.target.write(relation, request)
            copied = self.target.copied
            extracted = copied.source_rows if copied else 0
            loaded.extra["pushdown"] = True
            yield TargetLoaded(
                target=target_spec,
                result=loaded,
                schema=self.out_schema,
                rows_extracted=extracted,
                rows_transformed=loaded.rows_loaded,
                source_schemas={source_spec.name: self.source.relation.schema},
            )
            self.source.connector.acknowledge(self.source.relation)
            counter = _Counter(self.source.relation, source_spec.incremental_column)
            counter.rows = extracted
            counter.cursor_max = copied.cursor_max if copied else None
            yield SourceExtracted(
                source=source_spec,
                rows=extracted,
                schema=self.source.relation.schema,
                cursor_before=self.stored,
                cursor_after=_next_cursor(source_spec, counter, self.stored),
                state=None,
            )
        finally:
            self.close()

    def close(self) -> None:
        """Release both connectors."""
        for connector in (self.target, self.source.connector):
            with contextlib.suppress(Exception):
                connector.close()


def plan(
    spec: JobSpec,
    connections: Any,
    stored_cursors: Mapping[str, Mapping[str, Any] | None] | None = None,
    log: Any = None,
) -> Plan | None:
    """A pushdown plan for the job, or None when it must take the general path.

    Deciding costs a connection to each database (schema probes); no data is read or written.
    Any problem while deciding (an unknown column, a server down) returns None, so that the
    general path reports it with its usual message.
    """
    from nexus_dagster.runner import make_connector, start_cursor
    from nexus_dagster.transforms.engine import apply_transformations

    job = spec.job
    if not enabled() or len(job.sources) != 1 or len(job.targets) != 1:
        return None
    source_spec, target_spec = job.sources[0], job.targets[0]
    if source_spec.source_type.value != "database" or target_spec.target_type.value != "database":
        return None
    if source_spec.options or target_spec.options or not target_spec.table:
        return None
    steps = job.ordered_transformations()
    if any(not isinstance(s.config, FilterConfig | MapConfig) for s in steps):
        return None
    opened: list[DatabaseConnector] = []
    try:
        source = make_connector(source_spec, spec, connections)
        opened.append(source)  # type: ignore[arg-type]
        target_base = make_connector(target_spec, spec, connections)
        opened.append(target_base)  # type: ignore[arg-type]
        if not (
            type(source) is DatabaseConnector
            and type(target_base) is DatabaseConnector
            and source.backend == "postgresql"
            and target_base.backend == "postgresql"
        ):
            return _give_up(opened)
        stored = (stored_cursors or {}).get(source_spec.name)
        cursor: Cursor | None = start_cursor(source_spec, stored)
        request = ReadRequest(table=source_spec.table, query=source_spec.query,
                              batch_size=source_spec.batch_size, cursor=cursor)  # fmt: skip
        relation = source.read(request)
        with source.engine.connect() as connection:
            columns = source._probe(connection, request)
            oids = pg_copy.result_oids(connection, source._select(request, columns, None))
        if not set(oids) <= PUSHABLE_OIDS:
            return _give_up(opened)
        if any(f.type == UNCONSTRAINED_DECIMAL for f in relation.schema):
            return _give_up(opened)
        if steps:
            empty = Relation.from_table(relation.schema.empty_table(), name=source_spec.name)
            out_schema = apply_transformations({source_spec.name: empty}, steps).schema
        else:
            out_schema = relation.schema
        if not portable_steps(steps, relation.schema, out_schema):
            return _give_up(opened)
        if not _target_types_known(target_base, target_spec.table):
            return _give_up(opened)
        target = _PipeTarget(target_base.params)
        target_base.close()
        opened[1] = target
        target.source = _Source(source, request, relation, source._select(request, columns, cursor),
                                source_spec.incremental_column)
        target.steps = steps
        return Plan(spec, target.source, target, out_schema, stored, log)
    except Exception:
        return _give_up(opened)


def _give_up(opened: Sequence[DatabaseConnector]) -> None:
    for connector in opened:
        with contextlib.suppress(Exception):
            connector.close()
    return None


def _target_types_known(target: DatabaseConnector, table: str) -> bool:
    """True when the target table is missing (it will be created) or all its types reflect."""
    schema, name = target._split_table(table)
    with target.engine.connect() as connection:
        if not sa.inspect(connection).has_table(name, schema=schema):
            return True
        reflected = sa.Table(name, sa.MetaData(), schema=schema, autoload_with=connection)
    return not any(isinstance(c.type, sa.types.NullType) for c in reflected.columns)


def render(connector: DatabaseConnector, statement: sa.Select[Any]) -> str:
    """The statement as SQL text with its values quoted by the driver (COPY takes none)."""
    with connector.engine.connect() as connection:
        sql, params = compile_statement(statement, connection.dialect)
        dbapi = connection.connection.dbapi_connection
        with dbapi.cursor() as cursor:  # type: ignore[union-attr]
            return cursor.mogrify(sql, params).decode()
