"""The SQL of the ``select`` step: keep/reorder or drop, rename and cast columns, in one SELECT.

Casts follow DuckDB's ``CAST`` (a value that does not convert fails the run with the step's
name); ``int`` truncates toward zero like pandas ``astype("int64")``.

Example:
    >>> import sqlalchemy as sa
    >>> from nexus_dagster.spec.models import Transformation
    >>> from nexus_dagster.transforms.sql_scope import SqlScope
    >>> src = sa.table("src", sa.column("a", sa.Integer()), sa.column("b", sa.String()))
    >>> step = Transformation(name="s", transformation_type="select",
    ...                       config={"drop": ["b"], "rename": {"a": "id"}})
    >>> list(select_sql(SqlScope({"src": src}, ["src"]), step, step.config).table.c.keys())
    ['id']
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from nexus_dagster.errors import TransformError
from nexus_dagster.spec.models import Transformation
from nexus_dagster.spec.select_config import SelectConfig
from nexus_dagster.transforms.expression_functions import is_inexact
from nexus_dagster.transforms.sql_scope import Expr, Node, SqlScope

__all__ = ["select_sql"]

_TYPES: dict[str, Any] = {
    "int": sa.BigInteger,
    "bigint": sa.BigInteger,
    "double": sa.Double,
    "float": sa.Double,
    "string": sa.String,
    "bool": sa.Boolean,
    "date": sa.Date,
    "timestamp": sa.DateTime,
}


def _cast(column: Expr, target: tuple[Any, ...]) -> Expr:
    if target[0] == "decimal":
        return sa.cast(column, sa.Numeric(target[1], target[2]))
    type_ = _TYPES[target[0]]()
    if isinstance(type_, sa.Integer) and is_inexact(column):
        column = sa.func.trunc(column, type_=column.type)  # pandas astype truncates
    return sa.cast(column, type_)


def select_sql(scope: SqlScope, step: Transformation, config: SelectConfig) -> Node:
    """The kept columns, renamed and cast, in the configured order; rows unchanged."""
    node = scope.current
    available = scope.columns(node.table)
    for field, names in (
        ("columns", config.columns or []),
        ("drop", config.drop),
        ("rename", list(config.rename)),
        ("cast", list(config.cast)),
    ):
        for name in names:
            scope.column(node.table, name, step, field)
    casts = config.cast_types()
    outputs = config.outputs(list(available))
    names = [out for _, out in outputs]
    scope.check_names(step, names)
    if not outputs:
        raise TransformError(
            f"transformation {step.name!r} (select) drops every column; keep at least one"
        )
    columns = []
    for name, out in outputs:
        column = available[name]
        if name in casts:
            column = _cast(column, casts[name])
        columns.append(column.label(out))
    columns += scope.order_columns(node)
    return Node(sa.select(*columns).subquery(scope.alias()), node.order)
