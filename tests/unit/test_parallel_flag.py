"""`parallel: true` is never a no-op: it gives the transformation engine `max_workers` threads
(the job stays one in-process Dagster step)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb

from nexus_dagster.dagster.factory import build_definitions
from nexus_dagster.run.general import transform_settings
from nexus_dagster.spec.loader import load_project
from nexus_dagster.transforms import duckdb_stage

JOB = """\
name: wide
parallel: {parallel}
max_workers: 3
{engine}
{steps}
sources: [{{name: src, source_type: file, file_path: in.csv}}]
targets: [{{name: out, target_type: file, file_path: out.parquet}}]
"""


FILTER = """transformations:
  - {name: big, transformation_type: filter, config: {condition: "id > 1"}}"""


def _spec(tmp_path: Path, parallel: bool, engine: str = "", steps: str = ""):
    folder = tmp_path / "job_specs"
    folder.mkdir()
    (folder / "wide.yaml").write_text(JOB.format(parallel=str(parallel).lower(), engine=engine,
                                                  steps=steps))
    project = load_project(folder)
    return project, project.jobs[0]


def test_parallel_job_runs_the_engine_on_max_workers_threads(tmp_path: Path, monkeypatch):
    """The run opens its DuckDB engine with threads = max_workers (the connect call is
    watched, the run itself is real: CSV -> filter -> Parquet)."""
    project, spec = _spec(tmp_path, parallel=True, steps=FILTER)
    assert transform_settings(spec)["threads"] == 3
    (tmp_path / "in.csv").write_text("id\n1\n2\n3\n")
    seen: list[dict] = []
    real_connect = duckdb.connect

    def watched(*args, **kwargs):
        seen.append(dict(kwargs.get("config") or {}))
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(duckdb_stage.duckdb, "connect", watched)
    result = build_definitions(project).resolve_job_def("wide").execute_in_process(
        instance=dg.DagsterInstance.ephemeral())
    assert result.success
    engines = [config for config in seen if "temp_directory" in config]  # the stage's engine
    assert engines and all(config["threads"] == 3 for config in engines)


def test_engine_threads_win_over_max_workers(tmp_path: Path):
    _, spec = _spec(tmp_path, parallel=True, engine="engine: {threads: 2}")
    assert transform_settings(spec)["threads"] == 2


def test_sequential_job_keeps_the_engine_default(tmp_path: Path):
    _, spec = _spec(tmp_path, parallel=False)
    assert transform_settings(spec).get("threads") is None


def test_parallel_job_is_one_in_process_step(tmp_path: Path):
    project, _ = _spec(tmp_path, parallel=True)
    job = build_definitions(project).resolve_job_def("wide")
    assert job.executor_def.name == "in_process"
