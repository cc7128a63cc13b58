"""The compile-only DuckDB dialect: DuckDB's reserved words, and the same SQL as
``duckdb_engine``'s dialect (which opens two DuckDB databases when imported and made)."""

from __future__ import annotations

import re

import duckdb
import sqlalchemy as sa
from duckdb_engine import Dialect as EngineDialect

from nexus_dagster.transforms.duckdb_dialect import DUCKDB_RESERVED_WORDS, DuckDBDialect
from nexus_dagster.transforms.sql_builder import SqlBuilder
from nexus_dagster.transforms.sql_scope import ORDINAL
from tests.unit.transforms.helpers import step


def test_reserved_words_are_the_installed_duckdbs() -> None:
    rows = duckdb.sql("SELECT keyword_name FROM duckdb_keywords() "
                      "WHERE keyword_category = 'reserved'").fetchall()
    assert {name for (name,) in rows} == DUCKDB_RESERVED_WORDS


def test_a_chain_compiles_to_the_same_sql_and_parameters_as_duckdb_engines_dialect() -> None:
    columns = {"id": sa.BigInteger(), "order": sa.String(), "qualify": sa.Numeric(12, 2),
               "Mixed Case": sa.Double(), "a$b": sa.Date(), "pivot": sa.Boolean(),
               ORDINAL: sa.BigInteger()}
    orders = sa.table("orders", *[sa.column(n, t) for n, t in columns.items()])
    people = sa.table("people", sa.column("id", sa.BigInteger()),
                      sa.column("select", sa.String()), sa.column(ORDINAL, sa.BigInteger()))
    steps = [
        step("kept", "filter", condition='order != "x" and qualify / 3 > 1.5 and pivot '
             'and `a$b` >= to_date("2024-01-01") and id in [1, 2, 3]'),
        step("joined", "join", left="kept", right="people", left_on="id", right_on="id"),
        step("priced", "map", mappings={"half": "`Mixed Case` / 2", "floor": "id // 4",
                                        "label": 'order + "-" + str(id)'}),
        step("ranked", "window", order_by=["half"], ascending=[False],
             columns={"position": ["row_number"]}),
        step("unique", "deduplicate", subset=["order"], keep="last"),
        step("totals", "aggregate", group_by=["order"],
             aggregations={"total": ["qualify", "sum"], "n": ["id", "size"],
                           "mean": ["half", "mean"]}),
        step("ordered", "sort", columns=["total", "order"], ascending=[False, True]),
    ]
    stmt = SqlBuilder({"orders": orders, "people": people}, ["orders", "people"],
                      ordered=True).build(steps)
    compiled = []
    for dialect in (EngineDialect(paramstyle="qmark"), DuckDBDialect(paramstyle="qmark")):
        dialect.identifier_preparer.legal_characters = re.compile(r"^[A-Z0-9_]+$", re.I)
        c = stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
        compiled.append((str(c), [c.params[k] for k in c.positiontup or ()]))
    assert '"order"' in compiled[1][0] and '"select"' in compiled[1][0]
    assert compiled[1] == compiled[0]
