"""The README's "Overriding a connection" example runs as written: the demo job's rows land in
the overriding SQLite file, not in the spec's."""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_resource_override_example(tmp_path: Path):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    marker = text.index("<!-- resource-override-example")
    code = re.search(r"```python\n(.*?)```", text[marker:], re.S).group(1)
    shutil.copytree(ROOT / "job_specs", tmp_path / "job_specs")
    shutil.copytree(ROOT / "data", tmp_path / "data")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    with sqlite3.connect(tmp_path / "staging" / "warehouse.db") as con:
        assert con.execute("SELECT count(*) FROM daily_revenue").fetchone() == (180,)
    assert not (tmp_path / "output" / "warehouse.db").exists()
