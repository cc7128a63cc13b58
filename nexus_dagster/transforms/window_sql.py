"""The SQL of the ``window`` step: DuckDB window functions with pandas semantics.

Every output is one window expression over ``PARTITION BY partition_by``; rows keep their order
(like pandas ``groupby().transform``/``shift``/``cumsum``/``rolling``), so the step adds
columns and nothing else. Within a partition, rows are ordered by ``order_by`` and then by
their row order (ties keep their order, as pandas' stable sort does); without ``order_by`` the
row order is the window order.

Semantics (each checked against pandas in the unit tests):

* ``lag``/``lead`` = ``shift(n)``/``shift(-n)`` (``default`` fills where no row is);
* ``cumsum``/``cummin``/``cummax`` skip nulls and are null on a null row;
* ``rolling_*`` over N rows: null until ``min_periods`` (default N) non-null values are in the
  window; over a time range ``7d``: the rows whose order value is in (t - 7d, t], like
  ``rolling("7D")`` (default ``min_periods`` 1; rows with the same time are in each other's
  window, as in SQL);
* ``row_number`` numbers rows 1.. (ties by row order); ``rank``/``dense_rank``/``percent_rank``
  (= (rank - 1) / (rows - 1)) and ``ntile`` are SQL's; nulls sort last;
* ``first``/``last``: the partition's first/last non-null value in window order;
* ``sum``/``mean``/``std``/``var``/``min``/``max``/``count``/``median``/``quantile`` over the
  whole partition (``transform``); ``sum`` of nothing is 0;
* null partition keys form one partition (``groupby(dropna=False)``).

Example:
    >>> import sqlalchemy as sa
    >>> from nexus_dagster.spec.models import Transformation
    >>> from nexus_dagster.transforms.sql_scope import SqlScope
    >>> src = sa.table("src", sa.column("g", sa.String()), sa.column("x", sa.Integer()),
    ...                sa.column("__nexus_ord", sa.BigInteger()))
    >>> scope = SqlScope({"src": src}, ["src"], ordered=True)
    >>> step = Transformation(name="w", transformation_type="window",
    ...                       config={"partition_by": ["g"], "columns": {"t": ["x", "cumsum"]}})
    >>> node = window_sql(scope, step, step.config)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from nexus_dagster.errors import TransformError
from nexus_dagster.spec.models import Transformation
from nexus_dagster.spec.window_config import WindowColumn, WindowConfig
from nexus_dagster.transforms.sql_scope import Expr, Node, SqlScope

__all__ = ["window_sql"]

_RUNNING = {"cumsum": "sum", "cummin": "min", "cummax": "max"}
_ROLLING = {"rolling_sum": "sum", "rolling_mean": "avg", "rolling_min": "min",
            "rolling_max": "max"}


@dataclass
class _Window:
    """The clauses of one window step."""

    partition: list[Expr] | None
    order: list[Any]  # order_by keys (nulls last)
    reverse: list[Any]  # order_by keys reversed
    rows: list[Any]  # the row order (hidden keys)
    rows_reverse: list[Any]
    time_key: Expr | None


def window_sql(scope: SqlScope, step: Transformation, config: WindowConfig) -> Node:
    """The input rows, in their order, with one column per window output."""
    node = scope.current
    table = node.table
    partition = [scope.column(table, n, step, "partition_by") for n in config.partition_by]
    keys = [
        (scope.column(table, n, step, "order_by"), ascending)
        for n, ascending in zip(config.order_by, config.order_flags(), strict=True)
    ]
    specs = config.window_columns()
    time_key = None
    if any(spec.time_range is not None for spec in specs.values()):
        time_key = _epoch(step, keys[0][0])
    window = _Window(
        partition or None,
        [(c.asc() if a else c.desc()).nulls_last() for c, a in keys],
        [(c.desc() if a else c.asc()).nulls_first() for c, a in keys],
        scope.order_by(node),
        scope.order_by(node, reverse=True),
        time_key,
    )
    exprs = dict(scope.columns(table))
    for output, spec in specs.items():
        column = scope.column(table, spec.column, step, "window") if spec.column else None
        exprs[output] = _function(spec, column, window)
    scope.check_names(step, list(exprs))
    columns = [e.label(n) for n, e in exprs.items()] + scope.order_columns(node)
    return Node(sa.select(*columns).subquery(scope.alias()), node.order)


def _epoch(step: Transformation, key: Expr) -> Expr:
    """The order column as microseconds since the epoch (time ranges are measured on it)."""
    if isinstance(key.type, sa.DateTime):
        return sa.func.epoch_us(key, type_=sa.BigInteger())
    if isinstance(key.type, sa.Date):
        return sa.func.epoch_us(sa.cast(key, sa.DateTime()), type_=sa.BigInteger())
    raise TransformError(
        f"transformation {step.name!r} (window): a time range is measured on the order_by "
        f"column {key.name!r}, which must be a date or timestamp (it is {key.type}); use a "
        "number of rows instead, e.g. [amount, rolling_mean, 7]"
    )


def _numeric(column: Expr) -> Expr:
    if isinstance(column.type, sa.Boolean):
        return sa.cast(column, sa.BigInteger())
    return column


def _sum_type(value: Expr) -> Any:
    return sa.BigInteger() if isinstance(value.type, sa.Integer) else value.type


def _as_sum(total: Expr, value: Expr) -> Expr:
    # DuckDB sums integers into HUGEINT; pandas keeps int64
    return sa.cast(total, sa.BigInteger()) if isinstance(value.type, sa.Integer) else total


def _function(spec: WindowColumn, column: Expr | None, w: _Window) -> Expr:
    f, args = spec.function, spec.args
    order = w.order + w.rows
    if f == "row_number":
        return sa.func.row_number(type_=sa.BigInteger()).over(partition_by=w.partition,
                                                             order_by=order)
    if f in ("rank", "dense_rank"):
        return getattr(sa.func, f)(type_=sa.BigInteger()).over(partition_by=w.partition,
                                                              order_by=w.order)
    if f == "percent_rank":
        return sa.func.percent_rank(type_=sa.Double()).over(partition_by=w.partition,
                                                           order_by=w.order)
    if f == "ntile":
        buckets = sa.literal(args[0], sa.BigInteger())
        return sa.func.ntile(buckets, type_=sa.BigInteger()).over(partition_by=w.partition,
                                                                 order_by=order)
    assert column is not None
    if f in ("lag", "lead"):
        params = [column, sa.literal(args[0] if args else 1, sa.BigInteger())]
        if len(args) > 1 and args[1] is not None:
            params.append(sa.literal(args[1]))
        return getattr(sa.func, f)(*params, type_=column.type).over(
            partition_by=w.partition, order_by=order
        )
    if f in _RUNNING:
        value = _numeric(column) if f == "cumsum" else column
        running = getattr(sa.func, _RUNNING[f])(value, type_=_sum_type(value)).over(
            partition_by=w.partition, order_by=order, rows=(None, 0)
        )
        if f == "cumsum":
            running = _as_sum(running, value)
        return sa.type_coerce(sa.case((column.is_(None), sa.null()), else_=running),
                              running.type)
    if f in _ROLLING:
        return _rolling(spec, column, w)
    if f in ("first", "last"):
        # the first non-null value in window order: nulls sort after every value
        keys = order if f == "first" else w.reverse + w.rows_reverse
        return sa.func.first_value(column, type_=column.type).over(
            partition_by=w.partition, order_by=[column.is_(None), *keys], rows=(None, None)
        )
    return _whole_partition(f, args, column, w)


def _rolling(spec: WindowColumn, column: Expr, w: _Window) -> Expr:
    f, args = spec.function, spec.args
    value = _numeric(column)
    frame: dict[str, Any]
    if spec.time_range is not None:
        assert w.time_key is not None
        # (t - range, t], like pandas rolling("7D")
        frame = {"order_by": [w.time_key], "range_": (-(spec.time_range - 1), 0)}
        minimum = args[1] if len(args) > 1 else 1
    else:
        frame = {"order_by": w.order + w.rows, "rows": (-(args[0] - 1), 0)}
        minimum = args[1] if len(args) > 1 else args[0]
    name = _ROLLING[f]
    type_ = sa.Double() if name == "avg" else _sum_type(value) if name == "sum" else value.type
    result = getattr(sa.func, name)(value, type_=type_).over(partition_by=w.partition, **frame)
    if name == "sum":
        result = _as_sum(result, value)
        if minimum == 0:  # pandas: the sum of an all-null window is 0 with min_periods=0
            return sa.func.coalesce(result, sa.literal(0), type_=result.type)
    count = sa.func.count(column, type_=sa.BigInteger()).over(partition_by=w.partition, **frame)
    return sa.type_coerce(
        sa.case((count >= sa.literal(minimum, sa.BigInteger()), result)), result.type
    )


def _whole_partition(f: str, args: tuple[Any, ...], column: Expr, w: _Window) -> Expr:
    value = _numeric(column)
    double = sa.Double()
    over = {"partition_by": w.partition}
    if f == "sum":
        total = _as_sum(sa.func.sum(value, type_=_sum_type(value)).over(**over), value)
        return sa.func.coalesce(total, sa.literal(0), type_=total.type)
    if f == "count":
        return sa.func.count(column, type_=sa.BigInteger()).over(**over)
    if f in ("min", "max"):
        return getattr(sa.func, f)(column, type_=column.type).over(**over)
    if f == "mean":
        return sa.func.avg(value, type_=double).over(**over)
    if f == "std":
        return sa.func.stddev_samp(value, type_=double).over(**over)
    if f == "var":
        return sa.func.var_samp(value, type_=double).over(**over)
    if isinstance(value.type, sa.Integer):
        value = sa.cast(value, double)
    if f == "median":
        return sa.func.median(value, type_=value.type).over(**over)
    if f == "quantile":
        q = sa.literal(float(args[0]), double)
        return sa.func.quantile_cont(value, q, type_=value.type).over(**over)
    raise TransformError(f"unknown window function {f!r}")  # pragma: no cover - models check
