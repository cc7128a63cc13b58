"""The job-level ``engine`` block: validated with file:line, and applied to a whole job's run
(an aggregate bigger than ``memory_limit`` spills to ``temp_directory`` and completes)."""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from nexus_dagster.dagster.factory import build_definitions
from nexus_dagster.spec.loader import collect, load_project

ROWS = 600_000  # 300,000 groups of ~40-byte keys: well over twice the 32MB limit in the engine

JOB = """\
name: big_aggregate
sources:
  - name: events
    source_type: file
    file_path: data/events.csv
transformations:
  - name: per_key
    transformation_type: aggregate
    config:
      group_by: [key]
      aggregations: {{total: [v, sum], n: [v, count]}}
targets:
  - name: out
    target_type: file
    file_path: output/totals.parquet
    file_format: parquet
    write_mode: overwrite
engine:
  memory_limit: {limit}
  temp_directory: spill
  threads: 1
"""


def project(tmp_path: Path, limit: str) -> Path:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    ids = np.arange(ROWS) % (ROWS // 2)
    text = pa.array(ids).cast(pa.string())
    keys = pc.binary_join_element_wise("customer-with-a-long-name-", text, "")
    pacsv.write_csv(pa.table({"key": keys, "v": ids}), data / "events.csv")
    folder = tmp_path / "job_specs"
    folder.mkdir(exist_ok=True)
    (folder / "connections.yaml").write_text("{}\n")
    (folder / "job.yaml").write_text(JOB.format(limit=limit))
    return folder


class SpillWatcher:
    """Records the largest file seen under a folder while a run goes on."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.largest = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            for root, _, files in os.walk(self.folder):
                for name in files:
                    with contextlib.suppress(OSError):  # removed meanwhile
                        self.largest = max(self.largest, os.path.getsize(Path(root) / name))
            self._stop.wait(0.005)

    def __enter__(self) -> SpillWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run(folder: Path) -> dg.ExecuteInProcessResult:
    defs = build_definitions(load_project(folder))
    job = defs.resolve_job_def("big_aggregate")
    return job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)


def test_aggregate_spills_under_the_job_memory_limit(tmp_path: Path) -> None:
    folder = project(tmp_path, "32MB")
    spill = tmp_path / "spill"  # relative temp_directory: from the project root, made for us
    watcher = SpillWatcher(tmp_path)
    with watcher:
        result = run(folder)
    assert result.success
    out = pq.read_table(tmp_path / "output/totals.parquet")
    assert out.num_rows == ROWS // 2
    assert set(out.column("n").to_pylist()) == {2}
    assert pc.sum(out.column("total")).as_py() == int(np.arange(ROWS).__mod__(ROWS // 2).sum())
    assert spill.is_dir() and list(spill.iterdir()) == []  # spill files removed afterwards
    assert watcher.largest > 8 << 20  # spill files of several MB were written meanwhile


def test_memory_limit_reaches_the_engine(tmp_path: Path) -> None:
    result = run(project(tmp_path, "2MB"))  # far too small even to spill: the limit applies
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "Out of Memory" in str(failure.step_failure_data.error)


def test_engine_block_errors_name_file_and_line(tmp_path: Path) -> None:
    job = JOB.format(limit="lots") + "  swap: true\n"
    folder = tmp_path / "job_specs"
    folder.mkdir()
    (folder / "connections.yaml").write_text("{}\n")
    (folder / "job.yaml").write_text(job.replace("threads: 1", "threads: 0"))
    _, problems = collect([folder])
    text = "\n".join(str(p) for p in problems)
    assert "job.yaml:19" in text and "memory_limit" in text and "512MB" in text
    assert "job.yaml:21" in text and "threads" in text
    assert "job.yaml:22" in text and "engine.swap" in text
