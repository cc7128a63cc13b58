"""The expression compiler: allowed syntax, refused syntax, bound parameters, semantics."""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa
import pytest
import sqlalchemy as sa
from duckdb_engine import Dialect

from nexus_dagster.errors import ExpressionError
from nexus_dagster.transforms.expressions import (
    compile_expression,
    referenced_columns,
    sqlalchemy_type,
    validate_expression,
)

DIALECT = Dialect(paramstyle="qmark")

ROW_TYPES = {
    "first_name": pa.string(),
    "last_name": pa.string(),
    "status": pa.string(),
    "age": pa.int64(),
    "quantity": pa.int64(),
    "price": pa.float64(),
    "amount": pa.decimal128(10, 2),
    "is_test": pa.bool_(),
    "country": pa.string(),
    "email": pa.string(),
    "order date": pa.date32(),
}
TABLE = sa.table("t", *[sa.column(n, sqlalchemy_type(t)) for n, t in ROW_TYPES.items()])
COLUMNS = {c.name: c for c in TABLE.c}


def compiled(expression: str, condition: bool = False) -> tuple[str, list[Any]]:
    stmt = sa.select(compile_expression(expression, COLUMNS, condition=condition))
    c = stmt.compile(dialect=DIALECT, compile_kwargs={"render_postcompile": True})
    return str(c), [c.params[k] for k in c.positiontup]


def evaluate(expression: str, rows: list[dict[str, Any]]) -> list[Any]:
    """Run the compiled expression in DuckDB over rows (missing keys are null)."""
    table = pa.table({n: pa.array([r.get(n) for r in rows], t) for n, t in ROW_TYPES.items()})
    con = duckdb.connect()
    con.register("t", table)
    sql, params = compiled(expression)
    return [r[0] for r in con.execute(sql, params).fetchall()]


# ----------------------------------------------------------------------------- allowed
@pytest.mark.parametrize(
    ("expression", "row", "expected"),
    [
        ('status == "active" and age >= 18', {"status": "active", "age": 18}, True),
        ('status == "active" and age >= 18', {"status": "active", "age": 17}, False),
        ('first_name + " " + last_name', {"first_name": "Ann", "last_name": "Ax"}, "Ann Ax"),
        ("quantity * price", {"quantity": 3, "price": 2.5}, 7.5),
        ("amount > 0 and not is_test", {"amount": 5, "is_test": False}, True),
        ('country in ["DE", "FR"]', {"country": "FR"}, True),
        ('country not in ("DE", "FR")', {"country": "US"}, True),
        ("quantity / 2", {"quantity": 7}, 3.5),
        ("quantity // 2", {"quantity": -7}, -4),
        ("quantity % 3", {"quantity": -7}, 2),
        ("quantity ** 2", {"quantity": 3}, 9.0),
        ("-quantity + 1", {"quantity": 3}, -2),
        ("0 < age <= 10", {"age": 10}, True),
        ("0 < age <= 10", {"age": 11}, False),
        ("email is None", {}, True),
        ("email is not None", {"email": "a@b"}, True),
        ("email == None", {}, True),
        ("email.isnull()", {}, True),
        ("email.notnull()", {"email": "x"}, True),
        ("isnull(email)", {"email": "x"}, False),
        ("notna(email)", {"email": "x"}, True),
        ("lower(strip(email))", {"email": "  A@B.COM "}, "a@b.com"),
        ("upper(email)", {"email": "ab"}, "AB"),
        ("len(email) + length(email)", {"email": "abc"}, 6),
        ("abs(age)", {"age": -3}, 3),
        ("round(price, 1)", {"price": 2.25}, 2.2),
        ("round(price)", {"price": 2.5}, 2.0),
        ("coalesce(email, 'none')", {}, "none"),
        ("concat(first_name, '-', last_name)", {"first_name": "a", "last_name": "b"}, "a-b"),
        ("substr(email, 2, 3)", {"email": "abcdef"}, "bcd"),
        ("replace(email, 'a', 'x')", {"email": "banana"}, "bxnxnx"),
        ("str(age) + 'y'", {"age": 4}, "4y"),
        ("int(price)", {"price": 2.9}, 2),
        ("int(price)", {"price": -2.9}, -2),
        ("float(age) / 4", {"age": 1}, 0.25),
        ("year(`order date`) * 100 + month(`order date`)", {"order date": "2024-03-05"}, 202403),
        ("day(to_date('2024-03-05'))", {}, 5),
        ("'big' if quantity > 2 else 'small'", {"quantity": 3}, "big"),
        (
            "(age > 1) & (quantity < 5) | ~is_test",
            {"age": 0, "quantity": 9, "is_test": False},
            True,
        ),
        ("min(age, quantity)", {"age": 3, "quantity": 2}, 2),
        ("max(age, quantity)", {"age": 3, "quantity": 2}, 3),
        (
            "startswith(email, 'ab') and endswith(email, 'z') and contains(email, 'c')",
            {"email": "abcz"},
            True,
        ),
    ],
)
def test_expression_values(expression: str, row: dict[str, Any], expected: Any) -> None:
    if "order date" in row:
        import datetime

        row = {**row, "order date": datetime.date.fromisoformat(row["order date"])}
    assert evaluate(expression, [row]) == [expected]


def test_null_comparisons_follow_pandas() -> None:
    # pandas: a comparison with a missing value is False; != is True
    assert evaluate('status == "x"', [{}]) == [False]
    assert evaluate('status != "x"', [{}]) == [True]
    assert evaluate('not (status == "x")', [{}]) == [True]
    assert evaluate('status in ["x"]', [{}]) == [False]
    assert evaluate('status not in ["x"]', [{}]) == [True]
    assert evaluate("age > 3", [{}]) == [False]


def test_string_plus_with_null_is_null_like_pandas() -> None:
    assert evaluate('first_name + " " + last_name', [{"last_name": "x"}]) == [None]


def test_true_division_of_integers() -> None:
    assert evaluate("quantity / age", [{"quantity": 1, "age": 2}]) == [0.5]


def test_condition_mode_keeps_plain_sql_for_pushdown() -> None:
    sql, params = compiled('status == "active" and age >= 18', condition=True)
    assert "coalesce" not in sql
    assert params == ["active", 18]


def test_literals_are_bound_parameters() -> None:
    payload = "x'); DROP TABLE t; --"
    sql, params = compiled(f"status == {payload!r}")
    assert "DROP" not in sql
    assert payload in params
    assert evaluate(f"status == {payload!r}", [{"status": payload}]) == [True]


def test_identifiers_are_quoted() -> None:
    sql, _ = compiled("`order date` == `order date`")
    assert '"order date"' in sql


def test_in_with_null_and_empty_lists() -> None:
    assert evaluate("email in [None, 'a']", [{}]) == [True]
    assert evaluate("email in []", [{"email": "a"}]) == [False]
    assert evaluate("email not in []", [{"email": "a"}]) == [True]
    assert evaluate("age in [-1, 2]", [{"age": -1}]) == [True]


# ----------------------------------------------------------------------------- refused
@pytest.mark.parametrize(
    ("expression", "construct"),
    [
        ("__import__('os').system('x')", "attribute access"),
        ("__import__('os')", "unknown function '__import__'"),
        ("__builtins__ + 1", "dunder name"),
        ("().__class__", "attribute access"),
        ("email.__class__", "attribute access"),
        ("email.upper()", "attribute access"),
        ("lambda: 1", "lambda"),
        ("open('f')", "unknown function 'open'"),
        ("eval('1')", "unknown function 'eval'"),
        ("a; DROP TABLE x", "invalid syntax"),
        ("status[0]", "subscript"),
        ("[x for x in status]", "comprehension"),
        ("{x: 1 for x in status}", "comprehension"),
        ("f'{status}'", "f-string"),
        ("(y := 1)", "assignment expression"),
        ("concat(*status)", "starred"),
        ("lower(status, x=1)", "keyword arguments"),
        ("status in status", "'in' needs a list"),
        ("status in [age]", "'in' needs a list of literals"),
        ("status is 'x'", "only test for None"),
        ("{'a': 1}", "dict literal"),
        ("b'x' == status", "bytes literals"),
        ("lower()", "takes 1 arguments"),
        ("import os", "invalid syntax"),
        ("status == 'a'\nimport os", "invalid syntax"),
        ("", "empty"),
        ("x" * 20_000, "longer than"),
        ("yield 1", "invalid syntax"),
    ],
)
def test_refused(expression: str, construct: str) -> None:
    with pytest.raises(ExpressionError) as info:
        compile_expression(expression, COLUMNS)
    assert construct in str(info.value)
    assert info.value.expression is not None


def test_unknown_column_lists_the_available_ones() -> None:
    with pytest.raises(ExpressionError) as info:
        compile_expression("revenue * 2", COLUMNS)
    message = str(info.value)
    assert "unknown column 'revenue'" in message
    assert "first_name" in message and "quantity" in message
    assert "revenue * 2" in message


def test_function_name_used_as_column_gets_a_hint() -> None:
    with pytest.raises(ExpressionError, match="is a function"):
        compile_expression("lower", COLUMNS)


def test_deep_nesting_is_an_expression_error() -> None:
    with pytest.raises(ExpressionError):
        compile_expression("(" * 5000 + "age" + ")" * 5000, COLUMNS)


def test_non_string_expression() -> None:
    with pytest.raises(ExpressionError):
        compile_expression(5, COLUMNS)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- lineage
@pytest.mark.parametrize(
    ("expression", "columns"),
    [
        ('status == "active" and age >= 18', {"status", "age"}),
        ('first_name + " " + last_name', {"first_name", "last_name"}),
        (
            "lower(email) if `order date` is None else coalesce(a, b)",
            {"email", "order date", "a", "b"},
        ),
        ("x.isnull()", {"x"}),
        ("1 + 2", set()),
    ],
)
def test_referenced_columns(expression: str, columns: set[str]) -> None:
    assert referenced_columns(expression) == columns


def test_referenced_columns_validates() -> None:
    with pytest.raises(ExpressionError):
        referenced_columns("__import__('os')")
    with pytest.raises(ExpressionError):
        validate_expression("a.b")
    validate_expression("a + b")


def test_sqlalchemy_types() -> None:
    assert isinstance(sqlalchemy_type(pa.large_string()), sa.String)
    assert isinstance(sqlalchemy_type(pa.dictionary(pa.int8(), pa.string())), sa.String)
    assert isinstance(sqlalchemy_type(pa.int32()), sa.Integer)
    assert isinstance(sqlalchemy_type(pa.float32()), sa.Double)
    assert sqlalchemy_type(pa.decimal128(12, 3)).scale == 3
    assert sqlalchemy_type(pa.timestamp("us", tz="UTC")).timezone
    assert isinstance(sqlalchemy_type(pa.list_(pa.int8())), sa.types.NullType)
