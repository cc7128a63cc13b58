"""The README's Python API example runs as written."""

from __future__ import annotations

from pathlib import Path

from tests.support import run_readme_example


def test_readme_python_example(tmp_path: Path):
    done = run_readme_example("python-example", tmp_path)
    assert done.stdout.splitlines()[0].startswith("success 3 2 ")
    saved = (tmp_path / "etl_workspace/jobs/customers_to_warehouse.yaml").read_text()
    assert "not-needed-for-sqlite" not in saved and "enc:" in saved
