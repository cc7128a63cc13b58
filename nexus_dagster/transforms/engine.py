"""The transformation chain, run in DuckDB over streams of Arrow record batches.

:func:`apply_transformations` turns input relations and ordered steps into one lazy
:class:`~nexus_dagster.relation.Relation`. Consecutive built-in steps become ONE SQL statement,
built with SQLAlchemy constructs (bound parameters, dialect-quoted identifiers) and compiled
for DuckDB. The inputs are registered in DuckDB as Arrow streams and the result is read back
with ``to_arrow_reader(batch_size)``: filter and map stream batch by batch; aggregate, sort,
deduplicate, pivot and join are DuckDB's out-of-core operators, which spill to
``temp_directory`` under ``memory_limit``. Custom code splits the chain: it gets a pandas
DataFrame ``df`` (the whole data, or each batch with ``per_batch``) and its result continues.

Row order follows pandas: when a SQL part of the chain has a step whose result depends on row
order (sort, deduplicate, aggregate, pivot, join), every input row carries a hidden ordinal
and each step keeps the invariant "current order = ORDER BY its hidden order keys" (sort and
join only add key columns, so the stage ends with one ORDER BY and no extra sort); chains of
filters and maps keep the input order without any sort.

Example:
    >>> import pyarrow as pa
    >>> from nexus_dagster.relation import Relation
    >>> from nexus_dagster.spec.models import Transformation
    >>> orders = Relation.from_table(pa.table({"status": ["paid", "open"], "amount": [5, 7]}))
    >>> step = Transformation(name="paid", transformation_type="filter",
    ...                       config={"condition": 'status == "paid"'})
    >>> apply_transformations({"orders": orders}, [step]).to_table().num_rows
    1
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import os
import re
import shutil
import tempfile
import traceback
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from duckdb_engine import Dialect as _DuckDBDialect
from sqlalchemy.sql import FromClause, Select
from sqlalchemy.sql.elements import ColumnElement

from nexus_dagster.errors import (
    ExpressionError,
    SpecError,
    SpecProblem,
    TransformError,
)
from nexus_dagster.relation import Relation
from nexus_dagster.spec.models import (
    AggregateConfig,
    CustomCodeConfig,
    DeduplicateConfig,
    FilterConfig,
    JoinConfig,
    MapConfig,
    PivotConfig,
    SortConfig,
    Transformation,
    TransformationType,
)
from nexus_dagster.transforms.expressions import compile_expression, sqlalchemy_type

__all__ = [
    "CUSTOM_CODE_ENV",
    "ORDINAL",
    "apply_transformations",
    "custom_code_allowed",
]

ORDINAL = "__nexus_ord"
"""The hidden row-order column (never in an output)."""

CUSTOM_CODE_ENV = "NEXUS_ALLOW_CUSTOM_CODE"
"""Set to ``0`` (or false/no/off) to refuse custom_code transformations in a deployment."""

_CURRENT = "\x00current"  # logical name of the data coming out of a custom_code step
_HIDDEN = "__nexus_"  # prefix of hidden columns
_RN = "__nexus_rn"
_SOURCE_SHIFT = 40  # ordinal = source index << 40 | row number within the source
_DIALECT = _DuckDBDialect(paramstyle="qmark")
_T = TransformationType
_ORDERED = {_T.SORT, _T.DEDUPLICATE, _T.AGGREGATE, _T.PIVOT, _T.JOIN}
_CODE_GLOBALS = ("df", "pd", "np", "datetime", "timedelta")

Expr = ColumnElement[Any]


# ============================================================================ public API
def custom_code_allowed() -> bool:
    """Whether this deployment runs custom_code transformations.

    Returns:
        False when the environment variable ``NEXUS_ALLOW_CUSTOM_CODE`` is ``0`` (or
        ``false``, ``no``, ``off``), True otherwise.
    """
    value = os.environ.get(CUSTOM_CODE_ENV, "1").strip().lower()
    return value not in {"0", "false", "no", "off"}


def apply_transformations(
    inputs: Mapping[str, Relation],
    steps: list[Transformation],
    *,
    batch_size: int = 50_000,
    memory_limit: str | None = None,
    temp_directory: str | None = None,
    threads: int | None = None,
) -> Relation:
    """Apply an ordered chain of transformations to named input relations.

    The data a step sees is the union of all inputs by column name (a single input is
    itself) until a ``join`` step combines named inputs; from then on the join result is the
    current data. A join's ``left``/``right`` name a source or an earlier step (the data as
    that step produced it) since the last custom_code step.

    Nothing is read until the result is iterated, except where the result's columns depend
    on the data (pivot, custom code): then the chain starts at once so that the schema is
    known, and the result can be read once.

    Args:
        inputs: source name -> relation. Relations are read once each unless a source is
            used by several parts of the chain (then it is materialized once).
        steps: the transformations, already ordered and filtered for ``enabled``.
        batch_size: rows per output batch.
        memory_limit: DuckDB ``memory_limit`` (e.g. ``"2GB"``); blocking steps spill past it.
        temp_directory: where DuckDB spills (a private folder is made inside, and removed).
        threads: DuckDB threads (default: the CPUs, fewer under a small ``memory_limit``).

    Returns:
        A relation streaming the result in batches of at most ``batch_size`` rows.

    Raises:
        SpecError: a step refers to an unknown source or step, or custom code is disabled.
        ExpressionError: a filter condition or map expression is not allowed.
        TransformError: a step does not fit the data (unknown column, type error, ...).
    """
    if not inputs:
        raise TransformError("apply_transformations needs at least one input relation")
    if batch_size < 1:
        raise TransformError(f"batch_size must be positive, got {batch_size}")
    settings = _Settings(batch_size, memory_limit, temp_directory, threads)
    _check_settings(settings)
    sources = dict(inputs)
    for name, relation in sources.items():
        reserved = [n for n in relation.schema.names if n.startswith(_HIDDEN)]
        if reserved:
            raise TransformError(
                f"input {name!r} has column {reserved[0]!r}: names starting with {_HIDDEN!r} "
                "are reserved"
            )
    stages = _plan(list(sources), steps)
    sources = _materialize_shared(sources, stages)

    current: Relation | None = None
    previous_code: str | None = None
    for stage in stages:
        if stage.code is not None:
            if current is None:
                current = (
                    _run_stage(
                        _Stage(steps=[], scans=Counter({s: 1 for s in sources})),
                        sources,
                        None,
                        None,
                        settings,
                    )
                    if len(sources) > 1
                    else next(iter(sources.values()))
                )
            frames = {name: sources[name] for name in sorted(stage.frames)}
            current = _code_stage(stage.code, current, frames, settings)
            previous_code = stage.code.name
        else:
            current = _run_stage(stage, sources, current, previous_code, settings)
    if current is None:
        if len(sources) == 1:
            return next(iter(sources.values()))
        current = _run_stage(
            _Stage(steps=[], scans=Counter({s: 1 for s in sources})), sources, None, None, settings
        )
    return current


# ============================================================================ planning
@dataclass
class _Settings:
    batch_size: int
    memory_limit: str | None
    temp_directory: str | None
    threads: int | None = None


@dataclass
class _Stage:
    """A SQL part of the chain (``steps``) or one custom_code step (``code``)."""

    steps: list[Transformation] = field(default_factory=list)
    code: Transformation | None = None
    scans: Counter[str] = field(default_factory=Counter)  # logical input -> times scanned
    frames: set[str] = field(default_factory=set)  # sources custom code reads by name
    compiled: Any = None  # compiled custom code

    @property
    def ordered(self) -> bool:
        return any(s.transformation_type in _ORDERED for s in self.steps)


def _check_settings(settings: _Settings) -> None:
    if settings.memory_limit is None:
        return
    try:
        duckdb.connect(":memory:", config={"memory_limit": settings.memory_limit}).close()
    except duckdb.Error as exc:
        raise TransformError(f"invalid memory_limit {settings.memory_limit!r}: {exc}") from None


def _plan(sources: list[str], steps: list[Transformation]) -> list[_Stage]:
    """Split the chain at custom code, check names, count how often each input is scanned."""
    stages: list[_Stage] = []
    for step in steps:
        if step.transformation_type == _T.CUSTOM_CODE:
            stages.append(_Stage(code=step))
        elif stages and stages[-1].code is None:
            stages[-1].steps.append(step)
        else:
            stages.append(_Stage(steps=[step]))

    all_names = set(sources)
    for step in steps:
        if step.name in set(sources):
            raise SpecError(
                [
                    SpecProblem(
                        f"transformation {step.name!r} has the name of a source; "
                        "names must be unique",
                        field=f"transformations.{step.name}",
                    )
                ]
            )
        all_names.add(step.name)

    previous_code: str | None = None
    for index, stage in enumerate(stages):
        if stage.code is not None:
            _plan_code(stage, sources, first=index == 0)
            previous_code = stage.code.name
        else:
            _plan_sql(stage, sources, previous_code, all_names)
    return stages


def _plan_code(stage: _Stage, sources: list[str], *, first: bool) -> None:
    step = stage.code
    assert step is not None
    if not custom_code_allowed():
        raise SpecError(
            [
                SpecProblem(
                    f"custom_code transformation {step.name!r} is disabled in this deployment "
                    f"({CUSTOM_CODE_ENV}=0)",
                    field=f"transformations.{step.name}",
                    fix=f"remove the step, or set {CUSTOM_CODE_ENV}=1 where custom code is trusted",
                )
            ]
        )
    code = step.custom_code or ""
    try:
        tree = ast.parse(code, filename=_code_filename(step))
        stage.compiled = compile(tree, _code_filename(step), "exec")
    except SyntaxError as exc:
        raise TransformError(
            f"transformation {step.name!r} (custom_code): syntax error at line {exc.lineno}: "
            f"{exc.msg}"
        ) from None
    loaded = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    stage.frames = {s for s in sources if s in loaded and s not in _CODE_GLOBALS}
    if first:
        stage.scans.update({s: 1 for s in sources})


def _plan_sql(
    stage: _Stage, sources: list[str], previous_code: str | None, all_names: set[str]
) -> None:
    """Simulate the SQL part: which inputs each step reads, to count scans of each input."""
    named: dict[str, Counter[str]] = {s: Counter({s: 1}) for s in sources}
    if previous_code is None:
        current: Counter[str] = Counter({s: 1 for s in sources})
    else:
        current = Counter({_CURRENT: 1})
        named[previous_code] = current
    total: Counter[str] = Counter()
    for step in stage.steps:
        config = step.config
        if isinstance(config, JoinConfig):
            for side in (config.left, config.right):
                if side not in named:
                    if side in all_names:
                        reason = (
                            f"{side!r} is not available here: a join can use sources and "
                            "steps since the last custom_code step"
                        )
                    else:
                        known = ", ".join(sorted(n for n in named if n != _CURRENT))
                        reason = f"unknown source or step {side!r}; known: {known}"
                    raise SpecError(
                        [
                            SpecProblem(
                                f"join {step.name!r}: {reason}",
                                field=f"transformations.{step.name}",
                            )
                        ]
                    )
            current = named[config.left] + named[config.right]
        elif isinstance(config, PivotConfig):
            total += current  # read once into a temporary table
            current = Counter()
        named[step.name] = current
    total += current
    stage.scans = total


def _materialize_shared(sources: dict[str, Relation], stages: list[_Stage]) -> dict[str, Relation]:
    """Sources read by more than one part of the chain are read once into memory."""
    consumers: Counter[str] = Counter()
    for stage in stages:
        for name in sources:
            if stage.scans.get(name):
                consumers[name] += 1
            if name in stage.frames:
                consumers[name] += 1
    result = dict(sources)
    for name, count in consumers.items():
        if count > 1:
            relation = sources[name]
            cached: list[pa.Table] = []

            def open_(relation: Relation = relation, cached: list[pa.Table] = cached) -> Any:
                if not cached:
                    cached.append(relation.to_table())
                return iter(cached[0].to_batches())

            result[name] = Relation(relation.schema, open_, relation.name, relation.stats)
    return result


# ============================================================================ SQL stages
def _run_stage(
    stage: _Stage,
    sources: dict[str, Relation],
    current: Relation | None,
    previous_code: str | None,
    settings: _Settings,
) -> Relation:
    """One SQL part of the chain as a relation (lazy when its schema is knowable)."""
    inputs: dict[str, Relation] = {}
    if current is not None:
        inputs[_CURRENT] = current
    for name, relation in sources.items():
        if stage.scans.get(name):
            inputs[name] = relation
    refs = _reference_types(inputs.values())
    label = f"transform {stage.steps[-1].name}" if stage.steps else "union of sources"
    dynamic = any(s.transformation_type == _T.PIVOT for s in stage.steps)
    if dynamic:
        gen = _execute(stage, list(sources), inputs, previous_code, settings, dry=False)
        schema = _restore_schema(next(gen), refs)
        return _once(schema, gen, label)
    dry = _execute(stage, list(sources), inputs, previous_code, settings, dry=True)
    try:
        schema = _restore_schema(next(dry), refs)
    finally:
        dry.close()

    def open_() -> Iterator[pa.RecordBatch]:
        gen = _execute(stage, list(sources), inputs, previous_code, settings, dry=False)
        next(gen)
        return gen

    return Relation(schema, open_, label)


def _connect(settings: _Settings, ordered: bool) -> tuple[duckdb.DuckDBPyConnection, str]:
    spill = tempfile.mkdtemp(prefix="nexus-duckdb-", dir=settings.temp_directory)
    # Ordered stages end with an explicit ORDER BY; the others rely on insertion order.
    config: dict[str, Any] = {"temp_directory": spill, "preserve_insertion_order": not ordered}
    if settings.memory_limit:
        config["memory_limit"] = settings.memory_limit
        limit = _parse_bytes(settings.memory_limit)
        if limit is not None:
            # DuckDB needs working memory per thread to spill (it suggests >= 1 GB each);
            # with a small limit, fewer threads is what lets a blocking step complete.
            config["threads"] = max(1, min(os.cpu_count() or 1, limit // _BYTES_PER_THREAD))
    if settings.threads:
        config["threads"] = settings.threads
    try:
        return duckdb.connect(":memory:", config=config), spill
    except Exception:
        shutil.rmtree(spill, ignore_errors=True)
        raise


_BYTES_PER_THREAD = 256 * 2**20
_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def _parse_bytes(text: str) -> int | None:
    """``"64MB"`` -> 64000000 (DuckDB's units); None when not understood."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        return None
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def _compile(stmt: sa.sql.ClauseElement) -> tuple[str, list[Any]]:
    compiled = stmt.compile(dialect=_DIALECT, compile_kwargs={"render_postcompile": True})
    params = [compiled.params[name] for name in compiled.positiontup or ()]
    return str(compiled), params


def _quote(name: str) -> str:
    return _DIALECT.identifier_preparer.quote(name)


def _execute(
    stage: _Stage,
    source_names: list[str],
    inputs: dict[str, Relation],
    previous_code: str | None,
    settings: _Settings,
    *,
    dry: bool,
) -> Iterator[Any]:
    """Run one SQL stage: yields the output schema first, then the batches.

    With ``dry`` the inputs are empty tables of the same schemas (to learn the output schema
    and to report errors before any data is read).
    """
    ordered = stage.ordered
    con, spill = _connect(settings, ordered)
    failures: list[BaseException] = []
    try:
        bases: dict[str, FromClause] = {}
        for index, (logical, relation) in enumerate(inputs.items()):
            schema = relation.schema
            if ordered:
                schema = schema.append(pa.field(ORDINAL, pa.int64()))
            registered = f"__nexus_in_{index}"
            if dry:
                con.register(registered, schema.empty_table())
            else:
                batches = _guard(
                    _with_ordinal(relation, index) if ordered else iter(relation), failures
                )
                con.register(registered, pa.RecordBatchReader.from_batches(schema, batches))
            if stage.scans.get(logical, 0) > 1:  # read twice in one statement: keep a copy
                copy = f"__nexus_copy_{index}"
                con.execute(
                    f"CREATE TEMP TABLE {_quote(copy)} AS SELECT * FROM {_quote(registered)}"
                )
                registered = copy
            bases[logical] = sa.table(
                registered, *[sa.column(f.name, sqlalchemy_type(f.type)) for f in schema]
            )
        builder = SqlBuilder(bases, source_names, con=con, previous_code=previous_code,
                             ordered=ordered)
        try:
            stmt = builder.build(stage.steps)
            sql, params = _compile(stmt)
            reader = con.sql(sql, params=params).to_arrow_reader(settings.batch_size)
        except (duckdb.Error, pa.ArrowException, OSError) as exc:
            if failures:
                raise failures[0] from None
            if dry:
                builder.blame(exc)
            raise TransformError(f"{_steps_label(stage)} failed: {exc}") from exc
        yield reader.schema
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except Exception as exc:
                if failures:  # a source failed: raise its own error, not DuckDB's wrapper
                    raise failures[0] from None
                if isinstance(exc, (duckdb.Error, pa.ArrowException, OSError)):
                    raise TransformError(f"{_steps_label(stage)} failed: {exc}") from exc
                raise
            yield batch
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)


def _steps_label(stage: _Stage) -> str:
    if not stage.steps:
        return "union of sources"
    return "transformations " + ", ".join(repr(s.name) for s in stage.steps)


def _guard(batches: Iterator[pa.RecordBatch], failures: list[BaseException]) -> Iterator[Any]:
    """Remember an exception raised by a source, so it is re-raised as itself, not wrapped."""
    try:
        yield from batches
    except GeneratorExit:
        raise
    except BaseException as exc:
        failures.append(exc)
        raise


def _with_ordinal(relation: Relation, index: int) -> Iterator[pa.RecordBatch]:
    offset = index << _SOURCE_SHIFT
    for batch in relation:
        n = batch.num_rows
        ordinal = pa.array(np.arange(offset, offset + n, dtype=np.int64))
        offset += n
        yield batch.append_column(ORDINAL, ordinal)


def _once(schema: pa.Schema, gen: Iterator[pa.RecordBatch], name: str) -> Relation:
    """A relation over a started generator: it can be read once."""
    state = {"used": False}

    def open_() -> Iterator[pa.RecordBatch]:
        if state["used"]:
            raise TransformError(f"{name}: this result can be read once only")
        state["used"] = True
        return gen

    return Relation(schema, open_, name)


@dataclass
class _Node:
    """A step result: its table and the hidden columns that define its row order.

    ``order`` lists (column, ascending) pairs, nulls last; the last pair is unique per row, so
    the order is total. Steps that reorder rows (sort, aggregate, join) only add hidden key
    columns, and the stage ends with ONE ``ORDER BY`` over them: no window function and no
    second sort unless a step needs a single ordinal (first/last after a reordering step).
    """

    table: FromClause
    order: list[tuple[str, bool]]


class SqlBuilder:
    """Builds the SQL of one stage as nested SQLAlchemy subqueries, one per step.

    Args:
        bases: input name -> the table (or subquery) it reads.
        source_names: the job's source names, in spec order.
        con: the DuckDB connection of the stage (pivot reads distinct values through it);
            None when compiling for another database.
        previous_code: the name of the custom_code step whose result the stage starts from.
        ordered: keep the input row order (hidden ordinal columns).

    Example:
        >>> select = SqlBuilder({"src": table}, ["src"]).build(steps)  # doctest: +SKIP
    """

    def __init__(
        self,
        bases: dict[str, FromClause],
        source_names: list[str],
        *,
        con: duckdb.DuckDBPyConnection | None = None,
        previous_code: str | None = None,
        ordered: bool = False,
    ) -> None:
        self.con = con
        self.bases = bases
        self.ordered = ordered
        self.source_names = source_names
        initial = [(ORDINAL, True)] if ordered else []
        self.named: dict[str, _Node] = {
            s: _Node(bases[s], list(initial)) for s in source_names if s in bases
        }
        self._current: _Node | None = None
        if previous_code is not None:
            self._current = _Node(bases[_CURRENT], list(initial))
            self.named[previous_code] = self._current
        self.counter = 0
        self.snapshots: list[tuple[Transformation, FromClause]] = []

    # -- helpers
    def _alias(self) -> str:
        self.counter += 1
        return f"t{self.counter}"

    def _key(self) -> str:
        self.counter += 1
        return f"{_HIDDEN}k{self.counter}"

    @property
    def current(self) -> _Node:
        if self._current is None:
            self._current = self._union()
        return self._current

    def _union(self) -> _Node:
        tables = [self.bases[s] for s in self.source_names if s in self.bases]
        order = [(ORDINAL, True)] if self.ordered else []
        if len(tables) == 1:
            return _Node(tables[0], order)
        types: dict[str, Any] = {}
        for table in tables:
            for column in table.c:
                if not column.name.startswith(_HIDDEN):
                    types.setdefault(column.name, column.type)
        branches = []
        for table in tables:
            columns = [
                table.c[name].label(name)
                if name in table.c
                else sa.type_coerce(sa.null(), type_).label(name)
                for name, type_ in types.items()
            ]
            if self.ordered:
                columns.append(table.c[ORDINAL])
            branches.append(sa.select(*columns))
        return _Node(sa.union_all(*branches).subquery(self._alias()), order)

    @staticmethod
    def columns(table: FromClause) -> dict[str, Expr]:
        return {c.name: c for c in table.c if not c.name.startswith(_HIDDEN)}

    @staticmethod
    def _order_columns(node: _Node, table: FromClause | None = None) -> list[Expr]:
        table = node.table if table is None else table
        return [table.c[name] for name, _ in node.order]

    @staticmethod
    def _order_by(node: _Node, table: FromClause | None = None, reverse: bool = False) -> list[Any]:
        table = node.table if table is None else table
        clauses = []
        for name, ascending in node.order:
            column = table.c[name]
            if reverse:
                clauses.append((column.desc() if ascending else column.asc()).nulls_first())
            else:
                clauses.append((column.asc() if ascending else column.desc()).nulls_last())
        return clauses

    def _single_ordinal(self, node: _Node) -> tuple[_Node, Expr]:
        """The node with one ascending ordinal column (numbering rows if needed)."""
        if len(node.order) == 1 and node.order[0][1]:
            return node, node.table.c[node.order[0][0]]
        key = self._key()
        if node.order:
            number = sa.func.row_number().over(order_by=self._order_by(node))
        else:
            number = sa.func.row_number().over()
        table = sa.select(*self.columns(node.table).values(), number.label(key)).subquery(
            self._alias()
        )
        return _Node(table, [(key, True)]), table.c[key]

    @staticmethod
    def _column(table: FromClause, name: str, step: Transformation, what: str) -> Expr:
        columns = {c.name: c for c in table.c if not c.name.startswith(_HIDDEN)}
        if name not in columns:
            raise TransformError(
                f"transformation {step.name!r} ({step.transformation_type.value}): "
                f"unknown {what} column {name!r}; available columns: " + ", ".join(columns)
            )
        return columns[name]

    @staticmethod
    def _expression(
        step: Transformation, text: str, columns: Mapping[str, Expr], condition: bool
    ) -> Expr:
        try:
            return compile_expression(text, columns, condition=condition)
        except ExpressionError as exc:
            raise ExpressionError(
                exc.expression, f"{exc.reason} (transformation {step.name!r})"
            ) from None

    @staticmethod
    def _check_names(step: Transformation, names: list[str]) -> None:
        seen: set[str] = set()
        for name in names:
            if name.startswith(_HIDDEN):
                raise TransformError(
                    f"transformation {step.name!r}: column names starting with {_HIDDEN!r} "
                    f"are reserved ({name!r})"
                )
            if name in seen:
                raise TransformError(
                    f"transformation {step.name!r} would produce two columns named {name!r}"
                )
            seen.add(name)

    # -- build
    def build(self, steps: list[Transformation]) -> Select[Any]:
        for step in steps:
            config = step.config
            if isinstance(config, FilterConfig):
                node = self._filter(step, config)
            elif isinstance(config, MapConfig):
                node = self._map(step, config)
            elif isinstance(config, AggregateConfig):
                node = self._aggregate(step, config)
            elif isinstance(config, SortConfig):
                node = self._sort(step, config)
            elif isinstance(config, DeduplicateConfig):
                node = self._deduplicate(step, config)
            elif isinstance(config, PivotConfig):
                node = self._pivot(step, config)
            elif isinstance(config, JoinConfig):
                node = self._join(step, config)
            else:  # pragma: no cover - custom code never reaches the SQL builder
                raise TransformError(f"transformation {step.name!r} cannot run in SQL")
            self._current = node
            self.named[step.name] = node
            self.snapshots.append((step, node.table))
        final = self.current
        stmt = sa.select(*self.columns(final.table).values())
        if self.ordered and final.order:
            stmt = stmt.order_by(*self._order_by(final))
        return stmt

    def blame(self, exc: Exception) -> None:
        """Find the first step whose SQL fails (on empty inputs) and raise naming it."""
        for step, table in self.snapshots:
            sql, params = _compile(sa.select(*table.c).limit(0))
            try:
                self.con.execute(sql, params)
            except duckdb.Error as step_exc:
                raise TransformError(
                    f"transformation {step.name!r} ({step.transformation_type.value}) "
                    f"does not fit the data: {step_exc}"
                ) from step_exc

    def _filter(self, step: Transformation, config: FilterConfig) -> _Node:
        node = self.current
        table = node.table
        condition = self._expression(step, config.condition, self.columns(table), True)
        columns = [*self.columns(table).values(), *self._order_columns(node)]
        return _Node(sa.select(*columns).where(condition).subquery(self._alias()), node.order)

    def _map(self, step: Transformation, config: MapConfig) -> _Node:
        node = self.current
        exprs = self.columns(node.table)
        for name, text in config.mappings.items():
            self._check_names(step, [name])
            exprs[name] = self._expression(step, text, exprs, False)
        columns = [e.label(n) for n, e in exprs.items()] + self._order_columns(node)
        return _Node(sa.select(*columns).subquery(self._alias()), node.order)

    def _aggregate(self, step: Transformation, config: AggregateConfig) -> _Node:
        node = self.current
        for name in config.group_by:
            self._column(node.table, name, step, "group_by")
        for column_name, _ in config.aggregations.values():
            self._column(node.table, column_name, step, "aggregated")
        self._check_names(step, [*config.group_by, *config.aggregations])
        functions = {f for _, f in config.aggregations.values()}
        ordinal: Expr | None = None
        if functions & {"first", "last"}:
            node, ordinal = self._single_ordinal(node)
        table = node.table
        distinct = sorted({c for c, f in config.aggregations.values() if f == "nunique"})
        if distinct:
            # count(DISTINCT x) does not spill in DuckDB; a partitioned window does. Mark the
            # first row of each (group, value) and count the marks.
            keys = [table.c[k] for k in config.group_by]
            marks = []
            for i, name in enumerate(distinct):
                first = sa.func.row_number().over(partition_by=[*keys, table.c[name]])
                marks.append(
                    sa.case((first == sa.literal_column("1"), table.c[name])).label(
                        f"{_HIDDEN}nu{i}"
                    )
                )
            table = sa.select(*table.c, *marks).subquery(self._alias())
            if ordinal is not None:
                ordinal = table.c[ordinal.name]
        keys = [table.c[k] for k in config.group_by]
        outputs = []
        for output, (column_name, function) in config.aggregations.items():
            if function == "nunique":
                mark = table.c[f"{_HIDDEN}nu{distinct.index(column_name)}"]
                outputs.append(sa.func.count(mark, type_=sa.BigInteger()).label(output))
                continue
            column = table.c[column_name]
            outputs.append(_aggregate_function(function, column, ordinal).label(output))
        copies = [(k.label(self._key()), k) for k in keys]  # the sort keys of the groups
        stmt = sa.select(*keys, *outputs, *[c for c, _ in copies])
        if keys:
            stmt = stmt.group_by(*keys)
        return _Node(stmt.subquery(self._alias()), [(c.name, True) for c, _ in copies])

    def _sort(self, step: Transformation, config: SortConfig) -> _Node:
        node = self.current
        flags = (
            config.ascending
            if isinstance(config.ascending, list)
            else [config.ascending] * len(config.columns)
        )
        copies = []
        order = []
        for name, ascending in zip(config.columns, flags, strict=True):
            key = self._key()
            copies.append(self._column(node.table, name, step, "sort").label(key))
            order.append((key, bool(ascending)))
        # stable: ties keep their previous order (the old keys follow the new ones)
        columns = [*self.columns(node.table).values(), *copies, *self._order_columns(node)]
        return _Node(sa.select(*columns).subquery(self._alias()), order + node.order)

    def _deduplicate(self, step: Transformation, config: DeduplicateConfig) -> _Node:
        node = self.current
        table = node.table
        subset = config.subset or list(self.columns(table))
        keys = [self._column(table, name, step, "subset") for name in subset]
        order = self._order_by(node, reverse=config.keep == "last") or None
        number = sa.func.row_number().over(partition_by=keys, order_by=order)
        kept = [*self.columns(table).values(), *self._order_columns(node)]
        inner = sa.select(*kept, number.label(_RN)).subquery(self._alias())
        outer = sa.select(*[inner.c[c.name] for c in kept]).where(
            inner.c[_RN] == sa.literal_column("1")
        )
        return _Node(outer.subquery(self._alias()), node.order)

    def _join(self, step: Transformation, config: JoinConfig) -> _Node:
        lnode, rnode = self.named[config.left], self.named[config.right]
        left = lnode.table.alias(self._alias())
        right = rnode.table.alias(self._alias())
        lcols, rcols = self.columns(left), self.columns(right)
        for key in config.on:
            for side, cols in ((config.left, lcols), (config.right, rcols)):
                if key not in cols:
                    raise TransformError(
                        f"transformation {step.name!r} (join): key {key!r} is not a column of "
                        f"{side!r}; its columns: " + ", ".join(cols)
                    )
        clash = (set(lcols) & set(rcols)) - set(config.on)
        out: list[Expr] = []
        names: list[str] = []
        keys: list[Expr] = []
        for name, column in lcols.items():
            if name in config.on:
                if config.how == "right":
                    key = rcols[name]
                elif config.how == "outer":
                    key = sa.func.coalesce(column, rcols[name], type_=column.type)
                else:
                    key = column
                keys.append(key)
                out.append(key.label(name))
                names.append(name)
            else:
                label = name + config.suffixes[0] if name in clash else name
                out.append(column.label(label))
                names.append(label)
        for name, column in rcols.items():
            if name in config.on:
                continue
            label = name + config.suffixes[1] if name in clash else name
            out.append(column.label(label))
            names.append(label)
        self._check_names(step, names)

        def carry(node: _Node, table: FromClause) -> list[tuple[str, bool]]:
            order = []
            for name, ascending in node.order:
                key = self._key()
                out.append(table.c[name].label(key))
                order.append((key, ascending))
            return order

        condition = sa.and_(*[lcols[k] == rcols[k] for k in config.on])
        if config.how == "right":
            joined = right.join(left, condition, isouter=True)
            order = carry(rnode, right) + carry(lnode, left)
        else:
            joined = left.join(
                right,
                condition,
                isouter=config.how in ("left", "outer"),
                full=config.how == "outer",
            )
            order = []
            if config.how == "outer":  # pandas sorts the keys of an outer join
                for key in keys:
                    name = self._key()
                    out.append(key.label(name))
                    order.append((name, True))
            order += carry(lnode, left) + carry(rnode, right)
        stmt = sa.select(*out).select_from(joined)
        return _Node(stmt.subquery(self._alias()), order)

    def _pivot(self, step: Transformation, config: PivotConfig) -> _Node:
        node = self.current
        index = [self._column(node.table, n, step, "index").name for n in config.index]
        pivot_name = self._column(node.table, config.columns, step, "columns").name
        values_name = self._column(node.table, config.values, step, "values").name
        if config.aggfunc in ("first", "last"):
            node, _ = self._single_ordinal(node)
        # Read the data once into a temporary table (spillable): it is scanned twice.
        temp = f"{_HIDDEN}pivot_{self.counter}_{step.name}"
        sql, params = _compile(sa.select(*node.table.c))
        self.con.execute(f"CREATE TEMP TABLE {_quote(temp)} AS {sql}", params)
        table = sa.table(temp, *[sa.column(c.name, c.type) for c in node.table.c])
        pivot_col = table.c[pivot_name]
        sql, params = _compile(
            sa.select(pivot_col)
            .distinct()
            .where(pivot_col.is_not(None))
            .order_by(pivot_col)
            .limit(config.max_columns + 1)
        )
        distinct = [row[0] for row in self.con.execute(sql, params).fetchall()]
        if len(distinct) > config.max_columns:
            raise TransformError(
                f"transformation {step.name!r} (pivot): column {pivot_name!r} has more than "
                f"{config.max_columns} distinct values; raise max_columns if that is intended"
            )
        keys = [table.c[n] for n in index]
        values = table.c[values_name]
        ordinal = table.c[node.order[0][0]] if config.aggfunc in ("first", "last") else None
        outputs = []
        names = list(index)
        for value in distinct:
            match = pivot_col == sa.literal(value)
            agg = _pivot_function(config.aggfunc, values, ordinal, match)
            if config.fill_value is not None:
                agg = sa.func.coalesce(agg, sa.literal(config.fill_value), type_=agg.type)
            name = str(value)
            outputs.append(agg.label(name))
            names.append(name)
        self._check_names(step, names)
        copies = [k.label(self._key()) for k in keys]
        stmt = sa.select(*keys, *outputs, *copies).group_by(*keys)
        return _Node(stmt.subquery(self._alias()), [(c.name, True) for c in copies])


def _numeric_input(column: Expr) -> Expr:
    if isinstance(column.type, sa.Boolean):
        return sa.cast(column, sa.BigInteger())
    return column


def _aggregate_function(function: str, column: Expr, ordinal: Expr | None) -> Expr:
    """One aggregation with pandas semantics (sum of nothing is 0, first skips nulls, ...)."""
    double = sa.Double()
    if function == "sum":
        value = _numeric_input(column)
        total = sa.func.coalesce(sa.func.sum(value), sa.literal_column("0"), type_=value.type)
        return sa.cast(total, sa.BigInteger()) if isinstance(value.type, sa.Integer) else total
    if function in ("mean", "avg"):
        return sa.func.avg(_numeric_input(column), type_=double)
    if function == "count":
        return sa.func.count(column, type_=sa.BigInteger())
    if function == "size":
        return sa.func.count(type_=sa.BigInteger())
    if function in ("min", "max"):
        return getattr(sa.func, function)(column, type_=column.type)
    if function == "median":
        value = _numeric_input(column)
        type_ = double if isinstance(value.type, sa.Integer) else value.type
        return sa.func.median(value, type_=type_)
    if function == "std":
        return sa.func.stddev_samp(_numeric_input(column), type_=double)
    if function == "var":
        return sa.func.var_samp(_numeric_input(column), type_=double)
    if function in ("first", "last"):
        pick = sa.func.arg_min if function == "first" else sa.func.arg_max
        return pick(column, ordinal, type_=column.type).filter(column.is_not(None))
    raise TransformError(f"unknown aggregate function {function!r}")  # pragma: no cover


def _pivot_function(function: str, values: Expr, ordinal: Expr | None, match: Expr) -> Expr:
    if function in ("first", "last"):
        pick = sa.func.arg_min if function == "first" else sa.func.arg_max
        return pick(values, ordinal, type_=values.type).filter(sa.and_(match, values.is_not(None)))
    if function == "sum":
        return sa.func.sum(values, type_=values.type).filter(match)
    if function == "mean":
        return sa.func.avg(values, type_=sa.Double()).filter(match)
    if function == "count":
        return sa.func.count(values, type_=sa.BigInteger()).filter(match)
    if function in ("min", "max"):
        return getattr(sa.func, function)(values, type_=values.type).filter(match)
    raise TransformError(f"unknown pivot aggfunc {function!r}")  # pragma: no cover


# ============================================================================ types
def _stringish(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _reference_types(relations: Any) -> dict[str, pa.DataType]:
    refs: dict[str, pa.DataType] = {}
    for relation in relations:
        for f in relation.schema:
            refs.setdefault(f.name, f.type)
    return refs


def _restore_schema(schema: pa.Schema, refs: Mapping[str, pa.DataType]) -> pa.Schema:
    """Give SQL results back the input's string flavour and time zone of same-name columns.

    DuckDB returns every string as ``string`` and every TIMESTAMPTZ in its session zone;
    the instant is the same, so only the label changes.
    """
    fields = []
    for f in schema:
        ref = refs.get(f.name)
        if ref is not None and ref != f.type:
            if _stringish(f.type) and _stringish(ref):
                f = f.with_type(ref)
            elif (
                pa.types.is_timestamp(f.type)
                and pa.types.is_timestamp(ref)
                and f.type.tz is not None
                and ref.tz is not None
            ):
                f = f.with_type(pa.timestamp(f.type.unit, ref.tz))
        fields.append(f)
    return pa.schema(fields)


def _restorable(out: pa.DataType, ref: pa.DataType) -> bool:
    """Whether a pandas round trip may have changed ``ref`` into ``out`` (and back is ok)."""
    if out == ref:
        return False
    if pa.types.is_null(out):
        return True
    if _stringish(out):
        return _stringish(ref) or (pa.types.is_dictionary(ref) and _stringish(ref.value_type))
    if pa.types.is_integer(ref):  # int with missing values comes back as float
        return pa.types.is_integer(out) or pa.types.is_floating(out)
    if pa.types.is_floating(ref):
        return pa.types.is_floating(out)
    if pa.types.is_decimal(ref):
        return pa.types.is_decimal(out)
    if pa.types.is_timestamp(ref):
        return pa.types.is_timestamp(out) and (out.tz is None) == (ref.tz is None)
    if pa.types.is_date(ref):
        return pa.types.is_date(out) or (pa.types.is_timestamp(out) and out.tz is None)
    return False


# ============================================================================ custom code
def _code_filename(step: Transformation) -> str:
    return f"<custom_code {step.name}>"


def _code_stage(
    step: Transformation,
    current: Relation,
    frames: dict[str, Relation],
    settings: _Settings,
) -> Relation:
    config = step.config
    per_batch = isinstance(config, CustomCodeConfig) and config.per_batch
    code = compile(step.custom_code or "", _code_filename(step), "exec")
    reference = current.schema
    label = f"transform {step.name}"

    def load_frames() -> dict[str, pd.DataFrame]:
        return {name: relation.to_table().to_pandas() for name, relation in frames.items()}

    def whole() -> Iterator[Any]:
        named = load_frames()
        df = current.to_table().to_pandas()
        table = _to_arrow(step, _run_code(step, code, df, named), reference)
        del df
        yield table.schema
        yield from table.to_batches(max_chunksize=settings.batch_size)

    def batched() -> Iterator[Any]:
        named = load_frames()
        schema: pa.Schema | None = None
        for number, batch in enumerate(current, start=1):
            df = pa.Table.from_batches([batch]).to_pandas()
            table = _to_arrow(step, _run_code(step, code, df, named), reference)
            if schema is None:
                schema = table.schema
                yield schema
            elif table.schema != schema:
                try:
                    table = table.select(schema.names).cast(schema)
                except (pa.ArrowException, KeyError, ValueError) as exc:
                    raise TransformError(
                        f"transformation {step.name!r} (custom_code, per_batch): batch {number} "
                        f"produced schema {table.schema} but the first batch produced {schema}: "
                        f"{exc}"
                    ) from exc
            yield from table.to_batches(max_chunksize=settings.batch_size)
        if schema is None:  # no input batches: learn the schema from an empty frame
            df = reference.empty_table().to_pandas()
            table = _to_arrow(step, _run_code(step, code, df, named), reference)
            yield table.schema
            yield from table.to_batches(max_chunksize=settings.batch_size)

    gen = batched() if per_batch else whole()
    return _once(next(gen), gen, label)


def _run_code(
    step: Transformation, code: Any, df: pd.DataFrame, frames: dict[str, pd.DataFrame]
) -> pd.DataFrame:
    namespace: dict[str, Any] = dict(frames)
    namespace.update(
        __builtins__=builtins,
        __name__="__nexus_custom_code__",
        df=df,
        pd=pd,
        np=np,
        datetime=datetime,
        timedelta=timedelta,
    )
    try:
        exec(code, namespace)
    except (Exception, SystemExit) as exc:
        line, text = _failing_line(step, exc)
        where = f" at line {line}: {text.strip()!r}" if line else ""
        raise TransformError(
            f"transformation {step.name!r} (custom_code) failed{where}: {type(exc).__name__}: {exc}"
        ) from exc
    result = namespace.get("df")
    if not isinstance(result, pd.DataFrame):
        raise TransformError(
            f"transformation {step.name!r} (custom_code): after the code, df must be a pandas "
            f"DataFrame, not {type(result).__name__}"
        )
    return result


def _failing_line(step: Transformation, exc: BaseException) -> tuple[int | None, str]:
    filename = _code_filename(step)
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == filename:
            line = frame.lineno
    if line is None:
        return None, ""
    lines = (step.custom_code or "").splitlines()
    return line, lines[line - 1] if 0 < line <= len(lines) else ""


def _to_arrow(step: Transformation, df: pd.DataFrame, reference: pa.Schema) -> pa.Table:
    """The DataFrame as Arrow, with the input's exact types where pandas changed them."""
    try:
        table = pa.Table.from_pandas(df, preserve_index=False)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise TransformError(
            f"transformation {step.name!r} (custom_code): the resulting df cannot be "
            f"converted to Arrow: {exc}"
        ) from exc
    table = table.replace_schema_metadata(None)
    refs = {f.name: f.type for f in reference}
    columns = []
    for f, column in zip(table.schema, table.columns, strict=True):
        ref = refs.get(f.name)
        if ref is not None and _restorable(f.type, ref):
            with contextlib.suppress(pa.ArrowException, ValueError):
                column = column.cast(ref)
        columns.append(column)
    return pa.Table.from_arrays(columns, names=table.column_names)
