"""The cursor's home: an incremental job refuses the temporary instance `dagster job execute`
makes without DAGSTER_HOME (it would forget the cursor), and the cursor is read from the last
event that carries it, so a materialization reported from the UI or an observation without a
cursor never resets it."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import dagster as dg

from nexus_dagster.dagster.factory import CURSOR_KEY, JOB_KEY, build_definitions
from nexus_dagster.spec.loader import load_project
from tests.integration.operations.conftest import make_source, sqlite_rows, write_spec

SPEC = """\
name: incremental
sources:
  - {name: events, source_type: database, table: events, incremental_column: id,
     incremental_value: 0, connection_params: {type: sqlite, database: data/source.db}}
targets:
  - {name: out, target_type: database, table: out, write_mode: append,
     connection_params: {type: sqlite, database: output/out.db}}
"""


def test_incremental_job_without_dagster_home_is_refused_before_reading(tmp_path: Path):
    make_source(tmp_path / "data/source.db", days=1)
    write_spec(tmp_path / "job_specs", "incremental", SPEC)
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env["NEXUS_JOB_SPECS"] = str(tmp_path / "job_specs")
    done = subprocess.run(
        [sys.executable, "-m", "dagster", "job", "execute", "-m", "nexus_dagster.definitions",
         "-j", "incremental"], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=180)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "DAGSTER_HOME is not set" in output and "export DAGSTER_HOME" in output
    assert "nexus run incremental" in output
    assert not (tmp_path / "output/out.db").exists()  # nothing was read or written


def _run(folder: Path, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    job = build_definitions(load_project(folder)).resolve_job_def("incremental")
    return job.execute_in_process(instance=instance, raise_on_error=False)


def test_reported_materialization_and_cursorless_observation_keep_the_cursor(
    tmp_path: Path, instance
):
    total = make_source(tmp_path / "data/source.db", days=2)
    folder = tmp_path / "job_specs"
    write_spec(folder, "incremental", SPEC)
    first = _run(folder, instance)
    assert first.success
    source_key = next(k for k in build_definitions(load_project(folder))
                      .resolve_asset_graph().get_all_asset_keys() if k.path[-1] == "events")
    # what the UI's "Report materialization" does, and observations of the same asset that
    # carry no cursor (one even claiming to be from this job)
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=source_key))
    instance.report_runless_asset_event(dg.AssetObservation(asset_key=source_key))
    instance.report_runless_asset_event(
        dg.AssetObservation(asset_key=source_key, metadata={JOB_KEY: "incremental"}))
    instance.report_runless_asset_event(  # the pre-0.2 place of cursors
        dg.AssetMaterialization(asset_key=dg.AssetKey(["incremental", "events"])))
    with sqlite3.connect(tmp_path / "data/source.db") as con:
        con.execute("insert into events values (100, 'paid', 1.0, '2024-02-01 00:00:00')")

    second = _run(folder, instance)
    assert second.success
    observed = [e.asset_observation_data.asset_observation.metadata for e in second.all_events
                if e.event_type == dg.DagsterEventType.ASSET_OBSERVATION]
    assert observed[0]["nexus/rows_extracted"].value == 1
    assert observed[0]["nexus/cursor_before"].value == str(total)
    assert observed[0][CURSOR_KEY].data["value"] == "100"
    assert sqlite_rows(tmp_path / "output/out.db",
                       "select count(*), count(distinct id) from out") == [(total + 1,) * 2]
