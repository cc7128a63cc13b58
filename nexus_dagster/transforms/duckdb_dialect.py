"""The SQLAlchemy dialect the chain's statements are compiled with for DuckDB.

It compiles exactly as ``duckdb_engine``'s dialect (PostgreSQL's compiler, DuckDB's reserved
words quoted, ``/`` not a floor division) without what that package does when imported and
instantiated: it opens two DuckDB databases (one to probe comment support, one to read the
reserved words), ~0.1-0.2 s of every run that only compiles SQL text. The chain never connects
through SQLAlchemy, so nothing else of ``duckdb_engine`` is needed.

Example:
    >>> import sqlalchemy as sa
    >>> table = sa.table("t", sa.column("order"), sa.column("amount"))
    >>> sql = str(sa.select(table.c.order).compile(dialect=DuckDBDialect(paramstyle="qmark")))
    >>> " ".join(sql.split())
    'SELECT t."order" FROM t'
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import types as sqltypes
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.dialects.postgresql.base import PGDialect, PGIdentifierPreparer
from sqlalchemy.dialects.postgresql.psycopg2 import PGDialect_psycopg2

__all__ = ["DUCKDB_RESERVED_WORDS", "DuckDBDialect"]

#: ``SELECT keyword_name FROM duckdb_keywords() WHERE keyword_category = 'reserved'`` (DuckDB
#: 2.0; a test compares it with the installed DuckDB)
DUCKDB_RESERVED_WORDS = frozenset({
    "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric", "both",
    "case", "cast", "check", "collate", "column", "constraint", "create", "default",
    "deferrable", "desc", "describe", "distinct", "do", "else", "end", "except", "false",
    "fetch", "for", "foreign", "from", "group", "having", "in", "initially", "intersect",
    "into", "lambda", "lateral", "leading", "limit", "not", "null", "offset", "on", "only",
    "or", "order", "pivot", "pivot_longer", "pivot_wider", "placing", "primary", "qualify",
    "references", "returning", "select", "show", "some", "summarize", "symmetric", "table",
    "then", "to", "trailing", "true", "union", "unique", "unpivot", "using", "variadic",
    "when", "where", "window", "with",
})  # fmt: skip


class DuckDBIdentifierPreparer(PGIdentifierPreparer):
    """PostgreSQL's identifier quoting, with DuckDB's reserved words quoted too."""

    def __init__(self, dialect: Any, **kwargs: Any) -> None:
        super().__init__(dialect, **kwargs)
        self.reserved_words = self.reserved_words | DUCKDB_RESERVED_WORDS


class DuckDBDialect(PGDialect_psycopg2):
    """A compile-only DuckDB dialect (the compile settings of ``duckdb_engine.Dialect``)."""

    name = "duckdb"
    driver = "nexus"
    supports_statement_cache = False
    supports_comments = True
    supports_sane_rowcount = False
    supports_server_side_cursors = False
    div_is_floordiv = False
    # PostgreSQL's types, not psycopg2's (whose Numeric handles PostgreSQL's type codes)
    colspecs = {**PGDialect.colspecs, sqltypes.Numeric: sqltypes.Numeric,
                sqltypes.JSON: sqltypes.JSON, UUID: UUID}
    preparer = DuckDBIdentifierPreparer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["use_native_hstore"] = False
        super().__init__(*args, **kwargs)
