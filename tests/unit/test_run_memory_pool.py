"""The Arrow memory pool a run's batches use (run/memory_pool.py): jemalloc with freed pages
returned at once, chosen by the general plan, unless ``ARROW_DEFAULT_MEMORY_POOL`` says
otherwise. Each case runs in a fresh interpreter, since the pool is the process's default."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from tests.support import write_job

REPO = Path(__file__).resolve().parents[2]

RUN_JOB = """
import json, sys
import pyarrow as pa
from nexus_dagster import run
from nexus_dagster.spec.loader import load_project
project = load_project(sys.argv[1])
before = pa.default_memory_pool().backend_name
list(run.execute(project.job("pool_job"), project.connections))
print(json.dumps([before, pa.default_memory_pool().backend_name]))
"""


def _has_jemalloc() -> bool:
    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:
        return False
    return True


def _pools(tmp_path: Path, env: dict[str, str]) -> list[str]:
    source = tmp_path / "in.csv"
    source.write_text("id,amount\n1,2.50\n2,-1.00\n3,4.25\n")
    folder = write_job(tmp_path, {
        "name": "pool_job",
        "sources": [{"name": "src", "source_type": "file", "file_path": str(source),
                     "file_format": "csv"}],
        "transformations": [{"name": "kept", "transformation_type": "filter",
                             "config": {"condition": "amount > 0"}}],
        "targets": [{"name": "dst", "target_type": "file",
                     "file_path": str(tmp_path / "out.csv"), "file_format": "csv",
                     "write_mode": "overwrite"}],
    })  # fmt: skip
    clean = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    done = subprocess.run(
        [sys.executable, "-c", RUN_JOB, str(folder)],
        cwd=REPO, env={**clean, **env}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert (tmp_path / "out.csv").read_text().count("\n") == 3  # header and the two kept rows
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not _has_jemalloc(), reason="this pyarrow has no jemalloc")
def test_a_general_plan_run_makes_jemalloc_the_default_arrow_pool(tmp_path: Path) -> None:
    before, after = _pools(tmp_path, {})

    assert before == "mimalloc"
    assert after == "jemalloc"


def test_the_pool_named_in_arrow_default_memory_pool_is_kept(tmp_path: Path) -> None:
    assert _pools(tmp_path, {"ARROW_DEFAULT_MEMORY_POOL": "system"}) == ["system", "system"]
