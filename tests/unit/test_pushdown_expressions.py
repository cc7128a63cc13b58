"""Which filter/map expressions the pushdown sends to PostgreSQL (same meaning as in DuckDB)."""

from __future__ import annotations

import pytest

from nexus_dagster.transforms.portable import portable_expression

KINDS = {"amount": "decimal", "qty": "int", "status": "string", "at": "time", "ok": "bool",
         "price": "float", "blob": "other"}


@pytest.mark.parametrize("text, kind", [
    ("amount >= 0 and status != \"x\"", "bool"),
    ("amount * 2", "decimal"),
    ("qty + 1", "int"),
    ("status + \"!\"", "string"),
    ("status in [\"a\", \"b\"] or qty not in (1, 2)", "bool"),
    ("amount is None or not ok", "bool"),
    ("coalesce(qty, 0)", "int"),
    ("-abs(price)", "float"),
    ("status.isnull()", "bool"),
    ("qty if ok else None", "int"),
])
def test_portable(text, kind):
    assert portable_expression(text, KINDS) == kind


@pytest.mark.parametrize("text", [
    "status > \"a\"",          # string order depends on the collation
    "amount * 1.5",            # float literals bind differently
    "amount / 2",              # division and rounding differ
    "at >= \"2024-01-01\"",    # text to timestamp depends on the session zone
    "round(amount, 1)",        # round_even is DuckDB's
    "blob == blob",            # types without a portable meaning
    "missing > 1",             # unknown column: the general path names it
    "lower(status)",
    "status ==",
])
def test_not_portable(text):
    assert portable_expression(text, KINDS) is None
