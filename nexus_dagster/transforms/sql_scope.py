"""What the SQL of one stage's steps shares: the results so far, their row order, fresh names.

A step's SQL is a SQLAlchemy subquery over the previous result (:class:`Node`). The step
functions (:mod:`nexus_dagster.transforms.step_sql`) get a :class:`SqlScope` that gives them the
current and the named results, fresh aliases and hidden key names, the visible columns, the
row-order clauses, and column/expression lookups whose errors name the step.
:class:`~nexus_dagster.transforms.sql_builder.SqlBuilder` is the scope that runs the steps.

Row order follows pandas: each result keeps the invariant "its order = ORDER BY its hidden
order keys" (see :class:`Node`).

Example:
    >>> import sqlalchemy as sa
    >>> scope = SqlScope({"src": sa.table("src", sa.column("a"))}, ["src"])
    >>> list(scope.columns(scope.current.table))
    ['a']
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.sql import FromClause
from sqlalchemy.sql.elements import ColumnElement

from nexus_dagster.errors import ExpressionError, TransformError
from nexus_dagster.spec.models import Transformation
from nexus_dagster.transforms.expressions import compile_expression

if TYPE_CHECKING:
    import duckdb
    from sqlalchemy.engine import Dialect

__all__ = [
    "CURRENT_INPUT",
    "HIDDEN_PREFIX",
    "ORDINAL",
    "Expr",
    "Node",
    "SqlScope",
    "compile_sql",
    "quote_identifier",
]

ORDINAL = "__nexus_ord"
"""The hidden row-order column of an input (never in an output)."""

HIDDEN_PREFIX = "__nexus_"
"""The prefix of hidden columns; input and output columns may not start with it."""

CURRENT_INPUT = "\x00current"
"""The logical input name of the data coming out of a custom_code step."""

Expr = ColumnElement[Any]


_PLAIN_IDENTIFIER = re.compile(r"^[A-Z0-9_]+$", re.I)


@cache
def _duckdb_dialect() -> Dialect:
    from nexus_dagster.transforms.duckdb_dialect import DuckDBDialect

    dialect = DuckDBDialect(paramstyle="qmark")
    # SQLAlchemy's default also leaves names with `$` unquoted; quoting every name that is not
    # plain letters, digits and `_` keeps the compiled SQL's identifiers all quoted or plain
    dialect.identifier_preparer.legal_characters = _PLAIN_IDENTIFIER
    return dialect


def compile_sql(stmt: sa.sql.ClauseElement) -> tuple[str, list[Any]]:
    """A statement as DuckDB SQL text with ``?`` placeholders, and its parameters in order."""
    compiled = stmt.compile(
        dialect=_duckdb_dialect(), compile_kwargs={"render_postcompile": True}
    )
    params = [compiled.params[name] for name in compiled.positiontup or ()]
    return str(compiled), params


def quote_identifier(name: str) -> str:
    """A name quoted as a DuckDB identifier where it needs quoting."""
    return _duckdb_dialect().identifier_preparer.quote(name)


@dataclass
class Node:
    """A step result: its table and the hidden columns that define its row order.

    ``order`` lists (column, ascending) pairs, nulls last; the last pair is unique per row, so
    the order is total. Steps that reorder rows (sort, aggregate, join) only add hidden key
    columns, and the stage ends with ONE ``ORDER BY`` over them: no window function and no
    second sort unless a step needs a single ordinal (first/last after a reordering step).
    """

    table: FromClause
    order: list[tuple[str, bool]]


class SqlScope:
    """The results of one stage so far, and the helpers every step's SQL uses.

    Args:
        bases: input name -> the table (or subquery) it reads.
        source_names: the job's source names, in spec order.
        con: the DuckDB connection of the stage (pivot reads distinct values through it);
            None when compiling for another database.
        previous_code: the name of the custom_code step whose result the stage starts from
            (its table is ``bases[CURRENT_INPUT]``).
        ordered: keep the input row order (hidden ordinal columns).

    Attributes:
        named: source or step name -> its result, for steps that read named inputs (join).
        steps: each step so far with its result's table, in order.
        counter: the last number used for an alias or hidden key.
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
        self.named: dict[str, Node] = {
            s: Node(bases[s], list(initial)) for s in source_names if s in bases
        }
        self._current: Node | None = None
        if previous_code is not None:
            self._current = Node(bases[CURRENT_INPUT], list(initial))
            self.named[previous_code] = self._current
        self.steps: list[tuple[Transformation, FromClause]] = []
        self.counter = 0

    @property
    def current(self) -> Node:
        """The data the next step reads: the last step's result, else the union of sources."""
        if self._current is None:
            self._current = self._union()
        return self._current

    def use(self, name: str) -> None:
        """Make the named result (a source or an earlier step) the data the next step reads."""
        self._current = self.named[name]

    def advance(self, step: Transformation, node: Node) -> None:
        """Record ``node`` as the result of ``step``: the current data and a named input."""
        self._current = node
        self.named[step.name] = node
        self.steps.append((step, node.table))

    def alias(self) -> str:
        """A fresh subquery alias."""
        self.counter += 1
        return f"t{self.counter}"

    def key(self) -> str:
        """A fresh hidden column name (for order keys)."""
        self.counter += 1
        return f"{HIDDEN_PREFIX}k{self.counter}"

    def _union(self) -> Node:
        tables = [self.bases[s] for s in self.source_names if s in self.bases]
        order = [(ORDINAL, True)] if self.ordered else []
        if len(tables) == 1:
            return Node(tables[0], order)
        types: dict[str, Any] = {}
        for table in tables:
            for column in table.c:
                if not column.name.startswith(HIDDEN_PREFIX):
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
        return Node(sa.union_all(*branches).subquery(self.alias()), order)

    @staticmethod
    def columns(table: FromClause) -> dict[str, Expr]:
        """The visible (not hidden) columns of a table, by name."""
        return {c.name: c for c in table.c if not c.name.startswith(HIDDEN_PREFIX)}

    @staticmethod
    def order_columns(node: Node, table: FromClause | None = None) -> list[Expr]:
        """The hidden order columns of ``node`` (read from ``table``, an alias of it)."""
        table = node.table if table is None else table
        return [table.c[name] for name, _ in node.order]

    @staticmethod
    def order_by(node: Node, table: FromClause | None = None, reverse: bool = False) -> list[Any]:
        """``ORDER BY`` clauses for ``node``'s order (nulls last), or its reverse."""
        table = node.table if table is None else table
        clauses = []
        for name, ascending in node.order:
            column = table.c[name]
            if reverse:
                clauses.append((column.desc() if ascending else column.asc()).nulls_first())
            else:
                clauses.append((column.asc() if ascending else column.desc()).nulls_last())
        return clauses

    def single_ordinal(self, node: Node) -> tuple[Node, Expr]:
        """The node with one ascending ordinal column (numbering rows if needed)."""
        if len(node.order) == 1 and node.order[0][1]:
            return node, node.table.c[node.order[0][0]]
        key = self.key()
        if node.order:
            number = sa.func.row_number().over(order_by=self.order_by(node))
        else:
            number = sa.func.row_number().over()
        table = sa.select(*self.columns(node.table).values(), number.label(key)).subquery(
            self.alias()
        )
        return Node(table, [(key, True)]), table.c[key]

    @staticmethod
    def column(table: FromClause, name: str, step: Transformation, what: str) -> Expr:
        """The visible column ``name``; a TransformError naming the step when it is missing.

        Args:
            table: the table to look in.
            name: the column the step's config names.
            step: the step, for the message.
            what: the config field the name comes from (``group_by``, ``sort`` ...).
        """
        columns = {c.name: c for c in table.c if not c.name.startswith(HIDDEN_PREFIX)}
        if name not in columns:
            raise TransformError(
                f"transformation {step.name!r} ({step.transformation_type.value}): "
                f"unknown {what} column {name!r}; available columns: " + ", ".join(columns)
            )
        return columns[name]

    @staticmethod
    def expression(
        step: Transformation, text: str, columns: Mapping[str, Expr], condition: bool
    ) -> Expr:
        """A spec expression compiled over ``columns``; its ExpressionError names the step."""
        try:
            return compile_expression(text, columns, condition=condition)
        except ExpressionError as exc:
            raise ExpressionError(
                exc.expression, f"{exc.reason} (transformation {step.name!r})"
            ) from None

    @staticmethod
    def check_names(step: Transformation, names: list[str]) -> None:
        """Refuse output names that are hidden or repeated."""
        seen: set[str] = set()
        for name in names:
            if name.startswith(HIDDEN_PREFIX):
                raise TransformError(
                    f"transformation {step.name!r}: column names starting with "
                    f"{HIDDEN_PREFIX!r} are reserved ({name!r})"
                )
            if name in seen:
                raise TransformError(
                    f"transformation {step.name!r} would produce two columns named {name!r}"
                )
            seen.add(name)
