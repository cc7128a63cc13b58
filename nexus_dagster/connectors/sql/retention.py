"""``delete_where``: retention on a database target, run in the load's transaction.

The condition is the project's expression language compiled against the target table's
columns (literals bound, identifiers quoted), never SQL text from the spec.

Example:
    >>> delete_where(connection, orders, "order_date < '2024-01-01'")  # doctest: +SKIP
    12
"""

from __future__ import annotations

import sqlalchemy as sa

from nexus_dagster.errors import ExpressionError, LoadError
from nexus_dagster.transforms.expressions import compile_expression

__all__ = ["delete_where"]


def delete_where(connection: sa.Connection, target: sa.Table, expression: str) -> int:
    """DELETE the rows of ``target`` matching ``expression``; returns how many.

    Raises:
        LoadError: the expression names a column the table does not have, or does not
            compile.
    """
    try:
        condition = compile_expression(expression, {c.name: c for c in target.c},
                                       condition=True)
    except ExpressionError as exc:
        raise LoadError(
            f"delete_where {expression!r} on table {target.name!r}: {exc}; table columns: "
            f"{list(target.c.keys())}"
        ) from None
    return int(connection.execute(sa.delete(target).where(condition)).rowcount or 0)
