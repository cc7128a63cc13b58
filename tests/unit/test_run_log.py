"""Run logs: one readable line per phase (extract, load, loaded with rows and time, run end);
the audit record goes to the audit file and the materialization metadata, not into the log."""

from __future__ import annotations

import json
import re

import dagster as dg

from tests.support import run_job

JOB = """\
name: logged
sources: [{name: raw, source_type: file, file_path: data/in.csv}]
transformations:
  - {name: big, transformation_type: filter, config: {condition: 'id > 1'}}
targets: [{name: out, target_type: file, file_path: out/out.csv, write_mode: overwrite}]
"""


def test_run_log_has_one_line_per_phase_and_no_audit_json(tmp_path, monkeypatch):
    audit = tmp_path / "audit.jsonl"
    monkeypatch.setenv("NEXUS_AUDIT_LOG", str(audit))
    (tmp_path / "data").mkdir()
    (tmp_path / "data/in.csv").write_text("id,name\n1,a\n2,b\n3,c\n")
    (tmp_path / "job_specs").mkdir()
    (tmp_path / "job_specs/logged.yaml").write_text(JOB)
    instance = dg.DagsterInstance.ephemeral()
    result = run_job(tmp_path / "job_specs", "logged", instance)
    assert result.success
    messages = [e.user_message for e in instance.all_logs(result.run_id)
                if e.dagster_event is None]
    ours = [m for m in messages if re.match(r"(extract|load|loaded|run) ", m)]
    assert [m.split(" ")[0] for m in ours] == ["extract", "load", "loaded", "run"], ours
    assert re.fullmatch(r"loaded out: 2 rows \(overwrite; 3 extracted, 2 after the "
                        r"transformations\) in \d+\.\d\d s", ours[2])
    assert re.fullmatch(r"run success: 2 rows loaded into 1 target\(s\) in \d+\.\d\d s",
                        ours[3])
    assert not any("{" in m and '"event"' in m for m in messages), messages
    # the records themselves: in the audit file and the materialization's metadata
    events = [json.loads(line)["event"] for line in audit.read_text().splitlines()]
    assert events == ["run_start", "load", "run_end"]
    (mat,) = [e.materialization for e in result.get_asset_materialization_events()]
    assert mat.metadata["nexus/audit"].data["rows"] == 2
