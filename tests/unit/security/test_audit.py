"""The audit log: JSON lines, append-only, no secrets, a broken sink fails unless allowed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nexus_dagster import audit, secrets
from nexus_dagster.connectors.base import LoadResult
from nexus_dagster.run import TargetLoaded
from nexus_dagster.spec.loader import JobSpec
from nexus_dagster.spec.models import ETLJob


class _Log:
    def __init__(self):
        self.lines: list[tuple[str, str]] = []

    def info(self, msg):
        self.lines.append(("info", msg))

    def warning(self, msg):
        self.lines.append(("warning", msg))


def _spec(tmp_path: Path) -> JobSpec:
    job = ETLJob.model_validate({
        "name": "audited",
        "sources": [{"name": "src", "source_type": "database", "table": "orders",
                     "connection_params": {"type": "postgresql", "password": "hunter2-pw"}}],
        "targets": [{"name": "dst", "target_type": "file", "file_path": "out/x.parquet",
                     "write_mode": "overwrite"}],
    })
    return JobSpec(job=job, file=None, root=tmp_path)


def _loaded(spec: JobSpec) -> TargetLoaded:
    return TargetLoaded(target=spec.job.targets[0], result=LoadResult(rows_loaded=7, location="x"),
                        schema=None, rows_extracted=9, rows_transformed=7)


def test_lines_per_run_and_load(tmp_path, monkeypatch):
    monkeypatch.delenv(audit.AUDIT_LOG_ENV, raising=False)
    spec = _spec(tmp_path)
    log = _Log()
    trail = audit.AuditTrail(spec, "run-1", log=log)
    trail.started()
    record = trail.loaded(_loaded(spec))
    trail.ended("success")
    path = tmp_path / ".dagster_home" / "audit.jsonl"
    assert trail.path == path
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["event"] for x in lines] == ["run_start", "load", "run_end"]
    for line in lines:
        assert line["job"] == "audited" and line["run_id"] == "run-1"
        assert line["spec_hash"] == spec.spec_hash
        assert line["user"] and line["host"] and line["time"].endswith("+00:00")
    assert lines[0]["sources"] == [{"name": "src", "type": "database", "table": "orders"}]
    assert lines[1] == record
    assert (record["rows"], record["write_mode"], record["status"]) == (7, "overwrite",
                                                                        "committed")
    assert record["target"]["file_path"] == "out/x.parquet"
    assert lines[2]["rows"] == 7 and lines[2]["status"] == "success"
    assert "hunter2" not in path.read_text()
    assert path.stat().st_mode & 0o777 == 0o600
    # one readable line per committed load and one for the run's end; the JSON records stay
    # in the audit file (and the nexus/audit metadata), not in the log
    infos = [text for level, text in log.lines if level == "info"]
    assert len(infos) == 2
    assert not any("{" in text for text in infos)


def test_appends_and_masks(tmp_path, monkeypatch):
    target = tmp_path / "custom" / "a.jsonl"
    monkeypatch.setenv(audit.AUDIT_LOG_ENV, str(target))
    target.parent.mkdir()
    target.write_text('{"earlier": true}\n')
    secrets.register_secret("p4ss-in-error")
    trail = audit.AuditTrail(_spec(tmp_path), "r")
    trail.ended("failure", RuntimeError("login p4ss-in-error failed"))
    lines = target.read_text().splitlines()
    assert lines[0] == '{"earlier": true}'
    assert "p4ss-in-error" not in lines[1] and "***" in json.loads(lines[1])["error"]


def test_broken_sink_fails_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv(audit.AUDIT_LOG_ENV, str(tmp_path))  # a directory: cannot be opened
    trail = audit.AuditTrail(_spec(tmp_path), "r")
    with pytest.raises(audit.AuditError, match="NEXUS_AUDIT_REQUIRED=0"):
        trail.started()


def test_broken_sink_only_warns_when_not_required(tmp_path, monkeypatch):
    monkeypatch.setenv(audit.AUDIT_LOG_ENV, str(tmp_path))
    monkeypatch.setenv(audit.AUDIT_REQUIRED_ENV, "0")
    log = _Log()
    audit.AuditTrail(_spec(tmp_path), "r", log=log).started()
    assert log.lines and log.lines[0][0] == "warning"


def test_failure_line_never_hides_the_run_error(tmp_path, monkeypatch):
    monkeypatch.setenv(audit.AUDIT_LOG_ENV, str(tmp_path))
    log = _Log()
    audit.AuditTrail(_spec(tmp_path), "r", log=log).ended_after_error("boom")
    assert log.lines[0][0] == "warning"
