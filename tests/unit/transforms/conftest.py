"""Fixtures of the transformation tests."""

from __future__ import annotations

import pyarrow as pa
import pytest


@pytest.fixture
def people() -> pa.Table:
    """A small table with nulls, strings, numbers and duplicates."""
    return pa.table(
        {
            "id": [1, 2, 3, 4, 5, 6, 7],
            "first_name": ["Ann", "Bob", "Cid", None, "Eve", "Fay", "Gus"],
            "last_name": ["Ax", "By", "Cz", "Dw", "Ev", "Fu", "Gx"],
            "status": ["active", "active", "inactive", "active", None, "active", "inactive"],
            "age": [34, 17, 51, 18, 44, None, 29],
            "quantity": [1, 2, 3, 4, 5, 6, 7],
            "price": [10.0, 2.5, 3.0, None, 1.0, 2.0, 4.0],
            "discount_rate": [0.1, 0.0, 0.5, 0.2, 0.1, 0.3, 0.0],
            "country": ["DE", "FR", "US", "DE", "FR", "DE", None],
            "is_test": [False, False, True, False, False, None, False],
        },
        schema=pa.schema(
            [
                ("id", pa.int64()),
                ("first_name", pa.string()),
                ("last_name", pa.string()),
                ("status", pa.string()),
                ("age", pa.int64()),
                ("quantity", pa.int64()),
                ("price", pa.float64()),
                ("discount_rate", pa.float64()),
                ("country", pa.string()),
                ("is_test", pa.bool_()),
            ]
        ),
    )
