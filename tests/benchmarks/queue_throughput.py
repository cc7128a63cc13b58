"""Benchmark row: 20 small jobs submitted at once through Dagster's run queue on the production
instance profile (deploy/dagster.yaml: PostgreSQL storage, the daemon, limit 4), the code
location served by `dagster code-server start` as deploy/Dockerfile does.

Run ``python -m tests.benchmarks.queue_throughput [--jobs 20]`` from the repository root with the
test PostgreSQL running (``scripts/services.py start --only postgres``). It prints one table row:
runs per minute from the first submission to the last run's end, the most runs in progress at
once, and failures (must be 0).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg

from tests.benchmarks.run import BIN, pg_url, sql
from tests.integration.deploy.postgres_instance import (
    code_server,
    instance_env,
    make_home,
    most_at_once,
    storage_database,
)
from tests.integration.operations.servers import free_port
from tests.process_groups import dagster_daemon

DATA_DB = "nexus_bench_queue"


def write_specs(folder: Path, jobs: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(jobs):
        spec = {"name": f"small_{i}",
                "sources": [{"name": "src", "source_type": "database",
                             "connection_params": {"url": "${PG_URL}"},
                             "query": f"SELECT * FROM small WHERE mod(id, {jobs}) = {i}"}],
                "targets": [{"name": "dst", "target_type": "database",
                             "connection_params": {"url": "${PG_URL}"},
                             "table": f"small_{i}", "write_mode": "overwrite"}]}
        (folder / f"small_{i}.yaml").write_text(json.dumps(spec))


def run(jobs: int) -> dict:
    sql(pg_url("postgres"), f'DROP DATABASE IF EXISTS "{DATA_DB}" WITH (FORCE)',
        f'CREATE DATABASE "{DATA_DB}"')
    sql(pg_url(DATA_DB), "CREATE TABLE small (id int PRIMARY KEY, amount numeric(10,2))",
        "INSERT INTO small SELECT g, g * 0.5 FROM generate_series(1, 2000) g")
    work = Path(tempfile.mkdtemp(prefix="nexus-bench-queue-"))
    with storage_database(pg_url("postgres")) as storage_url:
        os.environ.update(instance_env(storage_url))
        home = make_home(work / "dagster_home")
        write_specs(work / "job_specs", jobs)
        env = {**os.environ, "DAGSTER_HOME": str(home), "PG_URL": pg_url(DATA_DB),
               "NEXUS_JOB_SPECS": str(work / "job_specs")}
        with (code_server(work, env, free_port(), work / "code_server.log"),
              dagster_daemon(work, env, work / "daemon.log")):
            started = time.time()

            def launch(i: int) -> int:
                return subprocess.run(
                    [str(BIN / "dagster"), "job", "launch", "-w", "workspace.yaml", "-j",
                     f"small_{i}"], cwd=work, env=env, capture_output=True).returncode

            with ThreadPoolExecutor(4) as pool:
                refused = sum(1 for code in pool.map(launch, range(jobs)) if code)
            with dg.DagsterInstance.from_config(str(home)) as instance:
                done = dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS,
                                               dg.DagsterRunStatus.FAILURE,
                                               dg.DagsterRunStatus.CANCELED])
                while len(instance.get_run_records(done)) < jobs - refused:
                    time.sleep(1)
                records = instance.get_run_records()
    ended = max(r.end_time or 0 for r in records)
    failures = refused + sum(1 for r in records
                             if r.dagster_run.status != dg.DagsterRunStatus.SUCCESS)
    return {"runs": len(records), "seconds": ended - started,
            "per_minute": len(records) / ((ended - started) / 60),
            "most_at_once": most_at_once(records), "failures": failures}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20)
    args = parser.parse_args(argv)
    result = run(args.jobs)
    print(f"\n{os.cpu_count()} cores, PostgreSQL on loopback\n")
    print("| row | runs | wall s | runs/min | most at once | failures |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| {args.jobs} concurrent small jobs through the queue (PostgreSQL storage, daemon, "
          f"limit 4) | {result['runs']} | {result['seconds']:.1f} | "
          f"{result['per_minute']:.1f} | {result['most_at_once']} | {result['failures']} |")
    sys.exit(1 if result["failures"] else 0)


if __name__ == "__main__":
    main()
