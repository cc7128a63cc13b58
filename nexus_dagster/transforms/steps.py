"""The step table: what each transformation type is, in one place.

For every :class:`~nexus_dagster.spec.models.TransformationType` a :class:`StepKind` says
which config model it takes, how it compiles to SQL, which input columns each output column
comes from, whether it may be pushed down to the source database, which expressions it holds
and which named inputs it reads. The SQL builder, the chain planner, column lineage, pushdown
(:func:`~nexus_dagster.transforms.portable.portable_steps`) and the spec checks read this table
instead of testing types one by one, so adding a transformation type is its config model in
:mod:`nexus_dagster.spec.models` plus one entry in :data:`STEP_KINDS`.

Column lineage rules (each step maps the lineage of the data before it to the lineage after):

* filter, sort, deduplicate: columns pass through unchanged;
* map: the output column depends on the columns its expression names (a literal on none);
* aggregate: group keys keep their lineage, each output depends on its measured column, and
  every other column is dropped;
* join: a key named the same on both sides comes from both; every other column keeps its
  side's lineage, clashing names get the join's suffixes; semi and anti keep the left
  columns, each also depending on the keys it was matched on;
* pivot: the index keeps its lineage, every pivoted column depends on ``columns`` and
  ``values`` (their names are only known from the data);
* window: every column passes through; each output depends on its column and on the
  ``partition_by`` and ``order_by`` columns;
* select: each kept column keeps the lineage of the input column it was (renamed or cast);
* custom code: declared conservatively, every column afterwards depends on every column
  before it.

Example:
    >>> from nexus_dagster.spec.models import Transformation
    >>> step = Transformation(name="revenue", transformation_type="map",
    ...                       config={"mappings": {"revenue": "quantity * price"}})
    >>> kind = step_kind(step)
    >>> [e.text for e in kind.expressions(step.config)], kind.portable, kind.ordered
    (['quantity * price'], True, False)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

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
from nexus_dagster.spec.select_config import SelectConfig
from nexus_dagster.spec.window_config import WindowConfig
from nexus_dagster.transforms.expressions import referenced_columns
from nexus_dagster.transforms.select_sql import select_sql
from nexus_dagster.transforms.sql_scope import Node, SqlScope
from nexus_dagster.transforms.step_sql import (
    aggregate_sql,
    deduplicate_sql,
    filter_sql,
    join_sql,
    map_sql,
    pivot_sql,
    sort_sql,
)
from nexus_dagster.transforms.window_sql import window_sql

__all__ = [
    "STEP_KINDS",
    "ColumnSources",
    "ColumnUse",
    "Dep",
    "StepExpression",
    "StepKind",
    "step_kind",
    "step_reads",
]

Dep = tuple[str, str]
"""(input name, column): a column of a source the lineage points at."""


@dataclass
class ColumnSources:
    """The lineage of one data set: column -> the source columns it is derived from.

    Attributes:
        deps: known column -> (source, column) pairs.
        rest: what every column not in ``deps`` depends on (columns known only from the
            data, after pivot or custom code); None when there are no such columns.
    """

    deps: dict[str, set[Dep]] = field(default_factory=dict)
    rest: set[Dep] | None = None

    def of(self, name: str) -> set[Dep]:
        """The source columns column ``name`` is derived from (a copy)."""
        if name in self.deps:
            return set(self.deps[name])
        return set(self.rest or ())

    def everything(self) -> set[Dep]:
        """Every source column any column here is derived from."""
        out = set(self.rest or ())
        for deps in self.deps.values():
            out |= deps
        return out

    @classmethod
    def union(cls, frames: Iterable[ColumnSources]) -> ColumnSources:
        """Several inputs read as one (by column name): a column comes from every input
        that has it."""
        out = cls()
        for frame in frames:
            for name, deps in frame.deps.items():
                out.deps.setdefault(name, set()).update(deps)
        return out


@dataclass(frozen=True)
class StepExpression:
    """An expression of a step's config.

    Attributes:
        field: where it is in the config, e.g. ``("condition",)`` or ``("mappings", "net")``.
        text: the expression.
        output: the column it assigns (a map's), None for a condition.
    """

    field: tuple[str, ...]
    text: str
    output: str | None = None


#: the SQL of a step: (scope, step, its config) -> the step's result
SqlFunction = Callable[[SqlScope, Transformation, Any], Node]
#: the lineage of a step: (lineage before it, named inputs' lineage, its config) -> after it
LineageFunction = Callable[[ColumnSources, Mapping[str, ColumnSources], Any], ColumnSources]


def _no_expressions(config: Any) -> list[StepExpression]:
    return []


def _no_inputs(config: Any) -> dict[str, str]:
    return {}


@dataclass(frozen=True)
class ColumnUse:
    """A column a step's config names (besides those in its expressions).

    Attributes:
        field: where it is in the config, e.g. ``("group_by", 0)``.
        column: the column name.
        side: the config field naming the input it must be a column of (a join's ``left``
            or ``right``); None for the data the step reads.
    """

    field: tuple[str | int, ...]
    column: str
    side: str | None = None


def _no_columns(config: Any) -> list[ColumnUse]:
    return []


@dataclass(frozen=True)
class StepKind:
    """What one transformation type is.

    Attributes:
        config: its config model (spec models).
        sql: its SQL (:mod:`nexus_dagster.transforms.step_sql`); None for custom code, which
            runs in pandas between SQL stages and splits the chain.
        lineage: its column lineage (see the module docstring).
        portable: its result means the same in PostgreSQL as in DuckDB when each of its
            expressions does (:func:`~nexus_dagster.transforms.portable.portable_steps`);
            such steps may be compiled into the source database's query.
        expressions: the expressions of its config (checked at spec load, and for
            portability).
        inputs: config field -> the named input (a source or an earlier step) it reads, e.g.
            a join's ``left`` and ``right``; a step with inputs is itself a named input to
            later steps' lineage and spec checks.
        ordered: its result depends on row order (the stage carries hidden ordinals).
        columns_from_data: its output columns are known only from the data (pivot): it reads
            its input once up front (a temporary table) and its stage starts at once.
        columns: the columns its config names outside expressions (``nexus validate`` checks
            them against the known source schemas).
    """

    config: type[BaseModel]
    sql: SqlFunction | None
    lineage: LineageFunction
    portable: bool = False
    expressions: Callable[[Any], list[StepExpression]] = _no_expressions
    inputs: Callable[[Any], dict[str, str]] = _no_inputs
    ordered: bool = False
    columns_from_data: bool = False
    columns: Callable[[Any], list[ColumnUse]] = _no_columns


# ----------------------------------------------------------------------------- expressions
def _filter_expressions(config: FilterConfig) -> list[StepExpression]:
    return [StepExpression(("condition",), config.condition)]


def _map_expressions(config: MapConfig) -> list[StepExpression]:
    return [
        StepExpression(("mappings", column), text, output=column)
        for column, text in config.mappings.items()
    ]


def _join_inputs(config: JoinConfig) -> dict[str, str]:
    return {"left": config.left, "right": config.right}


# ----------------------------------------------------------------------------- named columns
def _listed(field: str, names: list[str] | None) -> list[ColumnUse]:
    return [ColumnUse((field, i), name) for i, name in enumerate(names or ())]


def _aggregate_columns(config: AggregateConfig) -> list[ColumnUse]:
    return _listed("group_by", config.group_by) + [
        ColumnUse(("aggregations", out), column)
        for out, (column, _) in config.aggregations.items()
    ]


def _sort_columns(config: SortConfig) -> list[ColumnUse]:
    return _listed("columns", config.columns)


def _deduplicate_columns(config: DeduplicateConfig) -> list[ColumnUse]:
    return _listed("subset", config.subset)


def _pivot_columns(config: PivotConfig) -> list[ColumnUse]:
    return [*_listed("index", config.index), ColumnUse(("columns",), config.columns),
            ColumnUse(("values",), config.values)]


def _join_columns(config: JoinConfig) -> list[ColumnUse]:
    uses = []
    for i, (lkey, rkey) in enumerate(config.key_pairs()):
        lfield, rfield = ("on", "on") if config.on is not None else ("left_on", "right_on")
        uses += [ColumnUse((lfield, i), lkey, "left"), ColumnUse((rfield, i), rkey, "right")]
    return uses


# ----------------------------------------------------------------------------- lineage
def _same_columns(
    current: ColumnSources, named: Mapping[str, ColumnSources], config: Any
) -> ColumnSources:
    return current


def _map_lineage(
    current: ColumnSources, named: Mapping[str, ColumnSources], config: MapConfig
) -> ColumnSources:
    out = ColumnSources(dict(current.deps), current.rest)
    for column, expression in config.mappings.items():
        deps: set[Dep] = set()
        for name in referenced_columns(expression):
            deps |= out.of(name)
        out.deps[column] = deps
    return out


def _aggregate_lineage(
    current: ColumnSources, named: Mapping[str, ColumnSources], config: AggregateConfig
) -> ColumnSources:
    kept = {k: current.of(k) for k in config.group_by}
    for out, (column, _function) in config.aggregations.items():
        kept[out] = current.of(column)
    return ColumnSources(kept)


def _join_lineage(
    current: ColumnSources, named: Mapping[str, ColumnSources], config: JoinConfig
) -> ColumnSources:
    left, right = named.get(config.left, current), named.get(config.right, current)
    pairs = config.key_pairs()
    if config.how in ("semi", "anti"):
        matched: set[Dep] = set()
        for lkey, rkey in pairs:
            matched |= left.of(lkey) | right.of(rkey)
        return ColumnSources({name: deps | matched for name, deps in left.deps.items()},
                             left.rest)
    merged = {lk for lk, rk in pairs if lk == rk}
    out = ColumnSources()
    for key in merged:
        out.deps[key] = left.of(key) | right.of(key)
    for side, other, suffix in ((left, right, config.suffixes[0]),
                                (right, left, config.suffixes[1])):
        for name, deps in side.deps.items():
            if name in merged:
                continue
            clash = name in other.deps and name not in merged
            out.deps[name + suffix if clash else name] = set(deps)
    return out


def _pivot_lineage(
    current: ColumnSources, named: Mapping[str, ColumnSources], config: PivotConfig
) -> ColumnSources:
    kept = {k: current.of(k) for k in config.index}
    return ColumnSources(kept, current.of(config.columns) | current.of(config.values))


def _custom_code_lineage(
    current: ColumnSources, named: Mapping[str, ColumnSources], config: CustomCodeConfig
) -> ColumnSources:
    everything = current.everything()
    for frame in named.values():
        everything |= frame.everything()
    return ColumnSources({}, everything)


def _window_lineage(
    current: ColumnSources, named: Mapping[str, ColumnSources], config: WindowConfig
) -> ColumnSources:
    out = ColumnSources(dict(current.deps), current.rest)
    shared: set[Dep] = set()
    for name in (*config.partition_by, *config.order_by):
        shared |= current.of(name)
    for output, column in config.window_columns().items():
        out.deps[output] = shared | (current.of(column.column) if column.column else set())
    return out


def _select_lineage(
    current: ColumnSources, named: Mapping[str, ColumnSources], config: SelectConfig
) -> ColumnSources:
    kept = {out: current.of(name) for name, out in config.outputs(list(current.deps))}
    # columns known only from the data pass a drop, not a list of columns to keep
    return ColumnSources(kept, current.rest if config.columns is None else None)


# ----------------------------------------------------------------------------- the table
_T = TransformationType

STEP_KINDS: dict[TransformationType, StepKind] = {
    _T.FILTER: StepKind(
        FilterConfig, filter_sql, _same_columns, portable=True, expressions=_filter_expressions
    ),
    _T.MAP: StepKind(MapConfig, map_sql, _map_lineage, portable=True,
                     expressions=_map_expressions),
    _T.AGGREGATE: StepKind(AggregateConfig, aggregate_sql, _aggregate_lineage, ordered=True,
                           columns=_aggregate_columns),
    _T.SORT: StepKind(SortConfig, sort_sql, _same_columns, ordered=True, columns=_sort_columns),
    _T.DEDUPLICATE: StepKind(DeduplicateConfig, deduplicate_sql, _same_columns, ordered=True,
                             columns=_deduplicate_columns),
    _T.PIVOT: StepKind(
        PivotConfig, pivot_sql, _pivot_lineage, ordered=True, columns_from_data=True,
        columns=_pivot_columns,
    ),
    _T.JOIN: StepKind(JoinConfig, join_sql, _join_lineage, inputs=_join_inputs, ordered=True,
                      columns=_join_columns),
    _T.CUSTOM_CODE: StepKind(CustomCodeConfig, None, _custom_code_lineage),
    _T.WINDOW: StepKind(WindowConfig, window_sql, _window_lineage, ordered=True),
    _T.SELECT: StepKind(SelectConfig, select_sql, _select_lineage),
}
"""TransformationType -> its StepKind; every type has an entry."""


def step_kind(step: Transformation) -> StepKind:
    """The table entry of a step's transformation type."""
    return STEP_KINDS[step.transformation_type]


def step_reads(step: Transformation) -> dict[tuple[str, ...], str]:
    """Where in the step (field path) each named input it reads is given: a join's
    ``("config", "left")``/``("config", "right")``, or ``("input",)``; empty when the step
    reads the step before it.

    Example:
        >>> step_reads(Transformation(name="m", transformation_type="map", input="orders",
        ...                           config={"mappings": {"x": "1"}}))
        {('input',): 'orders'}
    """
    reads = {("config", side): name for side, name in step_kind(step).inputs(step.config).items()}
    if step.input is not None:
        reads[("input",)] = step.input
    return reads
