"""The README's "Overriding a connection" example runs as written: the demo job's rows land in
the overriding SQLite file, not in the spec's."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from tests.support import run_readme_example

ROOT = Path(__file__).resolve().parents[2]


def test_readme_resource_override_example(tmp_path: Path):
    shutil.copytree(ROOT / "job_specs", tmp_path / "job_specs")
    shutil.copytree(ROOT / "data", tmp_path / "data")
    run_readme_example("resource-override-example", tmp_path)
    with sqlite3.connect(tmp_path / "staging" / "warehouse.db") as con:
        assert con.execute("SELECT count(*) FROM daily_revenue").fetchone() == (180,)
    assert not (tmp_path / "output" / "warehouse.db").exists()
