"""Aggregate functions in SQL with pandas semantics, for the aggregate and pivot steps.

``sum`` of nothing is 0 (aggregate) and ``first``/``last`` skip nulls and follow row order,
as in pandas; booleans are summed and averaged as integers.

Example:
    >>> import sqlalchemy as sa
    >>> amount = sa.column("amount", sa.Integer())
    >>> str(aggregate_function("count", amount, None))
    'count(amount)'
"""

from __future__ import annotations

import sqlalchemy as sa

from nexus_dagster.errors import TransformError
from nexus_dagster.transforms.sql_scope import Expr

__all__ = ["aggregate_function", "pivot_function"]


def _numeric_input(column: Expr) -> Expr:
    if isinstance(column.type, sa.Boolean):
        return sa.cast(column, sa.BigInteger())
    return column


def aggregate_function(function: str, column: Expr, ordinal: Expr | None) -> Expr:
    """One aggregation of the aggregate step (every function but ``nunique``).

    Args:
        function: a name of ``AGGREGATE_FUNCTIONS`` (spec models).
        column: the aggregated column.
        ordinal: the single ascending row-order column (needed by ``first``/``last``).
    """
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


def pivot_function(function: str, values: Expr, ordinal: Expr | None, match: Expr) -> Expr:
    """The pivot step's ``aggfunc`` over the rows where ``match`` holds (one output column).

    Args:
        function: the pivot's ``aggfunc``.
        values: the pivot's ``values`` column.
        ordinal: the single ascending row-order column (needed by ``first``/``last``).
        match: the condition selecting the rows of one output column.
    """
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
