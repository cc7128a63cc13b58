"""Which steps mean the same in PostgreSQL and DuckDB, so that a plan may compile them into the
source database's query (the PostgreSQL COPY pipe, :mod:`nexus_dagster.run.pg_pipe`).

A step is portable when the step table marks its type portable (filter, map) and each of its
expressions is (:mod:`nexus_dagster.transforms.steps`).

Only expressions whose meaning is the same on both engines are portable (see
:func:`portable_expression`): columns, int/str/bool/None literals, boolean logic, comparisons
that do not depend on collations, null tests, integer/decimal arithmetic, string concatenation,
conditionals, ``abs`` and ``coalesce``.

Example:
    >>> portable_expression("amount * 2", {"amount": "int"})
    'int'
    >>> portable_expression("amount / 3", {"amount": "int"}) is None
    True
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence

import pyarrow as pa

from nexus_dagster.spec.models import Transformation
from nexus_dagster.transforms.steps import step_kind

_NUMERIC = {"int", "decimal", "float"}
_COMPARE_ORDER = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)


# ------------------------------------------------------------------------- expression check
def _kind(arrow_type: pa.DataType) -> str:
    if pa.types.is_boolean(arrow_type):
        return "bool"
    if pa.types.is_integer(arrow_type):
        return "int"
    if pa.types.is_decimal(arrow_type):
        return "decimal"
    if pa.types.is_floating(arrow_type):
        return "float"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "string"
    if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type):
        return "time"
    return "other"


def portable_expression(text: str, kinds: Mapping[str, str]) -> str | None:
    """The kind of an expression's value when PostgreSQL and DuckDB agree on its meaning,
    else None.

    Allowed: columns, int/str/bool/None literals, ``and``/``or``/``not``, comparisons (ordering
    ones on numbers and on two date/time columns only: string order depends on collations),
    ``in``/``not in`` literal lists, null tests, ``+``/``-``/``*`` on numbers, ``+`` on
    strings, unary minus, ``a if c else b``, ``abs`` and ``coalesce``. Float literals and
    division are left to DuckDB (binding and rounding differ).

    Args:
        text: the spec's expression.
        kinds: column name -> ``int``/``decimal``/``float``/``string``/``bool``/``time``/``other``.
    """
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        return None
    try:
        return _check(tree.body, kinds)
    except _NotPortable:
        return None


class _NotPortable(Exception):
    pass


def _check(node: ast.AST, kinds: Mapping[str, str]) -> str:
    if isinstance(node, ast.Name):
        kind = kinds.get(node.id)
        if kind is None or kind == "other":
            raise _NotPortable
        return kind
    if isinstance(node, ast.Constant):
        value = node.value
        if value is None:
            return "null"
        if isinstance(value, bool):
            return "bool"
        if isinstance(value, int):
            return "int"
        if isinstance(value, str):
            return "string"
        raise _NotPortable
    if isinstance(node, ast.BoolOp):
        for value in node.values:
            _check(value, kinds)
        return "bool"
    if isinstance(node, ast.UnaryOp):
        kind = _check(node.operand, kinds)
        if isinstance(node.op, ast.Not | ast.Invert):
            return "bool"
        if isinstance(node.op, ast.USub) and kind in _NUMERIC:
            return kind
        raise _NotPortable
    if isinstance(node, ast.Compare):
        return _compare(node, kinds)
    if isinstance(node, ast.BinOp):
        left, right = _check(node.left, kinds), _check(node.right, kinds)
        if isinstance(node.op, ast.Add) and left == right == "string":
            return "string"
        if isinstance(node.op, ast.Add | ast.Sub | ast.Mult) and {left, right} <= _NUMERIC:
            if "float" in (left, right):
                return "float"
            return "decimal" if "decimal" in (left, right) else "int"
        raise _NotPortable
    if isinstance(node, ast.IfExp):
        _check(node.test, kinds)
        body, other = _check(node.body, kinds), _check(node.orelse, kinds)
        if body == other or other == "null":
            return body
        if body == "null":
            return other
        raise _NotPortable
    if isinstance(node, ast.Call) and not node.keywords:
        if isinstance(node.func, ast.Attribute) and not node.args:
            if node.func.attr in ("isnull", "isna", "notnull", "notna"):
                _check(node.func.value, kinds)
                return "bool"
            raise _NotPortable
        if isinstance(node.func, ast.Name) and node.func.id in ("abs", "coalesce"):
            args = [_check(a, kinds) for a in node.args]
            real = [a for a in args if a != "null"]
            if not real or len(set(real)) != 1:
                raise _NotPortable
            if node.func.id == "abs" and (len(args) != 1 or real[0] not in _NUMERIC):
                raise _NotPortable
            return real[0]
    raise _NotPortable


def _compare(node: ast.Compare, kinds: Mapping[str, str]) -> str:
    left_node = node.left
    for op, right_node in zip(node.ops, node.comparators, strict=True):
        left = _check(left_node, kinds)
        if isinstance(op, ast.In | ast.NotIn):
            if not isinstance(right_node, ast.List | ast.Tuple):
                raise _NotPortable
            items = {_check(item, kinds) for item in right_node.elts} - {"null"}
            if not items <= ({left} if left != "null" else set()) | (
                _NUMERIC - {"float"} if left in _NUMERIC else set()
            ):
                raise _NotPortable
        else:
            right = _check(right_node, kinds)
            if isinstance(op, ast.Is | ast.IsNot):
                if right != "null":
                    raise _NotPortable
            elif isinstance(op, _COMPARE_ORDER):
                both_time = left == right == "time" and not isinstance(
                    left_node, ast.Constant
                ) and not isinstance(right_node, ast.Constant)
                if not ({left, right} <= _NUMERIC or both_time):
                    raise _NotPortable
            elif "null" not in (left, right) and left != right and not (
                {left, right} <= _NUMERIC
            ):
                raise _NotPortable
        left_node = right_node
    return "bool"


def portable_steps(steps: Sequence[Transformation], schema: pa.Schema, out: pa.Schema) -> bool:
    """True when every step's type is portable and so is each of its expressions.

    Args:
        steps: the transformations, in order.
        schema: the source's schema (the columns the first step sees).
        out: the chain's output schema (the types of the columns steps assign).
    """
    kinds = {f.name: _kind(f.type) for f in schema}
    for step in steps:
        kind = step_kind(step)
        if not kind.portable:
            return False
        for expression in kind.expressions(step.config):
            if portable_expression(expression.text, kinds) is None:
                return False
            if expression.output is not None:
                index = out.get_field_index(expression.output)
                kinds[expression.output] = _kind(out.field(index).type) if index >= 0 else "other"
    return True
