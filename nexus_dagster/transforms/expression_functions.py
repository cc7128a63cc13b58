"""The functions an expression may call: ONE table, name -> arity -> SQL builder.

Each :class:`Function` says how many arguments it takes, which of them may be passed by keyword,
and how its SQL is built from the compiled arguments (SQLAlchemy constructs for DuckDB: bound
literals, quoted identifiers). The expression compiler
(:mod:`nexus_dagster.transforms.expressions`) looks names up in :data:`FUNCTIONS`; portability
to PostgreSQL (:mod:`nexus_dagster.transforms.portable`) allows only the few functions it names,
so every function here not listed there keeps a pushdown on the general path.

Arguments that must be literals (a date unit, a regex pattern, a group number) are checked when
the expression compiles, which ``nexus validate`` does at load time: a bad unit or pattern is
a spec error naming the field. A builder reports such a problem with :class:`ArgumentError`.

Semantics follow pandas where pandas has the function: nulls stay null, ``log`` is the natural
logarithm, ``day_of_week`` counts Monday as 0, date parts of a timestamp with a time zone are
those of its local time in that zone.

Example:
    >>> import sqlalchemy as sa
    >>> FUNCTIONS["lower"].build([sa.column("name", sa.String())]).type
    String()
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlalchemy.types import TypeEngine

from nexus_dagster.secrets import is_reference, register_secret, resolve

__all__ = [
    "DATE_UNITS",
    "FUNCTIONS",
    "ArgumentError",
    "Function",
    "ZonedDateTime",
    "is_inexact",
    "is_integer",
    "is_string",
]

Expr = ColumnElement[Any]

DATE_UNITS = ("second", "minute", "hour", "day", "week", "month", "quarter", "year")
"""The units of date_diff, date_add and date_trunc."""

_CALENDAR_UNITS = ("day", "week", "month", "quarter", "year")
# RE2 (DuckDB's regex engine) has no lookaround and no backreferences
_RE2_UNSUPPORTED = re.compile(r"\(\?<?[=!]|\\[1-9]")


class ArgumentError(ValueError):
    """A function argument that is not allowed (the compiler adds the expression)."""


class ZonedDateTime(sa.DateTime):
    """A timestamp with time zone whose values are read in ``zone`` (an IANA name).

    Date parts and calendar arithmetic of such a column use its local time, as pandas does
    with a tz-aware column.
    """

    cache_ok = True

    def __init__(self, zone: str = "UTC") -> None:
        super().__init__(timezone=True)
        self.zone = zone


# ----------------------------------------------------------------------------- type tests
def is_string(e: Expr) -> bool:
    """Whether an expression is a string."""
    return isinstance(e.type, sa.String)


def is_integer(e: Expr) -> bool:
    """Whether an expression is an integer."""
    return isinstance(e.type, sa.Integer)


# SQLAlchemy 2.1 splits Float from Numeric; NumericCommon is the base of both.
_NUMERIC_TYPES: tuple[type, ...] = (sa.Numeric, sa.Float)


def is_inexact(e: Expr) -> bool:
    """Float or decimal: numeric but not integer."""
    return isinstance(e.type, _NUMERIC_TYPES) and not isinstance(e.type, sa.Integer)


def _zone(e: Expr) -> str | None:
    return e.type.zone if isinstance(e.type, ZonedDateTime) else None


def _local(e: Expr) -> Expr:
    """A zoned timestamp as its local wall-clock time (other values unchanged)."""
    zone = _zone(e)
    if zone is None:
        return e
    return sa.func.timezone(sa.literal(zone, sa.String()), e, type_=sa.DateTime())


def _utc(e: Expr) -> Expr:
    """A zoned timestamp as UTC wall-clock time (other values unchanged)."""
    if _zone(e) is None:
        return e
    return sa.func.timezone(sa.literal("UTC", sa.String()), e, type_=sa.DateTime())


def _rezone(local: Expr, zone: str) -> Expr:
    """A local wall-clock time in ``zone`` back to an instant."""
    return sa.func.timezone(sa.literal(zone, sa.String()), local, type_=ZonedDateTime(zone))


# ----------------------------------------------------------------------------- literal args
def _literal(e: Expr, what: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(e, BindParameter) or not isinstance(e.value, kind) or (
        isinstance(e.value, bool) and kind is int
    ):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        example = f", e.g. {_EXAMPLES[what]}" if what in _EXAMPLES else ""
        raise ArgumentError(f"{what} must be a literal {names}{example}")
    return e.value


_EXAMPLES = {
    "unit": "'day'",
    "pattern": r"'[0-9]+'",
    "group": "1",
    "side": "'left'",
    "format": "'%Y-%m'",
    "keep_last": "4",
}


def _unit(e: Expr) -> str:
    unit = _literal(e, "unit", str)
    if unit not in DATE_UNITS:
        raise ArgumentError(f"unknown unit {unit!r}; use one of: {', '.join(DATE_UNITS)}")
    return unit


def _pattern(e: Expr) -> re.Pattern[str]:
    pattern = _literal(e, "pattern", str)
    if any(ch in pattern for ch in "\a\b\f\v"):
        raise ArgumentError(
            f"pattern {pattern!r} holds a control character: in a string literal \\b is a "
            'backspace, as in Python; write the pattern as a raw string, r"\\b[0-9]+"'
        )
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ArgumentError(f"invalid regular expression {pattern!r}: {exc}") from None
    if _RE2_UNSUPPORTED.search(pattern):
        raise ArgumentError(
            f"regular expression {pattern!r} uses lookaround or a backreference, which the "
            "engine (RE2) does not support; rewrite it without them"
        )
    return compiled


def _text(e: Expr) -> Expr:
    return e if is_string(e) else sa.cast(e, sa.String())


# ----------------------------------------------------------------------------- builders
def _fn(name: str, type_: TypeEngine[Any] | None = None) -> Callable[[list[Expr]], Expr]:
    def build(args: list[Expr]) -> Expr:
        return getattr(sa.func, name)(*args, type_=type_ if type_ is not None else args[0].type)

    return build


def _math(name: str) -> Callable[[list[Expr]], Expr]:
    return _fn(name, sa.Double())


def _part(name: str) -> Callable[[list[Expr]], Expr]:
    def build(args: list[Expr]) -> Expr:
        return getattr(sa.func, name)(_local(args[0]), type_=sa.BigInteger())

    return build


def _round(args: list[Expr]) -> Expr:
    # numpy/pandas round half to even; DuckDB's round_even does the same.
    digits = args[1] if len(args) > 1 else sa.literal(0, sa.Integer())
    return sa.func.round_even(args[0], digits, type_=args[0].type)


def _int(args: list[Expr]) -> Expr:
    # Python's int() truncates toward zero; SQL's CAST rounds.
    value = args[0]
    if is_inexact(value):
        value = sa.func.trunc(value, type_=value.type)
    return sa.cast(value, sa.BigInteger())


def _first_type(args: list[Expr]) -> TypeEngine[Any]:
    return next((a.type for a in args if not isinstance(a.type, sa.types.NullType)), args[0].type)


def _coalesce(args: list[Expr]) -> Expr:
    return sa.func.coalesce(*args, type_=_first_type(args))


def _extreme(name: str) -> Callable[[list[Expr]], Expr]:
    def build(args: list[Expr]) -> Expr:
        if len(args) == 1:
            return args[0]
        return getattr(sa.func, name)(*args, type_=args[0].type)

    return build


def _now(args: list[Expr]) -> Expr:
    return sa.func.get_current_timestamp(type_=ZonedDateTime("UTC"))


def _today(args: list[Expr]) -> Expr:
    utc = sa.func.timezone(sa.literal("UTC", sa.String()), sa.func.get_current_timestamp())
    return sa.cast(utc, sa.Date())


def _date_diff(args: list[Expr]) -> Expr:
    unit = _unit(args[0])
    start, end = args[1], args[2]
    # calendar units count in the local time of a zoned value, the others in elapsed time
    convert = _local if unit in ("month", "quarter", "year") else _utc
    start, end = convert(start), convert(end)
    return sa.func.datesub(sa.literal(unit, sa.String()), start, end, type_=sa.BigInteger())


_INTERVALS = {
    "second": "to_seconds", "minute": "to_minutes", "hour": "to_hours", "day": "to_days",
    "week": "to_weeks", "month": "to_months", "quarter": "to_months", "year": "to_years",
}


def _date_add(args: list[Expr]) -> Expr:
    value, count, unit = args[0], args[1], _unit(args[2])
    if unit == "quarter":
        count = count * sa.literal(3, sa.BigInteger())
    if unit != "second" and not is_integer(count):
        count = sa.cast(count, sa.BigInteger())
    interval = getattr(sa.func, _INTERVALS[unit])(count, type_=sa.Interval())
    zone = _zone(value)
    if zone is not None and unit in _CALENDAR_UNITS:
        # pandas DateOffset: the same wall-clock time in the zone, across DST changes
        return _rezone((_local(value) + interval), zone)
    result = (value + interval)
    if isinstance(value.type, sa.Date) and unit in _CALENDAR_UNITS:
        return sa.cast(result, sa.Date())
    if isinstance(value.type, sa.Date):
        return sa.cast(result, sa.DateTime())
    return sa.type_coerce(result, value.type)


def _date_trunc(args: list[Expr]) -> Expr:
    unit, value = _unit(args[0]), args[1]
    truncated = sa.func.date_trunc(sa.literal(unit, sa.String()), _local(value))
    zone = _zone(value)
    if zone is not None:
        return _rezone(truncated, zone)
    if isinstance(value.type, sa.Date):
        return sa.cast(truncated, sa.Date())
    return sa.type_coerce(truncated, value.type)


def _day_of_week(args: list[Expr]) -> Expr:
    # pandas: Monday = 0 ... Sunday = 6
    return sa.func.isodow(_local(args[0]), type_=sa.BigInteger()) - sa.literal(1, sa.BigInteger())


def _strftime(args: list[Expr]) -> Expr:
    _literal(args[1], "format", str)
    return sa.func.strftime(_local(args[0]), args[1], type_=sa.String())


def _regex_extract(args: list[Expr]) -> Expr:
    pattern = _pattern(args[1])
    group = _literal(args[2], "group", int) if len(args) > 2 else 0
    if not 0 <= group <= pattern.groups:
        raise ArgumentError(
            f"group {group} does not exist: the pattern has {pattern.groups} group(s); "
            "0 is the whole match"
        )
    value = _text(args[0])
    extracted = sa.func.regexp_extract(value, args[1], sa.literal(group, sa.BigInteger()),
                                       type_=sa.String())
    # pandas str.extract: no match is null (DuckDB returns '')
    return sa.case((sa.func.regexp_matches(value, args[1], type_=sa.Boolean()), extracted))


def _regex_replace(args: list[Expr]) -> Expr:
    _pattern(args[1])
    _literal(args[2], "replacement", str)
    return sa.func.regexp_replace(_text(args[0]), args[1], args[2], sa.literal("g", sa.String()),
                                  type_=sa.String())


def _matches(args: list[Expr]) -> Expr:
    _pattern(args[1])
    found = sa.func.regexp_matches(_text(args[0]), args[1], type_=sa.Boolean())
    # pandas str.contains on a missing string: False
    return sa.func.coalesce(found, sa.false(), type_=sa.Boolean())


def _split_part(args: list[Expr]) -> Expr:
    if isinstance(args[2], BindParameter) and args[2].value == 0:
        raise ArgumentError("part numbers count from 1 (negative ones from the end), not 0")
    parts = sa.func.string_split(_text(args[0]), args[1])
    return sa.func.list_extract(parts, args[2], type_=sa.String())


def _padder(side: str | None) -> Callable[[list[Expr]], Expr]:
    def build(args: list[Expr]) -> Expr:
        value, width = _text(args[0]), args[1]
        fill = args[2] if len(args) > 2 else sa.literal(" ", sa.String())
        if isinstance(fill, BindParameter) and (not isinstance(fill.value, str)
                                                or len(fill.value) != 1):
            raise ArgumentError("the fill character must be one character, e.g. '0'")
        where = side
        if where is None:
            where = _literal(args[3], "side", str) if len(args) > 3 else "left"
            if where not in ("left", "right"):
                raise ArgumentError(f"side must be 'left' or 'right', not {where!r}")
        padded = getattr(sa.func, "lpad" if where == "left" else "rpad")(
            value, width, fill, type_=sa.String()
        )
        # pandas str.pad never shortens a longer string (SQL lpad/rpad would cut it)
        return sa.case((sa.func.length(value) >= width, value), else_=padded)

    return build


def _salt(e: Expr) -> Expr:
    salt = _literal(e, "salt", str)
    if not is_reference(salt):
        return e

    def resolved() -> str:
        # resolved only when the statement's parameters are built for a run
        value = resolve(salt, where="sha256 salt")
        register_secret(value)
        return value

    return sa.bindparam(None, callable_=resolved, type_=sa.String())


def _sha256(args: list[Expr]) -> Expr:
    value = _text(args[0])
    if len(args) > 1:
        value = _salt(args[1]).op("||", return_type=sa.String())(value)
    return sa.func.sha256(value, type_=sa.String())


def _mask(args: list[Expr]) -> Expr:
    value = _text(args[0])
    keep = _literal(args[1], "keep_last", int) if len(args) > 1 else 4
    if keep < 0:
        raise ArgumentError(f"keep_last must be 0 or more, not {keep}")
    char = args[2] if len(args) > 2 else sa.literal("*", sa.String())
    keep_e = sa.literal(keep, sa.BigInteger())
    hidden = sa.func.greatest(sa.func.length(value) - keep_e, sa.literal(0, sa.BigInteger()))
    return sa.func.repeat(char, hidden, type_=sa.String()).op("||", return_type=sa.String())(
        sa.func.right(value, keep_e, type_=sa.String())
    )


def _if_else(args: list[Expr]) -> Expr:
    return sa.type_coerce(sa.case((args[0], args[1]), else_=args[2]), _first_type(args[1:]))


def _case(args: list[Expr]) -> Expr:
    if len(args) % 2 == 0:
        raise ArgumentError(
            "case needs condition/value pairs and a default: case(c1, v1, c2, v2, default)"
        )
    pairs = [(args[i], args[i + 1]) for i in range(0, len(args) - 1, 2)]
    values = [v for _, v in pairs] + [args[-1]]
    return sa.type_coerce(sa.case(*pairs, else_=args[-1]), _first_type(values))


def _is_none(e: Expr) -> bool:
    return isinstance(e, sa.sql.elements.Null)


def _clip(args: list[Expr]) -> Expr:
    value, low, high = args
    whens = []
    if not _is_none(low):
        whens.append((value < low, low))
    if not _is_none(high):
        whens.append((value > high, high))
    if not whens:
        return value
    return sa.type_coerce(sa.case(*whens, else_=value), value.type)


def _log(args: list[Expr]) -> Expr:
    natural = sa.func.ln(args[0], type_=sa.Double())
    if len(args) == 1:
        return natural
    return natural / sa.func.ln(args[1], type_=sa.Double())


# ----------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Function:
    """One function of the expression language.

    Attributes:
        min_args: the fewest arguments.
        max_args: the most (None: any number).
        build: compiled arguments -> its SQL; may raise :class:`ArgumentError`.
        doc: what it does (one line, for messages and the README).
        params: names of its parameters in order, for the ones that may be passed by keyword
            (``mask(phone, keep_last=4)``).
    """

    min_args: int
    max_args: int | None
    build: Callable[[list[Expr]], Expr]
    doc: str
    params: tuple[str, ...] = ()


_F = Function
_CAST_DATE = _F(1, 1, lambda a: sa.cast(a[0], sa.Date()), "cast to date")
_IS_NULL = _F(1, 1, lambda a: a[0].is_(None), "true where the value is null")
_NOT_NULL = _F(1, 1, lambda a: a[0].is_not(None), "true where not null")

FUNCTIONS: dict[str, Function] = {
    # text
    "lower": _F(1, 1, _fn("lower", sa.String()), "lower-case a string"),
    "upper": _F(1, 1, _fn("upper", sa.String()), "upper-case a string"),
    "strip": _F(1, 1, _fn("trim", sa.String()), "remove surrounding spaces"),
    "lstrip": _F(1, 1, _fn("ltrim", sa.String()), "remove leading spaces"),
    "rstrip": _F(1, 1, _fn("rtrim", sa.String()), "remove trailing spaces"),
    "len": _F(1, 1, _fn("length", sa.BigInteger()), "length of a string"),
    "length": _F(1, 1, _fn("length", sa.BigInteger()), "length of a string"),
    "substr": _F(2, 3, _fn("substr", sa.String()), "substr(s, start, length), 1-based like SQL"),
    "replace": _F(3, 3, _fn("replace", sa.String()), "replace(s, old, new)"),
    "contains": _F(2, 2, _fn("contains", sa.Boolean()), "contains(s, part)"),
    "startswith": _F(2, 2, _fn("starts_with", sa.Boolean()), "startswith(s, prefix)"),
    "endswith": _F(2, 2, _fn("ends_with", sa.Boolean()), "endswith(s, suffix)"),
    "concat": _F(1, None, _fn("concat", sa.String()), "concat(a, b, ...), nulls count as ''"),
    "position": _F(2, 2, _fn("strpos", sa.BigInteger()),
                   "position(s, part): 1-based index of part in s, 0 when absent"),
    "split_part": _F(3, 3, _split_part,
                     "split_part(s, sep, n): the n-th piece (1-based, -1 = last), null if none"),
    "lpad": _F(2, 3, _padder("left"), "lpad(s, width, char=' '): pad on the left",
               ("s", "width", "char")),
    "rpad": _F(2, 3, _padder("right"), "rpad(s, width, char=' '): pad on the right",
               ("s", "width", "char")),
    "pad": _F(2, 4, _padder(None), "pad(s, width, char=' ', side='left'), like str.pad",
              ("s", "width", "char", "side")),
    "regex_extract": _F(2, 3, _regex_extract,
                        "regex_extract(s, pattern, group=0): the match or group, null if none",
                        ("s", "pattern", "group")),
    "regex_replace": _F(3, 3, _regex_replace,
                        "regex_replace(s, pattern, repl): every match replaced (\\1 = group 1)"),
    "matches": _F(2, 2, _matches,
                  "matches(s, pattern): the pattern occurs in s (false for null)"),
    "md5": _F(1, 1, lambda a: sa.func.md5(_text(a[0]), type_=sa.String()), "md5 hex digest"),
    "sha256": _F(1, 2, _sha256,
                 "sha256(s, salt=''): hex digest of salt + s; the salt may be ${ENV} or enc:",
                 ("s", "salt")),
    "mask": _F(1, 3, _mask, "mask(s, keep_last=4, char='*'): hide all but the last characters",
               ("s", "keep_last", "char")),
    # numbers
    "abs": _F(1, 1, _fn("abs"), "absolute value"),
    "round": _F(1, 2, _round, "round(x, digits=0), half to even like pandas"),
    "floor": _F(1, 1, _fn("floor"), "round down"),
    "ceil": _F(1, 1, _fn("ceil"), "round up"),
    "clip": _F(3, 3, _clip, "clip(x, lo, hi): x limited to [lo, hi] (None: no bound)",
               ("x", "lower", "upper")),
    "sqrt": _F(1, 1, _math("sqrt"), "square root"),
    "pow": _F(2, 2, _math("power"), "pow(x, y): x to the power y"),
    "exp": _F(1, 1, _math("exp"), "e to the power x"),
    "log": _F(1, 2, _log, "log(x, base=e): natural logarithm like numpy, or in a base"),
    "ln": _F(1, 1, _math("ln"), "natural logarithm"),
    "log10": _F(1, 1, _math("log10"), "base-10 logarithm"),
    "log2": _F(1, 1, _math("log2"), "base-2 logarithm"),
    "sin": _F(1, 1, _math("sin"), "sine (radians)"),
    "cos": _F(1, 1, _math("cos"), "cosine (radians)"),
    "tan": _F(1, 1, _math("tan"), "tangent (radians)"),
    "asin": _F(1, 1, _math("asin"), "arc sine"),
    "acos": _F(1, 1, _math("acos"), "arc cosine"),
    "atan": _F(1, 1, _math("atan"), "arc tangent"),
    "atan2": _F(2, 2, _math("atan2"), "atan2(y, x): angle of the point (x, y)"),
    "radians": _F(1, 1, _math("radians"), "degrees to radians"),
    "degrees": _F(1, 1, _math("degrees"), "radians to degrees"),
    "pi": _F(0, 0, lambda a: sa.func.pi(type_=sa.Double()), "the number pi"),
    # choices and nulls
    "coalesce": _F(1, None, _coalesce, "first non-null argument"),
    "min": _F(1, None, _extreme("least"), "smallest argument (nulls ignored)"),
    "max": _F(1, None, _extreme("greatest"), "largest argument (nulls ignored)"),
    "if_else": _F(3, 3, _if_else, "if_else(cond, a, b): a where cond holds, else b"),
    "case": _F(3, None, _case, "case(c1, v1, c2, v2, ..., default): the first matching value"),
    "isnull": _IS_NULL,
    "isna": _IS_NULL,
    "notnull": _NOT_NULL,
    "notna": _NOT_NULL,
    # dates and times
    "now": _F(0, 0, _now, "the current time (UTC), the same for every row of a run"),
    "today": _F(0, 0, _today, "today's date (UTC)"),
    "year": _F(1, 1, _part("year"), "year of a date/timestamp"),
    "month": _F(1, 1, _part("month"), "month (1-12)"),
    "day": _F(1, 1, _part("day"), "day of the month"),
    "hour": _F(1, 1, _part("hour"), "hour of a timestamp"),
    "minute": _F(1, 1, _part("minute"), "minute of a timestamp"),
    "day_of_week": _F(1, 1, _day_of_week, "day of the week, Monday = 0 (like pandas)"),
    "day_of_year": _F(1, 1, _part("dayofyear"), "day of the year (1-366)"),
    "week": _F(1, 1, _part("week"), "ISO week number (1-53)"),
    "quarter": _F(1, 1, _part("quarter"), "quarter (1-4)"),
    "date_diff": _F(3, 3, _date_diff,
                    "date_diff(unit, a, b): whole units from a to b (negative if b is earlier)"),
    "date_add": _F(3, 3, _date_add, "date_add(d, n, unit): d moved by n units"),
    "date_trunc": _F(2, 2, _date_trunc, "date_trunc(unit, d): d rounded down to the unit"),
    "strftime": _F(2, 2, _strftime, "strftime(d, format): a date as text, e.g. '%Y-%m'"),
    "date": _CAST_DATE,
    "to_date": _CAST_DATE,
    "to_datetime": _F(1, 1, lambda a: sa.cast(a[0], sa.DateTime()), "cast to timestamp"),
    # casts
    "str": _F(1, 1, lambda a: sa.cast(a[0], sa.String()), "cast to string"),
    "int": _F(1, 1, _int, "cast to integer (truncates like Python)"),
    "float": _F(1, 1, lambda a: sa.cast(a[0], sa.Double()), "cast to float"),
    "bool": _F(1, 1, lambda a: sa.cast(a[0], sa.Boolean()), "cast to boolean"),
}
"""The functions an expression may call, by name."""
