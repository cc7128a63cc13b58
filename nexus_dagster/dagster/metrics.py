"""Prometheus metrics from Dagster run events, with ``prometheus_client``.

The exporter reads the Dagster instance's event log (the same one the UI shows) incrementally:
finished runs (success, failure, canceled) and target materializations. It keeps no state of
its own besides its read position, so it can run anywhere the instance is reachable:

    DAGSTER_HOME=.dagster_home python -m nexus_dagster.dagster.metrics --port 9108

and Prometheus scrapes ``http://<host>:9108/metrics``. Exposed metrics (label ``job``):

* ``nexus_runs_total{job,status}``           finished runs by status
* ``nexus_run_failures_total{job}``          failed runs
* ``nexus_rows_loaded_total{job,target}``    rows loaded into each target
* ``nexus_run_duration_seconds{job}``        histogram of run durations (start to finish)

Example:
    >>> exporter = RunEventExporter(instance, registry=CollectorRegistry())
    >>> exporter.poll()   # reads the events since the last poll  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import time

import dagster as dg
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

_FINISHED = {
    dg.DagsterEventType.RUN_SUCCESS: "success",
    dg.DagsterEventType.RUN_FAILURE: "failure",
    dg.DagsterEventType.RUN_CANCELED: "canceled",
}
DURATION_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600)
_PAGE = 1000


class RunEventExporter:
    """Turns Dagster run events into Prometheus counters and a duration histogram.

    Args:
        instance: the Dagster instance to read.
        registry: where the metrics are registered (a fresh one in tests; the default
            registry for the HTTP server).
    """

    def __init__(self, instance: dg.DagsterInstance, registry: CollectorRegistry | None = None):
        self.instance = instance
        self.registry = registry or CollectorRegistry()
        self.runs = Counter("nexus_runs", "Finished runs by status", ["job", "status"],
                            registry=self.registry)
        self.failures = Counter("nexus_run_failures", "Failed runs", ["job"],
                                registry=self.registry)
        self.rows = Counter("nexus_rows_loaded", "Rows loaded into targets", ["job", "target"],
                            registry=self.registry)
        self.duration = Histogram("nexus_run_duration_seconds", "Run duration", ["job"],
                                  buckets=DURATION_BUCKETS, registry=self.registry)
        self._cursors: dict[str, str | None] = {}

    def poll(self) -> int:
        """Read the runs finished since the last poll into the metrics; returns how many."""
        seen = 0
        for event_type in _FINISHED:
            for record in self._records(event_type):
                seen += 1
                self._run_finished(record.event_log_entry, event_type)
        return seen

    def _records(self, event_type: dg.DagsterEventType):
        name = event_type.value
        while True:
            result = self.instance.fetch_run_status_changes(
                event_type, limit=_PAGE, cursor=self._cursors.get(name), ascending=True
            )
            yield from result.records
            if result.records:
                self._cursors[name] = result.cursor
            if not result.has_more:
                return

    def _run_finished(self, entry, event_type: dg.DagsterEventType) -> None:
        run = self.instance.get_run_record_by_id(entry.run_id)
        tags = run.dagster_run.tags if run is not None else {}
        # asset runs a trigger started are named __ASSET_JOB; their tag names the nexus job
        job = tags.get("nexus/job") or entry.job_name or "unknown"
        status = _FINISHED[event_type]
        self.runs.labels(job=job, status=status).inc()
        if event_type == dg.DagsterEventType.RUN_FAILURE:
            self.failures.labels(job=job).inc()
        if run is not None and run.start_time is not None:
            end = run.end_time or entry.timestamp
            self.duration.labels(job=job).observe(max(0.0, end - run.start_time))
        materialized = self.instance.all_logs(
            entry.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        )
        for log in materialized:
            materialization = log.asset_materialization
            value = materialization.metadata.get("nexus/rows_loaded") if materialization else None
            if value is not None:  # targets only: sources carry no loaded rows
                target = materialization.asset_key.path[-1]
                self.rows.labels(job=job, target=target).inc(int(value.value))


def serve(port: int, interval: float = 15.0, host: str = "127.0.0.1") -> None:
    """Poll the instance of ``$DAGSTER_HOME`` every ``interval`` seconds and serve
    ``/metrics`` on ``host:port`` until interrupted."""
    from prometheus_client import REGISTRY

    with dg.DagsterInstance.get() as instance:
        exporter = RunEventExporter(instance, registry=REGISTRY)
        start_http_server(port, addr=host)
        while True:
            exporter.poll()
            time.sleep(interval)


def main(argv: list[str] | None = None) -> None:
    """``python -m nexus_dagster.dagster.metrics --port 9108 [--host 0.0.0.0] [--interval 15]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9108)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--interval", type=float, default=15.0)
    args = parser.parse_args(argv)
    serve(args.port, args.interval, args.host)


if __name__ == "__main__":
    main()
