"""A broken audit sink fails the Dagster run before any data moves (unless allowed)."""

from __future__ import annotations

import dagster as dg

from nexus_dagster.dagster.factory import build_definitions
from nexus_dagster.spec.loader import load_project

JOB = """\
name: audited
sources: [{name: raw, source_type: file, file_path: data/in.csv}]
targets: [{name: out, target_type: file, file_path: out/out.csv, write_mode: overwrite}]
"""


def _run(tmp_path, instance=None):
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data/in.csv").write_text("id,name\n1,a\n2,b\n")
    specs = tmp_path / "job_specs"
    specs.mkdir(exist_ok=True)
    (specs / "audited.yaml").write_text(JOB)
    job = build_definitions(load_project(specs)).resolve_job_def("audited")
    return job.execute_in_process(instance=instance or dg.DagsterInstance.ephemeral(),
                                  raise_on_error=False)


def test_broken_sink_fails_the_run_before_loading(tmp_path, monkeypatch):
    monkeypatch.setenv("NEXUS_AUDIT_LOG", str(tmp_path))  # a directory: not writable as a file
    monkeypatch.delenv("NEXUS_AUDIT_REQUIRED", raising=False)
    result = _run(tmp_path)
    assert not result.success
    error = next(e for e in result.all_events if e.is_step_failure).event_specific_data.error
    while error.cause is not None:
        error = error.cause
    assert "AuditError" in error.message and "NEXUS_AUDIT_REQUIRED=0" in error.message
    assert not (tmp_path / "out/out.csv").exists()


def test_broken_sink_allowed_runs_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("NEXUS_AUDIT_LOG", str(tmp_path))
    monkeypatch.setenv("NEXUS_AUDIT_REQUIRED", "0")
    instance = dg.DagsterInstance.ephemeral()
    result = _run(tmp_path, instance)
    assert result.success
    assert len((tmp_path / "out/out.csv").read_text().splitlines()) == 3
    messages = [e.user_message for e in instance.all_logs(result.run_id)]
    assert any("audit log" in m and "cannot be written" in m for m in messages)


def test_audit_lines_of_a_run(tmp_path, monkeypatch):
    monkeypatch.setenv("NEXUS_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    result = _run(tmp_path)
    assert result.success
    (mat,) = [e.materialization for e in result.get_asset_materialization_events()]
    record = mat.metadata["nexus/audit"].data
    assert (record["event"], record["rows"], record["run_id"]) == ("load", 2, result.run_id)
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    assert len(lines) == 3
