"""Notifications fire for every run that materializes a job's targets, however it was launched:
here through Dagster's implicit asset job (what the UI's "Materialize" button and asset
backfills run), not through the job's own asset job; a run of another job's assets notifies
nobody. Delivered to a real HTTP server."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from nexus_dagster.dagster.factory import build_definitions
from nexus_dagster.spec.loader import load_project
from tests.integration.operations.conftest import make_source, write_spec
from tests.integration.operations.servers import http_server

NOTIFIED = """\
name: notified
sources:
  - {name: events, source_type: database, table: events,
     connection_params: {type: sqlite, database: data/source.db}}
targets:
  - {name: out, target_type: database, table: out, write_mode: overwrite,
     connection_params: {type: sqlite, database: output/out.db}}
notifications:
  on_success: {webhook: ["${WEBHOOK_URL}"]}
"""
OTHER = NOTIFIED.replace("name: notified", "name: other").replace("table: out", "table: other")
OTHER = OTHER.split("notifications:")[0]


def _notify(defs: dg.Definitions, instance: dg.DagsterInstance,
            result: dg.ExecuteInProcessResult) -> None:
    """Evaluate the success sensor on the run, as the daemon does for every finished run."""
    event = next(e for e in result.all_events
                 if e.event_type == dg.DagsterEventType.RUN_SUCCESS)
    context = dg.build_run_status_sensor_context(
        sensor_name="notified_on_success", dagster_event=event, dagster_instance=instance,
        dagster_run=result.dagster_run)
    defs.get_sensor_def("notified_on_success")(context)


def test_a_materialize_run_outside_the_job_notifies_and_another_jobs_run_does_not(
    tmp_path: Path, monkeypatch, instance
):
    make_source(tmp_path / "data/source.db", days=1)
    folder = tmp_path / "job_specs"
    write_spec(folder, "notified", NOTIFIED)
    write_spec(folder, "other", OTHER)
    defs = build_definitions(load_project(folder))
    keys = {str(k.to_user_string()): k for k in defs.resolve_asset_graph().get_all_asset_keys()}
    out_key = next(k for name, k in keys.items() if name.endswith("/out"))
    other_key = next(k for name, k in keys.items() if name.endswith("/other"))
    global_job = defs.resolve_implicit_global_asset_job_def()
    with http_server() as (base, posts):
        monkeypatch.setenv("WEBHOOK_URL", f"{base}/hook")
        materialize = global_job.execute_in_process(instance=instance, asset_selection=[out_key])
        assert materialize.success and materialize.dagster_run.job_name != "notified"
        _notify(defs, instance, materialize)
        assert [(p, d["job"], d["run_id"], d["status"]) for p, d in posts] == [
            ("/hook", "notified", materialize.run_id, "SUCCESS")]

        posts.clear()
        other = global_job.execute_in_process(instance=instance, asset_selection=[other_key])
        assert other.success
        _notify(defs, instance, other)
        assert posts == []
