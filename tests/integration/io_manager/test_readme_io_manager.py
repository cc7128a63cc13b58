"""The README's NexusIOManager example ("Using nexus from your own Dagster code") runs as
written and prints what the README says."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from tests.support import run_readme_example


def test_readme_io_manager_example(tmp_path: Path):
    done = run_readme_example("io-manager-example", tmp_path)
    report = tmp_path / "lake/reports/germany.parquet"
    assert sorted(done.stdout.splitlines()) == [
        "customers 3 main.customers",
        f"german_customers 2 {report.as_uri()}",
        "revenue 1 main.revenue",
    ]
    assert pq.read_table(report).column("id").to_pylist() == [1, 3]
    assert (tmp_path / "warehouse.db").exists()
