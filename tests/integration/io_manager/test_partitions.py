"""Time-partitioned assets through NexusIOManager: a partition run replaces exactly its window,
a partitioned input gets only its window, and what is missing is a clear error."""

from __future__ import annotations

import datetime as dt
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa

from tests.integration.io_manager.helpers import Backend, failure_text, metadata_of

DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01")


def orders_of(day: str, amounts: list[float]) -> pd.DataFrame:
    """Orders at 10:00, 11:00 ... of ``day``."""
    start = dt.datetime.fromisoformat(day).replace(hour=10)
    return pd.DataFrame({
        "ordered_at": [start + dt.timedelta(hours=i) for i in range(len(amounts))],
        "amount": amounts,
    })


def stored(backend: Backend) -> list[tuple[str, float]]:
    table = backend.read("orders").sort_by([("ordered_at", "ascending"), ("amount", "ascending")])
    return [(row["ordered_at"].strftime("%Y-%m-%d %H:%M"), float(row["amount"]))
            for row in table.to_pylist()]


def test_a_daily_partition_rerun_replaces_only_its_day(database: Backend):
    data = {"2024-01-01": [1.0, 2.0, 3.0], "2024-01-02": [10.0, 20.0]}
    seen: dict[str, Any] = {}

    @dg.asset(partitions_def=DAILY, metadata={"nexus/partition_column": "ordered_at"})
    def orders(context) -> pd.DataFrame:
        return orders_of(context.partition_key, data[context.partition_key])

    @dg.asset(partitions_def=DAILY)
    def daily_total(context, orders: pd.DataFrame) -> None:
        seen[context.partition_key] = orders

    @dg.asset(partitions_def=DAILY)
    def daily_table(orders: pa.Table) -> None:
        seen["arrow"] = orders

    resources = {"io_manager": database.io_manager()}
    for day in ("2024-01-01", "2024-01-02"):
        result = dg.materialize([orders], partition_key=day, resources=resources)
        assert result.success, failure_text(result)
    data["2024-01-01"] = [5.0]
    result = dg.materialize([orders, daily_total, daily_table], partition_key="2024-01-01",
                            resources=resources)
    assert result.success, failure_text(result)
    assert stored(database) == [("2024-01-01 10:00", 5.0), ("2024-01-02 10:00", 10.0),
                                ("2024-01-02 11:00", 20.0)]
    metadata = metadata_of(result, "orders")
    assert metadata["dagster/row_count"] == 1
    assert metadata["nexus/rows_replaced"] == 3
    assert metadata["nexus/write_mode"] == "append"
    assert seen["2024-01-01"]["amount"].tolist() == [5.0]
    assert isinstance(seen["arrow"], pa.Table) and seen["arrow"]["amount"].to_pylist() == [5.0]

    result = dg.materialize([orders, daily_total], partition_key="2024-01-02",
                            selection=[daily_total], resources=resources)
    assert result.success, failure_text(result)
    assert sorted(seen["2024-01-02"]["amount"].tolist()) == [10.0, 20.0]


def test_rows_outside_the_partition_fail_and_change_nothing(database: Backend):
    days = ["2024-01-01", "2024-01-02"]

    @dg.asset(partitions_def=DAILY, metadata={"nexus/partition_column": "ordered_at"})
    def orders(context) -> pd.DataFrame:
        return orders_of(days.pop(0), [1.0, 2.0])

    resources = {"io_manager": database.io_manager()}
    assert dg.materialize([orders], partition_key="2024-01-01", resources=resources).success
    result = dg.materialize([orders], partition_key="2024-01-01", resources=resources,
                            raise_on_error=False)
    assert not result.success
    assert "2 row(s) have ordered_at outside partition 2024-01-01" in failure_text(result)
    assert stored(database) == [("2024-01-01 10:00", 1.0), ("2024-01-01 11:00", 2.0)]


def test_a_missing_partition_column_is_a_clear_error(database: Backend):
    @dg.asset(partitions_def=DAILY)
    def orders(context) -> pd.DataFrame:
        return orders_of(context.partition_key, [1.0])

    result = dg.materialize([orders], partition_key="2024-01-01",
                            resources={"io_manager": database.io_manager()},
                            raise_on_error=False)
    assert not result.success
    assert ("asset orders is partitioned, but has no nexus/partition_column metadata: name the "
            "date or timestamp column") in failure_text(result)


def test_a_file_target_refuses_partitions(tmp_path):
    @dg.asset(partitions_def=DAILY, metadata={"nexus/partition_column": "ordered_at"})
    def orders(context) -> pd.DataFrame:
        return orders_of(context.partition_key, [1.0])

    from nexus_dagster import NexusIOManager

    manager = NexusIOManager(connection_params={"type": "file", "base_dir": str(tmp_path)})
    result = dg.materialize([orders], partition_key="2024-01-01",
                            resources={"io_manager": manager}, raise_on_error=False)
    assert not result.success
    assert "file (NexusIOManager.connection_params) cannot replace a partition's rows" in (
        failure_text(result))
    assert list(tmp_path.iterdir()) == []
