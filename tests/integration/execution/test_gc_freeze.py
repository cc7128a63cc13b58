"""The process that builds the definitions freezes what it loaded out of the garbage collector,
once when they are built and once at the first step (``nexus_dagster/dagster/heap.py``), unless
``NEXUS_GC_FREEZE=0``: counted with ``gc.get_freeze_count()`` in a fresh interpreter (the test
process froze long ago)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import write_job

#: builds and runs in a fresh interpreter, printing the freeze count after each: a build and a
#: run with NEXUS_GC_FREEZE=0, then a build, two runs and another build without it
RUNS = """
import gc, json, os, sys
import dagster as dg
from nexus_dagster.dagster.factory import build_definitions
from nexus_dagster.spec.loader import load_project

def build():
    job = build_definitions(load_project(sys.argv[1])).resolve_job_def("tiny_copy")
    counts.append(gc.get_freeze_count())
    return job

def run(job):
    assert job.execute_in_process(instance=dg.DagsterInstance.ephemeral()).success
    counts.append(gc.get_freeze_count())

counts = []
os.environ["NEXUS_GC_FREEZE"] = "0"
run(build())
del os.environ["NEXUS_GC_FREEZE"]
job = build()
run(job)
run(job)
build()
print(json.dumps(counts))
"""


@pytest.fixture(scope="module")
def freeze_counts(tmp_path_factory: pytest.TempPathFactory) -> list[int]:
    tmp_path = tmp_path_factory.mktemp("gc_freeze")
    (tmp_path / "tiny.csv").write_text("id,name\n1,a\n2,b\n")
    folder = write_job(tmp_path, {
        "name": "tiny_copy",
        "sources": [{"name": "src", "source_type": "file", "file_format": "csv",
                     "file_path": str(tmp_path / "tiny.csv")}],
        "targets": [{"name": "dst", "target_type": "database", "table": "tiny",
                     "connection_params": {"type": "sqlite",
                                           "database": str(tmp_path / "out.db")},
                     "write_mode": "overwrite"}],
    })
    done = subprocess.run([sys.executable, "-c", RUNS, str(folder)], capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).resolve().parents[3])
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_with_the_switch_off_neither_a_build_nor_a_run_freezes_anything(freeze_counts):
    assert freeze_counts[:2] == [0, 0]


def test_building_the_definitions_freezes_what_the_process_loaded(freeze_counts):
    # Dagster, pyarrow, SQLAlchemy and the definitions: far more than 100,000 objects
    assert freeze_counts[2] > 100_000


def test_the_first_run_freezes_what_was_made_since_the_build(freeze_counts):
    assert freeze_counts[3] - freeze_counts[2] > 1_000


def test_later_runs_and_builds_in_the_process_freeze_nothing_more(freeze_counts):
    # a freeze adds thousands of objects (the first run: ~5,000); a frozen object freed or
    # re-tracked later moves the count by a few
    assert abs(freeze_counts[4] - freeze_counts[3]) < 100
    assert abs(freeze_counts[5] - freeze_counts[3]) < 100
