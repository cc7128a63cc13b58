"""Check logic on DuckDB and the operations parts of the spec (models and project checks)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from nexus_dagster.dagster.checks import run_check
from nexus_dagster.spec.loader import collect
from nexus_dagster.spec.models import ETLJob
from nexus_dagster.spec.operations import CheckSpec, parse_duration

DATA = pa.table({
    "id": [1, 2, 2, 3, None],
    "email": ["a@x.io", "bad", "c@x.io", None, "e@x.io"],
    "api_token": ["t1", "t2", "t3", "t4", "t5"],
})


@pytest.fixture
def con():
    with duckdb.connect() as connection:
        connection.register("source_data", DATA)
        connection.execute("CREATE TABLE data AS SELECT * FROM source_data")
        yield connection


@pytest.mark.parametrize(("check", "passed", "failing"), [
    ({"check": "not_null", "column": "id"}, False, 1),
    ({"check": "unique", "column": "id"}, False, 2),
    ({"check": "unique", "columns": ["id", "email"]}, True, 0),
    ({"check": "accepted_values", "column": "id", "values": [1, 2, 3]}, True, 0),
    ({"check": "range", "column": "id", "min": 2}, False, 1),
    ({"check": "regex", "column": "email", "pattern": r"[^@]+@[^@]+"}, False, 1),
    ({"check": "expression", "expression": "id >= 2"}, False, 2),
    ({"check": "sql", "sql": "select * from data where id is null;"}, False, 1),
    ({"check": "row_count", "max": 4}, False, 0),
])
def test_checks(con, check, passed, failing):
    outcome = run_check(con, CheckSpec.model_validate(check), DATA.schema)
    assert (outcome.passed, outcome.failing_rows) == (passed, failing)


def test_sample_hides_sensitive_columns(con):
    outcome = run_check(con, CheckSpec(check="unique", column="id"), DATA.schema)
    assert [row["api_token"] for row in outcome.sample] == ["***", "***"]
    assert {row["id"] for row in outcome.sample} == {2}


def test_backwards_compatible_yaml_and_keys():
    job = ETLJob.model_validate({
        "name": "j",
        "sources": [{"name": "s", "source_type": "file", "file_path": "a.csv"}],
        "targets": [{"name": "t", "target_type": "file", "file_path": "b.csv"}],
        "checks": [{"column": "id", "check": "unique"}],
        "notifications": {"on_failure": {"email": ["data-team@example.com"],
                                         "slack": ["#data-alerts"]}},
        "trigger": {"after": "other"},
    })
    assert job.checks[0].key == "id_unique"
    assert set(job.notifications.by_status()) == {"failure"}
    assert job.trigger.after == ["other"]
    assert parse_duration("24h") == 86400


BAD = """\
name: bad
partitions: {daily: "2024-01-01"}
trigger: {after: nowhere}
sources:
  - {name: s, source_type: file, file_path: a.csv}
targets:
  - {name: t, target_type: file, file_path: b.csv, write_mode: overwrite}
checks:
  - {column: id, check: unique, target: elsewhere}
  - {check: expression, expression: "import os"}
"""


def test_project_problems_have_file_line_and_fix(tmp_path: Path):
    folder = tmp_path / "job_specs"
    folder.mkdir()
    (folder / "bad.yaml").write_text(textwrap.dedent(BAD))
    _, problems = collect([folder])
    text = "\n".join(str(p) for p in problems)
    assert "bad.yaml:2: partitions: partitions need a source with incremental_column" in text
    assert "bad.yaml:3: trigger.after[0]: trigger after 'nowhere': no such job" in text
    assert "bad.yaml:9: checks[0].target: check target 'elsewhere'" in text
    assert "checks[1].expression" in text
    assert "file targets cannot replace a partition's rows" in text
    assert "write_mode overwrite would delete the other partitions" in text


def test_model_errors_name_the_field(tmp_path: Path):
    folder = tmp_path / "job_specs"
    folder.mkdir()
    (folder / "j.yaml").write_text(textwrap.dedent("""\
        name: j
        sources: [{name: s, source_type: file, file_path: a.csv}]
        targets: [{name: t, target_type: file, file_path: b.csv}]
        checks:
          - {column: status, check: accepted_values}
        """))
    _, problems = collect([folder])
    assert any(p.line == 5 and "accepted_values needs values" in p.message for p in problems)
