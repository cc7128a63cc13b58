"""The README's Python API example runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[3] / "README.md"


def test_readme_python_example(tmp_path: Path):
    text = README.read_text(encoding="utf-8")
    marker = text.index("<!-- python-example")
    code = re.search(r"```python\n(.*?)```", text[marker:], re.S).group(1)
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert done.stdout.splitlines()[0].startswith("success 3 2 ")
    saved = (tmp_path / "etl_workspace/jobs/customers_to_warehouse.yaml").read_text()
    assert "not-needed-for-sqlite" not in saved and "enc:" in saved
