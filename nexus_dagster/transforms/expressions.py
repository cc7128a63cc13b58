"""Filter conditions and map expressions: pandas-like syntax compiled to SQLAlchemy.

The syntax is the one of the original Nexus docs (``status == "active" and age >= 18``,
``first_name + " " + last_name``, ``quantity * price``). An expression is parsed with
:mod:`ast` and compiled node by node into a SQLAlchemy column expression; anything not on the
short list below raises :class:`~nexus_dagster.errors.ExpressionError`. Nothing is ever
``eval``-ed, and nothing is pasted into SQL text: literals become bound parameters and
identifiers are quoted by the dialect that compiles the result.

Allowed:

* column names (``amount``; a name with spaces or other characters in backticks:
  ```order id```), literals (str, int, float, bool, ``None``);
* arithmetic ``+ - * / // % **`` with Python semantics (``/`` is true division,
  ``//`` floors, ``%`` takes the sign of the divisor); ``+`` on strings concatenates;
* comparisons, chained (``0 < x <= 10``), ``in`` / ``not in`` a list or tuple of literals,
  ``x is None`` / ``x is not None`` (``x == None`` means the same);
* ``and``, ``or``, ``not`` (and ``&``, ``|``, ``~`` as in ``df.query``), ``a if cond else b``;
* the functions of :data:`~nexus_dagster.transforms.expression_functions.FUNCTIONS` (some
  arguments by keyword, e.g. ``mask(phone, keep_last=4)``) and the methods ``x.isnull()``,
  ``x.notnull()``, ``x.isna()``, ``x.notna()``.

Missing values follow pandas: a comparison with a null is false (``!=`` and ``not in`` are
true), so ``not (status == "x")`` keeps the rows whose status is null, as pandas would.

Example:
    >>> import sqlalchemy as sa
    >>> t = sa.table("t", sa.column("a", sa.String()), sa.column("b", sa.String()))
    >>> expr = compile_expression('a + " " + b', {c.name: c for c in t.c})
    >>> referenced_columns('status == "active" and age >= 18') == {"status", "age"}
    True
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeEngine

from nexus_dagster.errors import ExpressionError
from nexus_dagster.transforms.expression_functions import (
    FUNCTIONS,
    ArgumentError,
    ZonedDateTime,
    is_integer,
    is_string,
)

__all__ = [
    "MAX_EXPRESSION_LENGTH",
    "compile_expression",
    "referenced_columns",
    "sqlalchemy_type",
    "validate_expression",
]

MAX_EXPRESSION_LENGTH = 10_000
"""Longer expressions are refused (they are a spec mistake, or an attack on the parser)."""

Expr = ColumnElement[Any]

_BACKTICK_PREFIX = "_nexus_bt_"
_NULL_METHODS = {"isnull": True, "isna": True, "notnull": False, "notna": False}


# ----------------------------------------------------------------------------- types
def sqlalchemy_type(arrow_type: pa.DataType) -> TypeEngine[Any]:
    """The SQLAlchemy type that stands for an Arrow type in compiled expressions.

    Only the kind matters to the compiler (string or number, integer or not, ...); the engine
    keeps the exact Arrow types of the data.

    Args:
        arrow_type: an Arrow data type.

    Returns:
        A SQLAlchemy type instance (``NullType`` for types with no SQL counterpart).
    """
    t = arrow_type
    if pa.types.is_dictionary(t):
        return sqlalchemy_type(t.value_type)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return sa.String()
    if pa.types.is_boolean(t):
        return sa.Boolean()
    if pa.types.is_integer(t):
        return sa.BigInteger()
    if pa.types.is_floating(t):
        return sa.Double()
    if pa.types.is_decimal(t):
        return sa.Numeric(t.precision, t.scale)
    if pa.types.is_date(t):
        return sa.Date()
    if pa.types.is_timestamp(t):
        return ZonedDateTime(t.tz) if t.tz is not None else sa.DateTime()
    if pa.types.is_time(t):
        return sa.Time()
    if pa.types.is_duration(t):
        return sa.Interval()
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return sa.LargeBinary()
    return sa.types.NullType()


def _double(e: Expr) -> Expr:
    return sa.cast(e, sa.Double())


# ----------------------------------------------------------------------------- parsing
_CONSTRUCTS: dict[type, str] = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscript",
    ast.Lambda: "lambda",
    ast.ListComp: "list comprehension",
    ast.SetComp: "set comprehension",
    ast.DictComp: "dict comprehension",
    ast.GeneratorExp: "generator expression",
    ast.JoinedStr: "f-string",
    ast.FormattedValue: "f-string",
    ast.NamedExpr: "assignment expression (:=)",
    ast.Starred: "starred expression",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.Dict: "dict literal",
    ast.Set: "set literal outside 'in'",
    ast.List: "list literal outside 'in'",
    ast.Tuple: "tuple literal outside 'in'",
    ast.Slice: "slice",
}


def _construct(node: ast.AST) -> str:
    name = _CONSTRUCTS.get(type(node))
    if name is None and type(node).__name__ == "TemplateStr":  # Python 3.14 t-strings
        name = "t-string"
    return name or f"{type(node).__name__} syntax"


def _replace_backticks(expression: str) -> tuple[str, dict[str, str]]:
    """Turn ```a column``` into placeholder identifiers (outside string literals)."""
    if "`" not in expression:
        return expression, {}
    out: list[str] = []
    names: dict[str, str] = {}
    i, n = 0, len(expression)
    while i < n:
        ch = expression[i]
        if ch in "'\"":
            # copy a string literal verbatim (with escapes); the parser checks it later
            j = i + 1
            while j < n and expression[j] != ch:
                j += 2 if expression[j] == "\\" else 1
            out.append(expression[i : j + 1])
            i = j + 1
        elif ch == "`":
            j = expression.find("`", i + 1)
            if j < 0:
                raise ExpressionError(expression, "unclosed backtick")
            column = expression[i + 1 : j]
            if not column:
                raise ExpressionError(expression, "empty backtick-quoted column name")
            placeholder = f"{_BACKTICK_PREFIX}{len(names)}"
            names[placeholder] = column
            out.append(f" {placeholder} ")
            i = j + 1
        else:
            out.append(ch)
            i += 1
    return "".join(out), names


def _parse(expression: str) -> tuple[ast.expr, dict[str, str]]:
    if not isinstance(expression, str):
        raise ExpressionError(repr(expression), "an expression must be a string")
    if not expression.strip():
        raise ExpressionError(expression, "the expression is empty")
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(
            expression[:80] + "...", f"longer than {MAX_EXPRESSION_LENGTH} characters"
        )
    text, backticks = _replace_backticks(expression)
    try:
        with warnings.catch_warnings():  # e.g. "invalid decimal literal" for `1and x`
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(
            expression,
            f"invalid syntax ({exc.msg}); an expression is one Python-like formula such as "
            "'amount > 0 and status == \"paid\"', not statements",
        ) from None
    except (RecursionError, MemoryError, ValueError) as exc:
        raise ExpressionError(expression, f"cannot be parsed: {type(exc).__name__}") from None
    return tree.body, backticks


# ----------------------------------------------------------------------------- compiler
class _Recorder(Mapping[str, Expr]):
    """A column mapping that accepts every name and records it (for referenced_columns)."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def __getitem__(self, key: str) -> Expr:
        self.names.add(key)
        return sa.column(key)

    def __contains__(self, key: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


class _Compiler:
    def __init__(
        self, expression: str, columns: Mapping[str, Expr], backticks: dict[str, str]
    ) -> None:
        self.expression = expression
        self.columns = columns
        self.backticks = backticks

    def fail(self, reason: str) -> ExpressionError:
        return ExpressionError(self.expression, reason)

    def refuse(self, node: ast.AST, detail: str = "") -> ExpressionError:
        what = _construct(node)
        try:
            source = ast.unparse(node)
        except Exception:  # pragma: no cover - unparse of odd nodes
            source = ""
        shown = f" ({source[:60]})" if source else ""
        return self.fail(
            f"{what}{shown} is not allowed{detail}; use column names, literals, arithmetic, "
            "comparisons, and/or/not and the functions " + ", ".join(sorted(FUNCTIONS))
        )

    # -- entry
    def compile(self, node: ast.expr, where: bool) -> Expr:
        """``where``: the result is used as a WHERE condition (null there means false)."""
        try:
            return self._compile(node, where)
        except RecursionError:
            raise self.fail("nested too deeply") from None

    def _compile(self, node: ast.expr, where: bool = False) -> Expr:
        if isinstance(node, ast.Name):
            return self._name(node)
        if isinstance(node, ast.Constant):
            return self._constant(node)
        if isinstance(node, ast.BoolOp):
            parts = [self._compile(v, where) for v in node.values]
            return sa.and_(*parts) if isinstance(node.op, ast.And) else sa.or_(*parts)
        if isinstance(node, ast.UnaryOp):
            return self._unary(node)
        if isinstance(node, ast.BinOp):
            return self._binop(node, where)
        if isinstance(node, ast.Compare):
            return self._compare(node, where)
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.IfExp):
            test = self._compile(node.test, where=True)
            then, other = self._compile(node.body), self._compile(node.orelse)
            return sa.case((test, then), else_=other)
        raise self.refuse(node)

    def _name(self, node: ast.Name) -> Expr:
        name = self.backticks.get(node.id, node.id)
        if node.id not in self.backticks and node.id.startswith("__"):
            raise self.fail(f"dunder name {node.id!r} is not allowed")
        if name in self.columns:
            return self.columns[name]
        available = ", ".join(sorted(self.columns)) or "(none)"
        hint = ""
        if name in FUNCTIONS:
            hint = f"; {name} is a function: call it, e.g. {name}(column)"
        raise self.fail(f"unknown column {name!r}{hint}; available columns: {available}")

    def _constant(self, node: ast.Constant) -> Expr:
        value = node.value
        if value is None:
            return sa.null()
        if isinstance(value, bool):
            return sa.literal(value, sa.Boolean())
        if isinstance(value, int):
            return sa.literal(value, sa.BigInteger())
        if isinstance(value, float):
            return sa.literal(value, sa.Double())
        if isinstance(value, str):
            return sa.literal(value, sa.String())
        raise self.fail(f"{type(value).__name__} literals are not allowed")

    def _literal_value(self, node: ast.expr) -> Any:
        """A constant inside an ``in`` list (negative numbers allowed)."""
        if isinstance(node, ast.Constant) and isinstance(
            node.value, (str, int, float, bool, type(None))
        ):
            return node.value
        if (
            isinstance(node, ast.UnaryOp)
            and isinstance(node.op, (ast.USub, ast.UAdd))
            and isinstance(node.operand, ast.Constant)
            and isinstance(node.operand.value, (int, float))
            and not isinstance(node.operand.value, bool)
        ):
            v = node.operand.value
            return -v if isinstance(node.op, ast.USub) else v
        raise self.fail(
            f'\'in\' needs a list of literals, e.g. country in ["DE", "FR"]; '
            f"got {ast.unparse(node)!r}"
        )

    def _unary(self, node: ast.UnaryOp) -> Expr:
        if isinstance(node.op, (ast.Not, ast.Invert)):
            return sa.not_(self._compile(node.operand))
        if isinstance(node.op, ast.USub):
            if isinstance(node.operand, ast.Constant) and type(node.operand.value) in (int, float):
                return self._constant(ast.Constant(-node.operand.value))
            operand = self._compile(node.operand)
            return sa.sql.operators.neg(operand)
        if isinstance(node.op, ast.UAdd):
            return self._compile(node.operand)
        raise self.refuse(node)  # pragma: no cover

    def _binop(self, node: ast.BinOp, where: bool) -> Expr:
        if isinstance(node.op, (ast.BitAnd, ast.BitOr)):
            # df.query style: (a > 1) & (b < 2)
            left, right = self._compile(node.left, where), self._compile(node.right, where)
            return sa.and_(left, right) if isinstance(node.op, ast.BitAnd) else sa.or_(left, right)
        left, right = self._compile(node.left), self._compile(node.right)
        op = node.op
        if isinstance(op, ast.Add):
            if is_string(left) or is_string(right):
                return left.op("||", return_type=sa.String())(right)
            return left + right
        if isinstance(op, ast.Sub):
            return left - right
        if isinstance(op, ast.Mult):
            return left * right
        if isinstance(op, ast.Div):
            return _double(left) / _double(right)
        if isinstance(op, ast.FloorDiv):
            quotient = sa.func.floor(_double(left) / _double(right), type_=sa.Double())
            if is_integer(left) and is_integer(right):
                return sa.cast(quotient, sa.BigInteger())
            return quotient
        if isinstance(op, ast.Mod):
            # Python's %: the result has the sign of the divisor
            return ((left % right) + right) % right
        if isinstance(op, ast.Pow):
            return sa.func.power(left, right, type_=sa.Double())
        raise self.refuse(node, f" (operator {type(op).__name__})")

    def _compare(self, node: ast.Compare, where: bool) -> Expr:
        parts: list[Expr] = []
        left_node = node.left
        left = self._compile(left_node)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            parts.append(self._compare_one(op, left, right_node, where))
            left_node = right_node
            if right_node is not node.comparators[-1]:
                left = self._compile(right_node)
        return parts[0] if len(parts) == 1 else sa.and_(*parts)

    def _compare_one(self, op: ast.cmpop, left: Expr, right_node: ast.expr, where: bool) -> Expr:
        is_none = isinstance(right_node, ast.Constant) and right_node.value is None
        if isinstance(op, (ast.Is, ast.IsNot)):
            if not is_none:
                raise self.fail("'is' / 'is not' only test for None, e.g. email is None")
            return left.is_(None) if isinstance(op, ast.Is) else left.is_not(None)
        if isinstance(op, (ast.Eq, ast.NotEq)) and is_none:
            return left.is_(None) if isinstance(op, ast.Eq) else left.is_not(None)
        if is_none and not isinstance(op, (ast.In, ast.NotIn)):
            raise self.fail("None can only be compared with ==, !=, is, is not")
        if isinstance(op, (ast.In, ast.NotIn)):
            if not isinstance(right_node, (ast.List, ast.Tuple, ast.Set)):
                raise self.fail('\'in\' needs a list of literals, e.g. country in ["DE", "FR"]')
            values = [self._literal_value(e) for e in right_node.elts]
            non_null = [v for v in values if v is not None]
            has_null = len(non_null) != len(values)
            positive = isinstance(op, ast.In)
            if non_null:
                # an anonymous bind name: one derived from an odd column name (a newline, a
                # bracket) breaks SQLAlchemy's rendering of the expanded list
                values_param = sa.bindparam(None, non_null, expanding=True)
                result = left.in_(values_param) if positive else left.not_in(values_param)
            else:
                result = sa.false() if positive else sa.true()
            if has_null:
                result = (
                    sa.or_(result, left.is_(None))
                    if positive
                    else sa.and_(result, left.is_not(None))
                )
                return result
            return self._null_as(result, left, null_result=not positive, where=where)
        right = self._compile(right_node)
        ops: dict[type, Callable[[Expr, Expr], Expr]] = {
            ast.Eq: lambda a, b: a == b,
            ast.NotEq: lambda a, b: a != b,
            ast.Lt: lambda a, b: a < b,
            ast.LtE: lambda a, b: a <= b,
            ast.Gt: lambda a, b: a > b,
            ast.GtE: lambda a, b: a >= b,
        }
        build = ops.get(type(op))
        if build is None:  # pragma: no cover - every cmpop is handled above
            raise self.fail(f"comparison {type(op).__name__} is not allowed")
        return self._null_as(
            build(left, right), left, right, null_result=isinstance(op, ast.NotEq), where=where
        )

    @staticmethod
    def _null_as(result: Expr, *operands: Expr, null_result: bool, where: bool) -> Expr:
        """pandas semantics: a comparison involving a null is False (True for != / not in)."""
        if where and not null_result:
            return result  # WHERE treats NULL as false already
        if all(isinstance(o, sa.sql.elements.BindParameter) for o in operands):
            return result
        fallback = sa.true() if null_result else sa.false()
        return sa.func.coalesce(result, fallback, type_=sa.Boolean())

    def _call(self, node: ast.Call) -> Expr:
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise self.refuse(next(a for a in node.args if isinstance(a, ast.Starred)))
        func = node.func
        if isinstance(func, ast.Attribute):
            if func.attr in _NULL_METHODS and not node.args:
                target = self._compile(func.value)
                return target.is_(None) if _NULL_METHODS[func.attr] else target.is_not(None)
            raise self.refuse(func, " (only .isnull(), .notnull(), .isna(), .notna())")
        if not isinstance(func, ast.Name):
            raise self.refuse(func, " as a function")
        spec = FUNCTIONS.get(func.id)
        if spec is None:
            raise self.fail(
                f"unknown function {func.id!r}; allowed functions: " + ", ".join(sorted(FUNCTIONS))
            )
        args = self._arguments(func.id, spec.params, node)
        count = len(args)
        if count < spec.min_args or (spec.max_args is not None and count > spec.max_args):
            expected = (
                str(spec.min_args)
                if spec.min_args == spec.max_args
                else f"{spec.min_args}..{spec.max_args if spec.max_args is not None else 'n'}"
            )
            raise self.fail(f"{func.id}() takes {expected} arguments, got {count}")
        try:
            return spec.build([self._compile(a) for a in args])
        except ArgumentError as exc:
            raise self.fail(f"{func.id}(): {exc}") from None

    def _arguments(self, name: str, params: tuple[str, ...], node: ast.Call) -> list[ast.expr]:
        """The call's arguments in order, keyword ones put at their parameter's place."""
        args: list[ast.expr] = list(node.args)
        if not node.keywords:
            return args
        if not params:
            raise self.fail(f"{name}() takes no keyword arguments")
        slots: list[ast.expr | None] = [*args, *([None] * (len(params) - len(args)))]
        for keyword in node.keywords:
            if keyword.arg not in params:
                raise self.fail(
                    f"{name}() has no argument {keyword.arg!r}; its arguments: "
                    + ", ".join(params)
                )
            index = params.index(keyword.arg)
            if index < len(slots) and slots[index] is not None:
                raise self.fail(f"{name}() got {keyword.arg!r} twice")
            slots[index] = keyword.value
        if None in slots:
            last = max(i for i, s in enumerate(slots) if s is not None)
            missing = [params[i] for i in range(last) if slots[i] is None]
            if missing:
                raise self.fail(f"{name}() needs {', '.join(missing)} before the keywords")
            slots = slots[: last + 1]
        return [s for s in slots if s is not None]


# ----------------------------------------------------------------------------- public API
def compile_expression(
    expression: str, columns: Mapping[str, Expr], *, condition: bool = False
) -> Expr:
    """Compile a pandas-like expression into a SQLAlchemy column expression.

    Args:
        expression: the expression text, e.g. ``quantity * price``.
        columns: the columns the expression may use, name -> typed SQLAlchemy expression
            (e.g. ``{c.name: c for c in table.c}``); the types decide whether ``+``
            concatenates and how ``//`` and ``int()`` round.
        condition: True when the result is a WHERE condition (lets comparisons skip the
            null handling that WHERE does anyway).

    Returns:
        The SQLAlchemy expression; its literals are bound parameters.

    Raises:
        ExpressionError: the syntax is not allowed, a column or function is unknown.
    """
    node, backticks = _parse(expression)
    return _Compiler(expression, columns, backticks).compile(node, where=condition)


def validate_expression(expression: str) -> None:
    """Check an expression's syntax without knowing the columns.

    Args:
        expression: the expression text.

    Raises:
        ExpressionError: the syntax is not allowed or a function is unknown.
    """
    referenced_columns(expression)


def referenced_columns(expression: str) -> set[str]:
    """The column names an expression reads (for column lineage and pushdown checks).

    Args:
        expression: the expression text, e.g. ``first_name + " " + last_name``.

    Returns:
        The set of column names (function names are not columns).

    Raises:
        ExpressionError: the syntax is not allowed.
    """
    node, backticks = _parse(expression)
    recorder = _Recorder()
    _Compiler(expression, recorder, backticks).compile(node, where=False)
    return set(recorder.names)


def expression_error(expression: str) -> str | None:
    """The compiler's complaint about an expression's syntax (checked without columns), or
    None when it compiles."""
    try:
        validate_expression(expression)
    except Exception as exc:  # any complaint of the compiler becomes a spec problem
        return str(exc)
    return None
