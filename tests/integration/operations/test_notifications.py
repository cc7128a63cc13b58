"""Failure and success notifications through Dagster run status sensors, delivered to a real
SMTP server and a real HTTP server (Slack incoming webhook and a generic webhook)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from nexus_dagster.dagster.factory import build_definitions
from nexus_dagster.dagster.notifications import Message, NotificationError, post_json
from nexus_dagster.spec.loader import load_project
from tests.integration.operations.conftest import make_source, write_spec
from tests.integration.operations.servers import http_server, smtp_server

SPEC = """\
name: notified
sources:
  - {name: events, source_type: database, table: {table},
     connection_params: {type: sqlite, database: data/source.db}}
targets:
  - {name: out, target_type: database, table: out,
     connection_params: {type: sqlite, database: output/out.db}}
notifications:
  on_failure:
    email: [data-team@example.com, oncall@example.com]
    slack: ["#data-alerts", "${SLACK_HOOK}"]
    webhook: ["${WEBHOOK_URL}"]
  on_success: {webhook: ["${WEBHOOK_URL}"]}
"""


def _sensor_run(defs: dg.Definitions, name: str, result: dg.ExecuteInProcessResult,
                instance: dg.DagsterInstance, event_type: dg.DagsterEventType) -> None:
    event = next(e for e in result.all_events if e.event_type == event_type)
    context = dg.build_run_status_sensor_context(
        sensor_name=name, dagster_event=event, dagster_instance=instance,
        dagster_run=result.dagster_run,
    )
    sensor = defs.get_sensor_def(name)
    if event_type == dg.DagsterEventType.RUN_FAILURE:
        context = context.for_run_failure()
    sensor(context)


def test_failure_email_slack_webhook_and_success(tmp_path: Path, monkeypatch, instance):
    make_source(tmp_path / "data/source.db", days=1)
    folder = tmp_path / "job_specs"
    write_spec(folder, "notified", SPEC.replace("{table}", "missing_table"))
    monkeypatch.setenv("NEXUS_DAGSTER_URL", "https://dagster.example.com/")
    with smtp_server() as (port, mails), http_server() as (base, posts):
        monkeypatch.setenv("NEXUS_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("NEXUS_SMTP_PORT", str(port))
        monkeypatch.setenv("NEXUS_SLACK_WEBHOOK_URL", f"{base}/slack-default")
        monkeypatch.setenv("SLACK_HOOK", f"{base}/slack-direct")
        monkeypatch.setenv("WEBHOOK_URL", f"{base}/hook")

        defs = build_definitions(load_project(folder))
        assert {s.name for s in defs.sensors} == {"notified_on_failure", "notified_on_success"}
        failed = defs.resolve_job_def("notified").execute_in_process(
            instance=instance, raise_on_error=False)
        assert not failed.success
        run_id = failed.run_id
        _sensor_run(defs, "notified_on_failure", failed, instance,
                    dg.DagsterEventType.RUN_FAILURE)

        assert len(mails) == 1
        recipients, mail = mails[0]
        assert recipients == ["data-team@example.com", "oncall@example.com"]
        assert mail["Subject"] == "[nexus] job notified: FAILURE"
        body = mail.get_payload(decode=True).decode()
        assert run_id in body and "missing_table" in body
        assert f"https://dagster.example.com/runs/{run_id}" in body
        assert "/slack-direct" not in body  # webhook URLs are secrets

        by_path = {path: data for path, data in posts}
        assert by_path["/slack-default"]["channel"] == "#data-alerts"
        assert run_id in by_path["/slack-direct"]["text"]
        hook = by_path["/hook"]
        assert (hook["job"], hook["run_id"], hook["status"]) == ("notified", run_id, "FAILURE")
        assert "missing_table" in hook["error"] and hook["url"].endswith(f"/runs/{run_id}")

        write_spec(folder, "notified", SPEC.replace("{table}", "events"))
        defs = build_definitions(load_project(folder))
        ok = defs.resolve_job_def("notified").execute_in_process(instance=instance)
        posts.clear()
        _sensor_run(defs, "notified_on_success", ok, instance, dg.DagsterEventType.RUN_SUCCESS)
        assert [(p, d["status"], d["error"]) for p, d in posts] == [("/hook", "SUCCESS", None)]


def test_plain_http_webhook_refused_off_loopback():
    with pytest.raises(NotificationError, match="https"):
        post_json("http://example.com/hook", {"job": "x"})
    assert Message("j", "r", "FAILURE", "boom", "u").text().endswith("boom")
