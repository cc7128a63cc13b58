"""The ``execution`` block: its validation errors (field and fix), the executor each setting
gives, and that splitting a job into steps leaves the asset graph as it was."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from nexus_dagster.dagster.executors import executor_for
from nexus_dagster.dagster.factory import build_definitions
from nexus_dagster.errors import SpecError
from nexus_dagster.spec.json_schema import job_schema
from nexus_dagster.spec.loader import load_project


def _job(**extra: Any) -> dict[str, Any]:
    job = {
        "name": "split",
        "sources": [{"name": "a", "source_type": "file", "file_path": "a.csv",
                     "incremental_column": "id"},
                    {"name": "b", "source_type": "file", "file_path": "b.csv"}],
        "transformations": [{"name": "joined", "transformation_type": "join",
                             "config": {"left": "a", "right": "b", "on": "id"}}],
        "targets": [{"name": "out", "target_type": "file", "file_path": "out.parquet"}],
        "checks": [{"check": "row_count", "target": "out", "min": 1}],
    }
    job.update(extra)
    return job


def _load(tmp_path: Path, job: dict[str, Any], connections: dict | None = None):
    folder = tmp_path / "job_specs"
    folder.mkdir(exist_ok=True)
    (folder / "split.yaml").write_text(yaml.safe_dump(job, sort_keys=False))
    if connections is not None:
        (folder / "connections.yaml").write_text(yaml.safe_dump(connections))
    return load_project(folder)


@pytest.mark.parametrize(("execution", "message", "fix"), [
    ({"executor": "multiprocess"}, "parallelizes nothing", "set steps: per_source"),
    ({"steps": "per_source", "executor": "in_process", "max_concurrent": 2},
     "max_concurrent applies to the multiprocess executor", "set executor: multiprocess"),
    ({"steps": "per_source", "celery": {"broker": "redis://x"}},
     "celery settings apply to executor: celery", "set executor: celery"),
    ({"staging": "s3_staging"}, "staging and staging_path apply to steps: per_source",
     "set steps: per_source"),
    ({"steps": "per_source", "staging_path": "../up"}, "must be a relative prefix",
     "nexus-staging"),
    ({"steps": "all"}, "execution.steps", "per_source"),
])
def test_execution_block_errors_name_the_field_and_the_fix(tmp_path, execution, message, fix):
    with pytest.raises(SpecError) as raised:
        _load(tmp_path, _job(execution=execution))
    text = str(raised.value)
    assert "split.yaml" in text and "execution" in text
    assert message in text and fix in text


@pytest.mark.parametrize(("source", "why"), [
    ({"after_load": {"delete": True}}, "after_load deletes or moves"),
    ({"source_type": "database", "connection_params": {"url": "postgresql://h/db"},
      "table": "t", "cdc": True, "file_path": None}, "cdc confirms the replication slot"),
    ({"source_type": "kafka", "connection_params": {"bootstrap_servers": "127.0.0.1:9"},
      "table": "events", "file_path": None}, "commits what it read"),
])
def test_per_source_refuses_sources_acknowledged_by_their_reader(tmp_path, source, why):
    job = _job(execution={"steps": "per_source"})
    job["sources"][1] = {**job["sources"][1], **source}
    job["sources"][1] = {k: v for k, v in job["sources"][1].items() if v is not None}
    with pytest.raises(SpecError) as raised:
        _load(tmp_path, job)
    text = str(raised.value)
    assert "execution.steps" in text and "cannot stage source 'b'" in text and why in text
    assert "set execution.steps: one" in text


def test_staging_must_name_a_file_like_connection(tmp_path):
    connections = {"warehouse": {"type": "database", "url": "postgresql://h/db"}}
    with pytest.raises(SpecError) as raised:
        _load(tmp_path, _job(execution={"steps": "per_source", "staging": "warehouse"}),
              connections)
    assert "execution.staging" in str(raised.value)
    assert "is a database connection" in str(raised.value)
    with pytest.raises(SpecError, match=r"names no connection.*write a folder as ./lake"):
        _load(tmp_path, _job(execution={"steps": "per_source", "staging": "lake"}), {})
    project = _load(tmp_path, _job(execution={"steps": "per_source", "staging": "./lake"}), {})
    assert project.jobs[0].job.execution.staging == "./lake"


def test_executor_follows_steps_unless_set(tmp_path):
    one = _load(tmp_path, _job()).jobs[0].job
    assert executor_for(one) is dg.in_process_executor
    split = _load(tmp_path, _job(execution={"steps": "per_source", "max_concurrent": 3}))
    executor = executor_for(split.jobs[0].job)
    assert executor.name == "multiprocess"
    resolved = executor.config_schema.resolve_config({"config": {}}).value["config"]
    assert resolved["max_concurrent"] == 3
    assert "forkserver" in resolved["start_method"]  # steps fork from a preloaded server
    forced = _load(tmp_path, _job(execution={"steps": "per_source", "executor": "in_process"}))
    assert executor_for(forced.jobs[0].job) is dg.in_process_executor


def test_celery_executor_resolves_broker_from_the_environment_at_run_time(tmp_path,
                                                                         monkeypatch):
    pytest.importorskip("dagster_celery")
    monkeypatch.delenv("NEXUS_CELERY_BROKER", raising=False)
    spec = _load(tmp_path, _job(execution={"steps": "per_source", "executor": "celery"}))
    executor = executor_for(spec.jobs[0].job)  # built without the variable: not read yet
    assert executor.name == "celery"
    monkeypatch.setenv("NEXUS_CELERY_BROKER", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("NEXUS_CELERY_BACKEND", "redis://127.0.0.1:1/1")
    resolved = executor.config_schema.resolve_config({"config": {}}).value["config"]
    assert resolved["broker"] == "redis://127.0.0.1:1/0"
    assert resolved["backend"] == "redis://127.0.0.1:1/1"


def test_split_job_keeps_the_asset_graph_of_the_one_step_job(tmp_path):
    """Same target asset (key, deps, kinds, metadata, checks) and the same job; only the
    graph inside ``split__etl`` differs: one extraction op per source and one load op."""
    one = build_definitions(_load(tmp_path, _job()))
    split = build_definitions(_load(tmp_path, _job(execution={"steps": "per_source"})))

    def graph(defs: dg.Definitions) -> dict:
        repo = defs.get_repository_def()
        found = {}
        for node in repo.asset_graph.asset_nodes:
            found[node.key] = (sorted(node.parent_keys), node.group_name, sorted(node.kinds),
                          {k: v for k, v in node.metadata.items() if k != "nexus/spec_hash"},
                          sorted(c.name for c in node.check_keys) if node.is_materializable
                          else [])
        return found

    assert graph(split) == graph(one)
    job = split.resolve_job_def("split")
    inner = job.graph.node_named("split__etl").definition
    assert sorted(inner.node_dict) == ["split__extract_a", "split__extract_b", "split__load"]
    assert one.resolve_job_def("split").graph.node_named("split__etl").definition.name \
        == "split__etl"


def test_job_schema_has_the_execution_block():
    execution = job_schema()["$defs"]["Execution"]["properties"]
    assert execution["steps"]["enum"] == ["one", "per_source"]
    assert set(execution) == {"steps", "executor", "max_concurrent", "staging",
                              "staging_path", "celery"}
