"""Fuzz: no expression or spec text reaches eval/exec, SQL text holds no literal and only
dialect-quoted identifiers, and every bad input is a clear ExpressionError or SpecProblem."""

from __future__ import annotations

import re

import duckdb
import pyarrow as pa
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus_dagster.errors import ExpressionError
from nexus_dagster.transforms.expressions import compile_expression, validate_expression
from nexus_dagster.transforms.sql_scope import compile_sql, quote_identifier
from tests.unit.security.guards import no_eval

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# quoted identifiers ("a ""b"""), then what may remain of compiled SQL: keywords, operators,
# ? placeholders and numbers. A quote, a semicolon or a comment marker would be a leak.
_QUOTED_IDENT = re.compile(r'"(?:[^"]|"")*"')
_SAFE_SQL = re.compile(r"[A-Za-z0-9_ (),.?*+\-/%<>=!|\n]*")


NASTY = st.sampled_from([
    "'; DROP TABLE t; --", '" OR 1=1 --', "\\'", "a`b", "$$x$$", "\x00", "é€😀", "?", "%s",
    ":param", "/* c */", "\n", "__import__('os').system('id')",
]) | st.text(max_size=12)

COLUMNS = st.lists(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="`\x00"),
            min_size=1, max_size=10),
    min_size=1, max_size=4, unique=True,
)

TOKENS = st.sampled_from(
    [*"abxyz_`'\"()[]{}+-*/%<>=!&|~.,:;\\0123456789 \n\t#@$",
     "and", "or", "not", "in", "is", "None", "lambda", "__import__", "if", "else", "**",
       "//", "f'", "b'", "r'", "lower(", ".isnull()", "'''", "open(", "__class__", "yield",
       "exec", "eval", "getattr(", ":=", "*a", "..."]
)


@FUZZ
@given(st.lists(TOKENS, max_size=40).map("".join))
def test_any_text_is_compiled_or_refused_clearly(text):
    with no_eval(text):
        try:
            validate_expression(text)
        except ExpressionError as exc:
            assert str(exc).startswith("expression ")


@st.composite
def expressions(draw, columns: list[str]):
    """A well-formed expression over ``columns`` with nasty string literals."""
    def leaf():
        if draw(st.booleans()):
            return "`" + draw(st.sampled_from(columns)) + "`"
        return repr(draw(NASTY))

    def build(depth: int) -> str:
        if depth == 0:
            return leaf()
        kind = draw(st.sampled_from(["cmp", "bool", "not", "concat", "in", "func", "if"]))
        if kind == "cmp":
            op = draw(st.sampled_from(["==", "!=", "<", ">=", "is not", "=="]))
            right = "None" if op == "is not" else build(depth - 1)
            return f"({build(depth - 1)} {op} {right})"
        if kind == "bool":
            return f"({build(depth - 1)} {draw(st.sampled_from(['and', 'or', '&', '|']))} " \
                   f"{build(depth - 1)})"
        if kind == "not":
            return f"(not ({build(depth - 1)}))"
        if kind == "concat":
            return f"({build(depth - 1)} + {build(depth - 1)})"
        if kind == "in":
            values = draw(st.lists(NASTY, min_size=1, max_size=3))
            return f"({build(depth - 1)} in [{', '.join(repr(v) for v in values)}])"
        if kind == "func":
            name = draw(st.sampled_from(["lower", "upper", "strip", "coalesce", "str"]))
            return f"{name}({build(depth - 1)})"
        return f"({build(depth - 1)} if {build(depth - 1)} else {build(depth - 1)})"

    return build(draw(st.integers(0, 3)))


@FUZZ
@given(st.data(), COLUMNS)
def test_compiled_sql_has_only_bound_literals_and_quoted_identifiers(data, columns):
    expression = data.draw(expressions(columns))
    table = sa.table("t", *[sa.column(c, sa.String()) for c in columns])
    with no_eval(expression):
        compiled = compile_expression(expression, {c.name: c for c in table.c})
        sql, params = compile_sql(sa.select(compiled.label("out")).select_from(table))
    rest = _QUOTED_IDENT.sub("", sql)
    assert _SAFE_SQL.fullmatch(rest), (expression, sql)
    for column in columns:
        if f"`{column}`" in expression and not re.fullmatch(r"[a-z_][a-z0-9_]*", column):
            assert quote_identifier(column) in sql  # quoted by the dialect where needed
    assert all(isinstance(p, (str, int, float, bool)) or p is None for p in params)


@settings(max_examples=100, deadline=None)
@given(NASTY, NASTY)
def test_literals_come_back_unchanged_from_duckdb(value, other):
    """A string literal is data: DuckDB returns it byte for byte, it never runs."""
    table = sa.table("t", sa.column("c", sa.String()))
    expression = f"{value!r} + c if c == {other!r} else {value!r}"
    compiled = compile_expression(expression, {"c": table.c.c})
    sql, params = compile_sql(sa.select(compiled.label("out")).select_from(table))
    con = duckdb.connect()
    con.register("t", pa.table({"c": pa.array([other, "zz"], pa.string())}))
    rows = con.execute(sql, params).fetchall()
    assert rows == [(value + other,), (value,)]


@pytest.mark.parametrize("expression", [
    "__import__('os').system('id')", "open('/etc/passwd')", "x.__class__", "eval('1')",
    "exec('1')", "getattr(x, 'y')", "(lambda: 1)()", "[c for c in x]", "x[0]", "f'{x}'",
    "x.lower()", "globals()", "a := 1", "x > None", "1; import os", "x if y",
    "(" * 5000 + "x" + ")" * 5000, "+".join(["x"] * 3000), "x" * 10_001,
])
def test_known_attacks_are_refused(expression):
    with no_eval(expression), pytest.raises(ExpressionError):
        validate_expression(expression)
