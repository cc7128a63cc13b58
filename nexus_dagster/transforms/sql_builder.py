"""The SQL of one stage: its steps as nested SQLAlchemy subqueries, one per step.

Each step compiles through its entry in the step table (:mod:`nexus_dagster.transforms.steps`);
the result is one ``SELECT`` of the visible columns, ordered by the hidden order keys when the
stage keeps row order. Without a DuckDB connection the statement can be compiled for another
database (the PostgreSQL COPY pipe, :mod:`nexus_dagster.run.pg_pipe`).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import Select

from nexus_dagster.errors import TransformError
from nexus_dagster.spec.models import Transformation
from nexus_dagster.transforms.sql_scope import (
    HIDDEN_PREFIX,
    Node,
    SqlScope,
    compile_sql,
    quote_identifier,
)
from nexus_dagster.transforms.steps import step_kind

__all__ = ["SqlBuilder"]


class SqlBuilder(SqlScope):
    """Builds the SQL of one stage as nested subqueries, one per step.

    ``SqlBuilder(bases, source_names, *, con=None, previous_code=None, ordered=False)``: the
    arguments are :class:`~nexus_dagster.transforms.sql_scope.SqlScope`'s.

    Example:
        >>> import sqlalchemy as sa
        >>> from nexus_dagster.spec.models import Transformation
        >>> src = sa.table("src", sa.column("a", sa.Integer()))
        >>> step = Transformation(name="big", transformation_type="filter",
        ...                       config={"condition": "a > 1"})
        >>> print(SqlBuilder({"src": src}, ["src"]).build([step]))  # doctest: +NORMALIZE_WHITESPACE
        SELECT t1.a FROM (SELECT src.a AS a FROM src WHERE src.a > :param_1) AS t1
    """

    def build(self, steps: list[Transformation], keep: Collection[str] = ()) -> Select[Any]:
        """The stage's ``SELECT``: every step applied in order (no custom_code step).

        Args:
            steps: the stage's steps.
            keep: steps whose results are computed once into a temporary table (they are
                read again: by a target, see :meth:`kept_select`); needs the DuckDB connection.
        """
        self.kept: dict[str, Node] = {}
        for step in steps:
            sql = step_kind(step).sql
            if sql is None:  # pragma: no cover - custom code never reaches the SQL builder
                raise TransformError(f"transformation {step.name!r} cannot run in SQL")
            if step.input is not None:
                self.use(step.input)
            node = sql(self, step, step.config)
            if step.name in keep:
                node = self._keep(step, node)
            self.advance(step, node)
        return self._select(self.current)

    def kept_select(self, name: str) -> Select[Any]:
        """The ``SELECT`` of a kept step's result (its temporary table), in its row order."""
        return self._select(self.kept[name])

    def _select(self, node: Node) -> Select[Any]:
        stmt = sa.select(*self.columns(node.table).values())
        if self.ordered and node.order:
            stmt = stmt.order_by(*self.order_by(node))
        return stmt

    def _keep(self, step: Transformation, node: Node) -> Node:
        if self.con is None:
            raise TransformError(f"transformation {step.name!r}: kept results need DuckDB")
        temp = f"{HIDDEN_PREFIX}kept_{self.counter}_{step.name}"
        sql, params = compile_sql(sa.select(*node.table.c))
        self.con.execute(f"CREATE TEMP TABLE {quote_identifier(temp)} AS {sql}", params)
        table = sa.table(temp, *[sa.column(c.name, c.type) for c in node.table.c])
        self.kept[step.name] = Node(table, node.order)
        return self.kept[step.name]

    def blame(self, exc: Exception) -> None:
        """Find the first step whose SQL fails (on empty inputs) and raise naming it.

        Args:
            exc: the error of the whole statement (returns when no single step fails).
        """
        if self.con is None:
            return
        import duckdb  # loaded already: self.con is a DuckDB connection

        for step, table in self.steps:
            sql, params = compile_sql(sa.select(*table.c).limit(0))
            try:
                self.con.execute(sql, params)
            except duckdb.Error as step_exc:
                raise TransformError(
                    f"transformation {step.name!r} ({step.transformation_type.value}) "
                    f"does not fit the data: {step_exc}"
                ) from step_exc
