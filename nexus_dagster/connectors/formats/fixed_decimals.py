"""Fixed-decimal inference: text numbers written with one number of fraction digits (``12.50``,
``-3.10``, ``0.05``) read as ``decimal128(p, s)`` instead of float64, so money stays exact.

A column qualifies when every non-null value of the sample is a plain decimal literal
(``[+-]digits.digits``: no exponent, no thousands separator) and all have the same number of
fraction digits ``s``. Its type is ``decimal128(p, s)`` with ``p = max(18, needed + 3)`` capped at
38, ``needed`` being the widest sampled integer part plus ``s``: 18 digits hold any money column
(16 integer digits at scale 2), and a wider sample keeps three digits (1000x) of headroom. A
sample wider than 38 digits stays float64. ``options.column_types`` always wins and
``options.decimal_inference: false`` turns this off for a source.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from nexus_dagster.errors import DataError

#: the least precision an inferred decimal gets
MIN_PRECISION = 18
#: integer digits added above the widest sampled value
HEADROOM = 3
#: the widest decimal128
MAX_PRECISION = 38

_PLAIN = r"[+-]?\d+\.\d+"
_PLAIN_RE = re.compile(_PLAIN)


def decimal_type(integer_digits: int, scale: int) -> pa.DataType | None:
    """The inferred type for a sample whose widest integer part has ``integer_digits`` digits,
    or None when it needs more than 38 digits."""
    needed = integer_digits + scale
    if scale < 1 or needed > MAX_PRECISION:
        return None
    return pa.decimal128(min(MAX_PRECISION, max(MIN_PRECISION, needed + HEADROOM)), scale)


def text_decimal_type(values: pa.Array | pa.ChunkedArray) -> pa.DataType | None:
    """The decimal type of a sampled text column (CSV), or None when it should stay float64.

    >>> text_decimal_type(pa.array(["12.50", None, "-3.10"]))
    Decimal128Type(decimal128(18, 2))
    >>> text_decimal_type(pa.array(["12.5", "12.50"])) is None
    True
    """
    present = pc.drop_null(values)
    if len(present) == 0:
        return None
    if not pc.all(pc.match_substring_regex(present, f"^{_PLAIN}$")).as_py():
        return None
    # arrays only: a Python scalar argument would make pyarrow import pandas (~2 s)
    dot = pc.find_substring(present, ".")
    after_dot = pc.min_max(pc.subtract(pc.utf8_length(present), dot)).as_py()
    if after_dot["min"] != after_dot["max"]:
        return None
    signed = pc.cast(pc.starts_with(present, "-"), pa.int32())
    plus = pc.cast(pc.starts_with(present, "+"), pa.int32())
    integer = pc.subtract(pc.subtract(dot, signed), plus)
    return decimal_type(int(pc.max(integer).as_py()), int(after_dot["min"]) - 1)


def parse_json_number(text: str) -> Decimal | float:
    """``json.loads(parse_float=...)``: a plain decimal literal as a Decimal keeping its written
    digits (``12.50`` -> ``Decimal('12.50')``), anything else (``1e5``) as a float."""
    return Decimal(text) if _PLAIN_RE.fullmatch(text) else float(text)


def number_decimal_type(values: Iterable[Any]) -> pa.DataType | None:
    """The decimal type of a sampled JSON field (values parsed with :func:`parse_json_number`),
    or None when it should stay as read (a float, an int, a string, or mixed fraction digits).

    >>> number_decimal_type([Decimal("12.50"), None, Decimal("-3.10")])
    Decimal128Type(decimal128(18, 2))
    """
    scale = None
    integer_digits = 0
    for value in values:
        if value is None:
            continue
        if not isinstance(value, Decimal):
            return None
        _, digits, exponent = value.as_tuple()
        if not isinstance(exponent, int) or exponent >= 0:
            return None
        if scale is None:
            scale = -exponent
        elif scale != -exponent:
            return None
        integer_digits = max(integer_digits, len(digits) + exponent, 1)
    return None if scale is None else decimal_type(integer_digits, scale)


def fits(value: Decimal, dtype: pa.Decimal128Type) -> bool:
    """Whether ``value`` is held exactly by ``dtype`` (no fraction or integer digit lost)."""
    _, digits, exponent = value.normalize().as_tuple()
    if not isinstance(exponent, int):
        return False
    if -exponent > dtype.scale:
        return False
    integer_digits = max(len(digits) + exponent, 0)
    return integer_digits <= dtype.precision - dtype.scale


def unfit_value_error(
    file: str, column: str, value: Any, dtype: pa.DataType, *, inferred: bool
) -> DataError:
    """The error for a value that a decimal column cannot hold exactly, with both fixes
    (``inferred``: the type came from the sample, not from ``options.column_types``)."""
    scale = getattr(dtype, "scale", 0)
    origin = (
        "inferred from the file's first rows, which all had "
        f"{scale} fraction digit{'s' if scale != 1 else ''}"
        if inferred
        else "from options.column_types"
    )
    return DataError(
        f"{file}: column {column!r} has the value {str(value)!r}, which does not fit its type "
        f"{dtype} ({origin}; digits are never dropped silently); set options.column_types: "
        f"{{{column}: double}} to read it as a float, or a wider decimal such as "
        f"{{{column}: 'decimal(38, {max(scale, 1)})'}} (with as many fraction digits as the "
        "values have)"
    )


def first_unfit_text(values: pa.Array | pa.ChunkedArray, dtype: pa.DataType) -> str | None:
    """The first text value of ``values`` that ``dtype`` cannot hold exactly, or None."""
    try:
        pc.cast(values, dtype)
        return None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    for index in range(len(values)):
        one = values.slice(index, 1)
        try:
            pc.cast(one, dtype)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return one.to_pylist()[0]
    return None
