"""The SQL of each built-in step: a function ``(scope, step, config) -> Node`` per type.

Each function reads the scope's current (or named) results and returns the step's result as a
subquery with its hidden order keys (see :class:`~nexus_dagster.transforms.sql_scope.Node`).
The step table (:mod:`nexus_dagster.transforms.steps`) says which function a type uses.

Example:
    >>> import sqlalchemy as sa
    >>> from nexus_dagster.spec.models import Transformation
    >>> scope = SqlScope({"src": sa.table("src", sa.column("a", sa.Integer()))}, ["src"])
    >>> step = Transformation(name="big", transformation_type="filter",
    ...                       config={"condition": "a > 1"})
    >>> node = filter_sql(scope, step, step.config)
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.sql import FromClause

from nexus_dagster.errors import TransformError
from nexus_dagster.spec.models import (
    AggregateConfig,
    DeduplicateConfig,
    FilterConfig,
    JoinConfig,
    MapConfig,
    PivotConfig,
    SortConfig,
    Transformation,
)
from nexus_dagster.transforms.aggregate_functions import aggregate_function, pivot_function
from nexus_dagster.transforms.sql_scope import (
    HIDDEN_PREFIX,
    Expr,
    Node,
    SqlScope,
    compile_sql,
    quote_identifier,
)

__all__ = [
    "aggregate_sql",
    "deduplicate_sql",
    "filter_sql",
    "join_sql",
    "map_sql",
    "pivot_sql",
    "sort_sql",
]

_RN = f"{HIDDEN_PREFIX}rn"


def filter_sql(scope: SqlScope, step: Transformation, config: FilterConfig) -> Node:
    """The rows where ``condition`` holds, in their order."""
    node = scope.current
    table = node.table
    condition = scope.expression(step, config.condition, scope.columns(table), True)
    columns = [*scope.columns(table).values(), *scope.order_columns(node)]
    return Node(sa.select(*columns).where(condition).subquery(scope.alias()), node.order)


def map_sql(scope: SqlScope, step: Transformation, config: MapConfig) -> Node:
    """New or replaced columns, each expression seeing the ones before it."""
    node = scope.current
    exprs = scope.columns(node.table)
    for name, text in config.mappings.items():
        scope.check_names(step, [name])
        exprs[name] = scope.expression(step, text, exprs, False)
    columns = [e.label(n) for n, e in exprs.items()] + scope.order_columns(node)
    return Node(sa.select(*columns).subquery(scope.alias()), node.order)


def aggregate_sql(scope: SqlScope, step: Transformation, config: AggregateConfig) -> Node:
    """One row per group, ordered by the group keys (pandas ``groupby().agg()``)."""
    node = scope.current
    for name in config.group_by:
        scope.column(node.table, name, step, "group_by")
    for column_name, _ in config.aggregations.values():
        scope.column(node.table, column_name, step, "aggregated")
    scope.check_names(step, [*config.group_by, *config.aggregations])
    functions = {f for _, f in config.aggregations.values()}
    ordinal: Expr | None = None
    if functions & {"first", "last"}:
        node, ordinal = scope.single_ordinal(node)
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
                    f"{HIDDEN_PREFIX}nu{i}"
                )
            )
        table = sa.select(*table.c, *marks).subquery(scope.alias())
        if ordinal is not None:
            ordinal = table.c[ordinal.name]
    keys = [table.c[k] for k in config.group_by]
    outputs = []
    for output, (column_name, function) in config.aggregations.items():
        if function == "nunique":
            mark = table.c[f"{HIDDEN_PREFIX}nu{distinct.index(column_name)}"]
            outputs.append(sa.func.count(mark, type_=sa.BigInteger()).label(output))
            continue
        column = table.c[column_name]
        outputs.append(aggregate_function(function, column, ordinal).label(output))
    copies = [(k.label(scope.key()), k) for k in keys]  # the sort keys of the groups
    stmt = sa.select(*keys, *outputs, *[c for c, _ in copies])
    if keys:
        stmt = stmt.group_by(*keys)
    return Node(stmt.subquery(scope.alias()), [(c.name, True) for c, _ in copies])


def sort_sql(scope: SqlScope, step: Transformation, config: SortConfig) -> Node:
    """A stable sort: new key columns in front of the previous order keys."""
    node = scope.current
    flags = (
        config.ascending
        if isinstance(config.ascending, list)
        else [config.ascending] * len(config.columns)
    )
    copies = []
    order = []
    for name, ascending in zip(config.columns, flags, strict=True):
        key = scope.key()
        copies.append(scope.column(node.table, name, step, "sort").label(key))
        order.append((key, bool(ascending)))
    # stable: ties keep their previous order (the old keys follow the new ones)
    columns = [*scope.columns(node.table).values(), *copies, *scope.order_columns(node)]
    return Node(sa.select(*columns).subquery(scope.alias()), order + node.order)


def deduplicate_sql(scope: SqlScope, step: Transformation, config: DeduplicateConfig) -> Node:
    """The first (or last) row of each ``subset`` value, in the previous order."""
    node = scope.current
    table = node.table
    subset = config.subset or list(scope.columns(table))
    keys = [scope.column(table, name, step, "subset") for name in subset]
    order = scope.order_by(node, reverse=config.keep == "last") or None
    number = sa.func.row_number().over(partition_by=keys, order_by=order)
    kept = [*scope.columns(table).values(), *scope.order_columns(node)]
    inner = sa.select(*kept, number.label(_RN)).subquery(scope.alias())
    outer = sa.select(*[inner.c[c.name] for c in kept]).where(
        inner.c[_RN] == sa.literal_column("1")
    )
    return Node(outer.subquery(scope.alias()), node.order)


def join_sql(scope: SqlScope, step: Transformation, config: JoinConfig) -> Node:
    """Two named results joined like pandas ``merge`` (order and names), or filtered by
    matches (semi/anti: the left rows with/without a match, in their order)."""
    lnode, rnode = scope.named[config.left], scope.named[config.right]
    left = lnode.table.alias(scope.alias())
    right = rnode.table.alias(scope.alias())
    lcols, rcols = scope.columns(left), scope.columns(right)
    pairs = config.key_pairs()
    for lkey, rkey in pairs:
        for side, key, cols in ((config.left, lkey, lcols), (config.right, rkey, rcols)):
            if key not in cols:
                raise TransformError(
                    f"transformation {step.name!r} (join): key {key!r} is not a column of "
                    f"{side!r}; its columns: " + ", ".join(cols)
                )
    condition = sa.and_(*[lcols[lk] == rcols[rk] for lk, rk in pairs]) if pairs else sa.true()
    if config.how in ("semi", "anti"):
        # NOT EXISTS, not NOT IN: a NULL on the right must not hide every left row
        match = sa.select(sa.literal_column("1")).select_from(right).where(condition).exists()
        kept = [*lcols.values(), *scope.order_columns(lnode, left)]
        stmt = sa.select(*kept).where(match if config.how == "semi" else ~match)
        return Node(stmt.subquery(scope.alias()), list(lnode.order))
    merged = {lk for lk, rk in pairs if lk == rk}  # same name on both sides: one column
    clash = (set(lcols) & set(rcols)) - merged
    out: list[Expr] = []
    names: list[str] = []
    for name, column in lcols.items():
        if name in merged:
            if config.how == "right":
                column = rcols[name]
            elif config.how == "outer":
                column = sa.func.coalesce(column, rcols[name], type_=column.type)
            out.append(column.label(name))
            names.append(name)
        else:
            label = name + config.suffixes[0] if name in clash else name
            out.append(column.label(label))
            names.append(label)
    for name, column in rcols.items():
        if name in merged:
            continue
        label = name + config.suffixes[1] if name in clash else name
        out.append(column.label(label))
        names.append(label)
    scope.check_names(step, names)

    def carry(node: Node, table: FromClause) -> list[tuple[str, bool]]:
        order = []
        for name, ascending in node.order:
            key = scope.key()
            out.append(table.c[name].label(key))
            order.append((key, ascending))
        return order

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
            for lkey, rkey in pairs:
                name = scope.key()
                key = sa.func.coalesce(lcols[lkey], rcols[rkey], type_=lcols[lkey].type)
                out.append(key.label(name))
                order.append((name, True))
        order += carry(lnode, left) + carry(rnode, right)
    stmt = sa.select(*out).select_from(joined)
    return Node(stmt.subquery(scope.alias()), order)


def pivot_sql(scope: SqlScope, step: Transformation, config: PivotConfig) -> Node:
    """Long to wide; reads the distinct ``columns`` values through the scope's connection."""
    node = scope.current
    index = [scope.column(node.table, n, step, "index").name for n in config.index]
    pivot_name = scope.column(node.table, config.columns, step, "columns").name
    values_name = scope.column(node.table, config.values, step, "values").name
    if config.aggfunc in ("first", "last"):
        node, _ = scope.single_ordinal(node)
    if scope.con is None:
        raise TransformError(
            f"transformation {step.name!r} (pivot) runs in DuckDB only: its columns come from "
            "the data"
        )
    # Read the data once into a temporary table (spillable): it is scanned twice.
    temp = f"{HIDDEN_PREFIX}pivot_{scope.counter}_{step.name}"
    sql, params = compile_sql(sa.select(*node.table.c))
    scope.con.execute(f"CREATE TEMP TABLE {quote_identifier(temp)} AS {sql}", params)
    table = sa.table(temp, *[sa.column(c.name, c.type) for c in node.table.c])
    pivot_col = table.c[pivot_name]
    sql, params = compile_sql(
        sa.select(pivot_col)
        .distinct()
        .where(pivot_col.is_not(None))
        .order_by(pivot_col)
        .limit(config.max_columns + 1)
    )
    distinct = [row[0] for row in scope.con.execute(sql, params).fetchall()]
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
        agg = pivot_function(config.aggfunc, values, ordinal, match)
        if config.fill_value is not None:
            agg = sa.func.coalesce(agg, sa.literal(config.fill_value), type_=agg.type)
        name = str(value)
        outputs.append(agg.label(name))
        names.append(name)
    scope.check_names(step, names)
    copies = [k.label(scope.key()) for k in keys]
    stmt = sa.select(*keys, *outputs, *copies).group_by(*keys)
    return Node(stmt.subquery(scope.alias()), [(c.name, True) for c in copies])
