"""Prometheus counters and the duration histogram from Dagster run events, scraped over HTTP."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from prometheus_client import CollectorRegistry, start_http_server

from nexus_dagster.dagster.metrics import RunEventExporter
from tests.integration.operations.conftest import make_source, run, write_spec
from tests.integration.operations.servers import free_port

SPEC = """\
name: measured
sources:
  - {name: events, source_type: database, table: TABLE,
     connection_params: {type: sqlite, database: data/source.db}}
targets:
  - {name: out, target_type: database, table: out, write_mode: append,
     connection_params: {type: sqlite, database: output/out.db}}
"""


def test_counters_and_histogram_from_run_events(tmp_path: Path, instance):
    rows = make_source(tmp_path / "data/source.db", days=2)
    folder = tmp_path / "job_specs"
    write_spec(folder, "measured", SPEC.replace("TABLE", "events"))
    registry = CollectorRegistry()
    exporter = RunEventExporter(instance, registry=registry)
    assert run(folder, "measured", instance).success
    assert run(folder, "measured", instance).success
    write_spec(folder, "measured", SPEC.replace("TABLE", "missing"))
    assert not run(folder, "measured", instance).success

    assert exporter.poll() == 3
    assert exporter.poll() == 0  # incremental: nothing counted twice
    value = registry.get_sample_value
    assert value("nexus_runs_total", {"job": "measured", "status": "success"}) == 2
    assert value("nexus_runs_total", {"job": "measured", "status": "failure"}) == 1
    assert value("nexus_run_failures_total", {"job": "measured"}) == 1
    assert value("nexus_rows_loaded_total", {"job": "measured", "target": "out"}) == 2 * rows
    assert value("nexus_run_duration_seconds_count", {"job": "measured"}) == 3

    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    finally:
        server.shutdown()
        thread.join(5)
    assert b'nexus_runs_total{job="measured",status="success"} 2.0' in text
    assert b"nexus_run_duration_seconds_bucket" in text
