"""Fixtures for the file connector tests: a base_dir per test and a sample table."""

from __future__ import annotations

import datetime as dt
import decimal
from pathlib import Path

import pyarrow as pa
import pytest

from nexus_dagster.connectors.file import FileConnector


@pytest.fixture
def base(tmp_path: Path) -> Path:
    """The connector's base_dir (a fresh directory inside tmp_path)."""
    root = tmp_path / "base"
    root.mkdir()
    return root


@pytest.fixture
def conn(base: Path) -> FileConnector:
    """A file connector confined to ``base``."""
    return FileConnector({"base_dir": str(base)})


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
