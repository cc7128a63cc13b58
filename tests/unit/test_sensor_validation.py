"""``nexus validate`` reports a new-file sensor that has no file to watch, with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from nexus_dagster.cli import main

JOB = """\
name: inbox_job
sensor: {new_files: true, interval_seconds: 30%(source)s}
sources:
  - name: inbox
    source_type: %(kind)s
    %(where)s
  - name: lookup
    source_type: file
    file_path: data/lookup.csv
targets:
  - name: out
    target_type: file
    file_path: out/inbox.csv
"""

DB = "connection_params: {type: sqlite, database: x.db}\n    query: select 1 as id"


def validate(tmp_path: Path, capsys, **fields: str) -> tuple[int, str]:
    values = {"source": "", "kind": "s3",
              "where": "connection_params: {bucket: b}\n    file_path: in/*.csv", **fields}
    spec = tmp_path / "inbox_job.yaml"
    spec.write_text(JOB % values)
    code = main(["validate", str(spec)])
    return code, capsys.readouterr().out


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"source": ", source: inbox", "kind": "database", "where": DB},
         ["inbox_job.yaml:2: sensor.source", "source 'inbox' has one", "add file_path"]),
        ({"source": ", source: nope"},
         ["inbox_job.yaml:2: sensor.source", "'nope' is not a source", "inbox, lookup"]),
    ],
)
def test_sensor_without_a_file_path_is_a_validation_problem(tmp_path, capsys, fields, expected):
    code, out = validate(tmp_path, capsys, **fields)
    assert code == 1, out
    for part in expected:
        assert part in out, out
    assert "Traceback" not in out


def test_sensor_on_a_non_file_source_with_a_file_path(tmp_path, capsys):
    spec_fields = {"source": ", source: inbox", "kind": "database",
                   "where": DB + "\n    file_path: in/x.csv"}
    code, out = validate(tmp_path, capsys, **spec_fields)
    assert code == 1 and "inbox_job.yaml:5: sources[0].source_type" in out, out
    assert "sensor.new_files lists files" in out


def test_sensor_without_any_file_source(tmp_path, capsys):
    spec = tmp_path / "inbox_job.yaml"
    spec.write_text(
        "name: inbox_job\nsensor: {new_files: true}\nsources:\n  - name: q\n"
        "    source_type: database\n    connection_params: {type: sqlite, database: x.db}\n"
        "    query: select 1 as id\ntargets:\n  - name: out\n    target_type: file\n"
        "    file_path: out/x.csv\n"
    )
    assert main(["validate", str(spec)]) == 1
    out = capsys.readouterr().out
    assert "inbox_job.yaml:2: sensor" in out and "no source has one" in out, out


def test_valid_sensor_passes(tmp_path, capsys):
    code, out = validate(tmp_path, capsys)
    assert code == 0, out
