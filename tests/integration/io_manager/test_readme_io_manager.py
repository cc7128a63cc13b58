"""The README's NexusIOManager example ("Using nexus from your own Dagster code") runs as
written and prints what the README says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

README = Path(__file__).resolve().parents[3] / "README.md"


def test_readme_io_manager_example(tmp_path: Path):
    text = README.read_text(encoding="utf-8")
    marker = text.index("<!-- io-manager-example")
    code = re.search(r"```python\n(.*?)```", text[marker:], re.S).group(1)
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    report = tmp_path / "lake/reports/germany.parquet"
    assert sorted(done.stdout.splitlines()) == [
        "customers 3 main.customers",
        f"german_customers 2 {report.as_uri()}",
        "revenue 1 main.revenue",
    ]
    assert pq.read_table(report).column("id").to_pylist() == [1, 3]
    assert (tmp_path / "warehouse.db").exists()
