"""Fixtures for the file connector tests: a sample table (``base`` and ``conn`` are in
tests/integration/conftest.py)."""

from __future__ import annotations

import datetime as dt
import decimal

import pyarrow as pa
import pytest


@pytest.fixture
def sample() -> pa.Table:
    """Nulls, unicode, an empty string, decimals and time-zone-aware timestamps."""
    paris = "Europe/Paris"
    return pa.table(
        {
            "id": pa.array([1, 2, None, 4], pa.int64()),
            "name": pa.array(["Zoë", "東京", None, ""], pa.string()),
            "amount": pa.array(
                [decimal.Decimal("1.10"), None, decimal.Decimal("-12345.67"), decimal.Decimal("0")],
                pa.decimal128(12, 2),
            ),
            "ratio": pa.array([0.5, None, 1.25, -3.0], pa.float64()),
            "active": pa.array([True, False, None, True], pa.bool_()),
            "ts": pa.array(
                [
                    dt.datetime(2024, 1, 1, 10, 0, tzinfo=dt.UTC),
                    None,
                    dt.datetime(2024, 6, 30, 23, 59, 59, 123456, tzinfo=dt.UTC),
                    dt.datetime(1999, 12, 31, 0, 0, tzinfo=dt.UTC),
                ],
                pa.timestamp("us", tz=paris),
            ),
        }
    )
