"""Benchmark rows (``python -m tests.benchmarks.run --only celery``): one large job, two
PostgreSQL sources of ``rows`` rows each joined into a PostgreSQL table, run as one in-process
step (the baseline) and split into steps (``execution: {steps: per_source, executor: celery}``,
staged as Parquet in moto S3) over two Celery workers started by deploy/celery/worker.sh.

Both runs are ``dagster job execute`` processes on the production instance profile
(deploy/dagster.yaml on a fresh PostgreSQL storage database); the workers are started before
the clock starts, as long-lived workers are. Needs the test PostgreSQL, Redis and moto S3
(``scripts/services.py start`` and ``. .services/env``)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.integration.deploy.celery_workers import (
    Worker,
    celery_env,
    celery_workers,
    empty_queues,
)
from tests.integration.deploy.postgres_instance import instance_env, make_home, storage_database

JOB = "bench_split"
NEEDS = ("NEXUS_TEST_REDIS_PORT", "NEXUS_TEST_REDIS_PASSWORD", "NEXUS_TEST_S3_ENDPOINT",
         "NEXUS_TEST_S3_ACCESS_KEY", "NEXUS_TEST_S3_SECRET_KEY")


def _spec(name: str, execution: dict[str, Any] | None) -> dict[str, Any]:
    """orders (``rows``) joined one-to-one on id with orders_b (``rows``) into ``name``."""
    spec: dict[str, Any] = {
        "name": name,
        "sources": [
            {"name": "orders", "source_type": "database", "connection": "pg_src",
             "table": "orders"},
            {"name": "orders_b", "source_type": "database", "connection": "pg_src",
             "query": "SELECT id, status AS status_b, amount AS amount_b FROM orders_b"},
        ],
        "transformations": [{"name": "both", "transformation_type": "join", "config": {
            "left": "orders", "right": "orders_b", "on": "id", "how": "inner"}}],
        "targets": [{"name": "dst", "target_type": "database", "connection": "pg_tgt",
                     "table": name, "write_mode": "overwrite"}],
    }
    if execution is not None:
        spec["execution"] = execution
    return spec


def _peak_rss_mb(worker: Worker) -> float:
    """The largest peak resident set (VmHWM) among the worker's live processes, in MB."""
    peak = 0
    for pid in worker.pids():
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peak = max(peak, int(line.split()[1]))
    return peak / 1024


def benchmark(rows: int, folder: Path, connections: dict[str, Any], measure: Callable,
              count: Callable[[str, str], int], target_db: str, make_orders: Callable,
              src_db: str, admin_url: str, bin_dir: Path, row_type: type) -> list[Any]:
    """The in-process row (baseline) and the two-worker Celery row; ``connections`` are the
    benchmark's named connections (pg_src, pg_tgt), the other arguments tests.benchmarks.run's
    helpers."""
    missing = [name for name in NEEDS if not os.environ.get(name)]
    if missing:
        raise SystemExit(f"the celery rows need {', '.join(missing)}: run "
                         "`python3 scripts/services.py start` and `. .services/env` first")
    from tests.support import cleanup, make_store

    make_orders(src_db, "orders_b", 1, rows)
    password = os.environ["NEXUS_TEST_REDIS_PASSWORD"]
    port = int(os.environ["NEXUS_TEST_REDIS_PORT"])
    empty_queues(password, port)
    store = make_store("s3")
    work = Path(tempfile.mkdtemp(prefix="nexus-bench-celery-", dir=folder))
    specs = work / "job_specs"
    specs.mkdir()
    staging = {"type": "s3", **store.params, "access_key": "${NEXUS_TEST_S3_ACCESS_KEY}",
               "secret_key": "${NEXUS_TEST_S3_SECRET_KEY}"}
    (specs / "connections.yaml").write_text(json.dumps({**connections, "s3_staging": staging}))
    (specs / f"{JOB}_one.yaml").write_text(json.dumps(_spec(f"{JOB}_one", None)))
    (specs / f"{JOB}_celery.yaml").write_text(json.dumps(_spec(f"{JOB}_celery", {
        "steps": "per_source", "executor": "celery", "staging": "s3_staging"})))
    try:
        with storage_database(admin_url) as storage_url:
            os.environ.update(instance_env(storage_url))
            home = make_home(work / "dagster_home")
            env = {**os.environ, **celery_env(password, port), "DAGSTER_HOME": str(home),
                   "NEXUS_JOB_SPECS": str(specs)}

            def run(job: str) -> tuple[float, float]:
                wall, rss, _ = measure([str(bin_dir / "dagster"), "job", "execute", "-m",
                                        "nexus_dagster.definitions", "-j", job],
                                       env=env, cwd=work)
                return wall, rss

            wall, rss = run(f"{JOB}_one")
            moved = count(target_db, f"SELECT count(*) FROM {JOB}_one")
            base = row_type(f"{JOB}: 2 PostgreSQL sources joined -> PostgreSQL, one in-process "
                            "step", wall, moved, rss,
                            note="dagster job execute on deploy/dagster.yaml (PostgreSQL "
                            "storage)", moved=f"2 x {rows:,} read, {moved:,} written",
                            tag="in-process")
            with celery_workers(work / "workers", env, specs) as workers:
                wall, rss = run(f"{JOB}_celery")
                peaks = {w.name: _peak_rss_mb(w) for w in workers}
            moved_celery = count(target_db, f"SELECT count(*) FROM {JOB}_celery")
            if moved_celery != moved:
                raise SystemExit(f"the Celery run wrote {moved_celery} rows, in-process {moved}")
            per_worker = ", ".join(f"{name} {mb:.0f} MB" for name, mb in peaks.items())
            split = row_type(f"{JOB}: the same job split (steps: per_source) over 2 Celery "
                             "workers, staged in S3 (moto)", wall, moved, max(peaks.values()),
                             note=f"peak RSS per worker: {per_worker}; run process {rss:.0f} "
                             "MB; concurrency 1 each", moved=base.moved, baseline=base)
    finally:
        cleanup(store)
        empty_queues(password, port)
    return [base, split]
