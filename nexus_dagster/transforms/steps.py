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
* join: keys come from both sides, clashing names get the join's suffixes;
* pivot: the index keeps its lineage, every pivoted column depends on ``columns`` and
  ``values`` (their names are only known from the data);
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
from nexus_dagster.transforms.expressions import referenced_columns
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

__all__ = ["STEP_KINDS", "ColumnSources", "Dep", "StepExpression", "StepKind", "step_kind"]

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
    """

    config: type[BaseModel]
    sql: SqlFunction | None
    lineage: LineageFunction
    portable: bool = False
    expressions: Callable[[Any], list[StepExpression]] = _no_expressions
    inputs: Callable[[Any], dict[str, str]] = _no_inputs
    ordered: bool = False
    columns_from_data: bool = False


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
    out = ColumnSources()
    for key in config.on:
        out.deps[key] = left.of(key) | right.of(key)
    for side, other, suffix in ((left, right, config.suffixes[0]),
                                (right, left, config.suffixes[1])):
        for name, deps in side.deps.items():
            if name in config.on:
                continue
            out.deps[name + suffix if name in other.deps else name] = set(deps)
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


# ----------------------------------------------------------------------------- the table
_T = TransformationType

STEP_KINDS: dict[TransformationType, StepKind] = {
    _T.FILTER: StepKind(
        FilterConfig, filter_sql, _same_columns, portable=True, expressions=_filter_expressions
    ),
    _T.MAP: StepKind(MapConfig, map_sql, _map_lineage, portable=True,
                     expressions=_map_expressions),
    _T.AGGREGATE: StepKind(AggregateConfig, aggregate_sql, _aggregate_lineage, ordered=True),
    _T.SORT: StepKind(SortConfig, sort_sql, _same_columns, ordered=True),
    _T.DEDUPLICATE: StepKind(DeduplicateConfig, deduplicate_sql, _same_columns, ordered=True),
    _T.PIVOT: StepKind(
        PivotConfig, pivot_sql, _pivot_lineage, ordered=True, columns_from_data=True
    ),
    _T.JOIN: StepKind(JoinConfig, join_sql, _join_lineage, inputs=_join_inputs, ordered=True),
    _T.CUSTOM_CODE: StepKind(CustomCodeConfig, None, _custom_code_lineage),
}
"""TransformationType -> its StepKind; every type has an entry."""


def step_kind(step: Transformation) -> StepKind:
    """The table entry of a step's transformation type."""
    return STEP_KINDS[step.transformation_type]
