"""``trigger: {after: job_a}`` becomes an automation condition when the job reads what job A
writes (the edge is in the graph), and an asset sensor on A's last target when it does not."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from nexus_dagster.dagster.factory import build_definitions
from nexus_dagster.spec.loader import load_project

JOB_A = """\
name: job_a
sources:
  - {name: events, source_type: file, file_path: data/events.csv}
targets:
  - {name: a_out, target_type: database, table: a_out,
     connection_params: {type: sqlite, database: output/a.db}}
"""
READS_A = """\
name: job_b
trigger: {after: job_a}
sources:
  - {name: a_rows, source_type: database, table: a_out,
     connection_params: {type: sqlite, database: output/a.db}}
targets:
  - {name: b_out, target_type: file, file_path: output/b.parquet}
"""
UNRELATED = """\
name: job_b
enabled: false
trigger: {after: job_a}
sources:
  - {name: other, source_type: file, file_path: data/other.csv}
targets:
  - {name: b_out, target_type: file, file_path: output/b.parquet}
"""


def _defs(tmp_path: Path, job_b: str) -> dg.Definitions:
    folder = tmp_path / "job_specs"
    folder.mkdir()
    (folder / "job_a.yaml").write_text(JOB_A)
    (folder / "job_b.yaml").write_text(job_b)
    return build_definitions(load_project(folder))


def _target(defs: dg.Definitions, name: str) -> dg.AssetSpec:
    graph = defs.resolve_asset_graph()
    [key] = [k for k in graph.get_all_asset_keys() if k.path[-1] == name]
    return graph.get(key)


def test_job_reading_upstream_table_gets_eager_condition_and_automation_sensor(tmp_path: Path):
    defs = _defs(tmp_path, READS_A)
    b_out = _target(defs, "b_parquet")
    a_out = _target(defs, "a_out")
    assert a_out.key in b_out.parent_keys
    assert b_out.automation_condition is not None
    assert b_out.automation_condition.get_label() == "eager"
    sensor = defs.resolve_sensor_def("job_b_after_job_a")
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    assert sensor.run_tags == {"nexus/job": "job_b", "nexus/triggered_by": "job_a"}
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert _target(defs, "a_out").automation_condition is None


def test_job_not_reading_upstream_keeps_asset_sensor_on_last_target(tmp_path: Path):
    defs = _defs(tmp_path, UNRELATED)
    assert _target(defs, "b_parquet").automation_condition is None
    sensor = defs.resolve_sensor_def("job_b_after_job_a")
    assert not isinstance(sensor, dg.AutomationConditionSensorDefinition)
    assert sensor.asset_key == _target(defs, "a_out").key
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
