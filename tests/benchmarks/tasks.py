"""What the benchmark runs inside a child process (so each tool's peak RSS is its own).

``python -m tests.benchmarks.tasks NAME JSON_ARGS`` prints one JSON line with ``seconds`` (the
work measured inside the process) and ``rows``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def dagster_job(args: dict) -> dict:
    """A spec folder's job through Dagster ``execute_in_process`` on an ephemeral instance made
    before the clock starts (``seconds`` is the run; ``instance_s`` the instance's set-up)."""
    start = time.perf_counter()
    import dagster as dg

    from nexus_dagster.dagster.factory import build_definitions
    from nexus_dagster.spec.loader import load_project

    imported = time.perf_counter()
    defs = build_definitions(load_project(args["folder"]))
    job = defs.resolve_job_def(args["job"])
    built = time.perf_counter()
    # Dagster's in-memory instance imports its storage (alembic) and stamps two SQLite
    # schemas: Dagster's set-up, reported apart (instance_s) like the imports, not the run
    instance = dg.DagsterInstance.ephemeral()
    ready = time.perf_counter()
    result = job.execute_in_process(instance=instance)
    done = time.perf_counter()
    if not result.success:
        raise SystemExit(f"job {args['job']} failed")
    rows = 0
    for event in result.get_asset_materialization_events():
        value = event.materialization.metadata.get("nexus/rows_loaded")
        rows = max(rows, int(value.value) if value is not None else 0)
    return {"seconds": done - ready, "rows": rows, "import_s": imported - start,
            "build_s": built - imported, "instance_s": ready - built}


def runner_job(args: dict) -> dict:
    """A spec folder's job through the runner alone (no Dagster)."""
    # what a Dagster code location has imported before any run (the runner imports these
    # lazily); the other tools' imports are outside their timings too
    import nexus_dagster.run.pg_pipe
    import nexus_dagster.transforms.chain  # noqa: F401
    from nexus_dagster import run
    from nexus_dagster.run import TargetLoaded
    from nexus_dagster.spec.loader import load_project

    project = load_project(args["folder"])
    spec = project.job(args["job"])
    start = time.perf_counter()
    rows = 0
    for event in run.execute(spec, project.connections):
        if isinstance(event, TargetLoaded):
            rows = event.result.rows_loaded
    return {"seconds": time.perf_counter() - start, "rows": rows}


def spill(args: dict) -> dict:
    """Aggregate, sort and deduplicate a Parquet file under a DuckDB memory limit."""
    import pyarrow.parquet as pq

    from nexus_dagster.relation import Relation
    from nexus_dagster.spec.models import Transformation
    from nexus_dagster.transforms.chain import apply_transformations

    file = pq.ParquetFile(args["path"])
    relation = Relation(file.schema_arrow, lambda: file.iter_batches(65536), "orders")
    steps = [Transformation.model_validate(s) for s in args["steps"]]
    start = time.perf_counter()
    result = apply_transformations({"orders": relation}, steps, memory_limit=args["limit"],
                                   temp_directory=args["tmp"])
    rows = sum(b.num_rows for b in result)
    return {"seconds": time.perf_counter() - start, "rows": rows}


def duckdb_csv(args: dict) -> dict:
    """DuckDB's own CSV -> Parquet COPY."""
    import duckdb

    start = time.perf_counter()
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT * FROM read_csv('{args['csv']}')) TO '{args['out']}' (FORMAT parquet)"
    )
    rows = con.execute(f"SELECT count(*) FROM '{args['out']}'").fetchone()[0]
    return {"seconds": time.perf_counter() - start, "rows": rows}


def duckdb_sql(args: dict) -> dict:
    """DuckDB statements in one in-memory database (e.g. views over files, then a COPY)."""
    import duckdb

    start = time.perf_counter()
    con = duckdb.connect()
    for statement in args["statements"]:
        con.execute(statement)
    return {"seconds": time.perf_counter() - start, "rows": 0}


def dlt_copy(args: dict) -> dict:
    """dlt sql_database (pyarrow backend) from one PostgreSQL database to another."""
    import dlt
    from dlt.sources.sql_database import sql_database

    start = time.perf_counter()
    source = sql_database(args["source"], table_names=["orders"], backend="pyarrow")
    pipeline = dlt.pipeline("nexus_bench", destination=dlt.destinations.postgres(args["target"]),
                            dataset_name="dlt_bench", pipelines_dir=args["tmp"])
    pipeline.run(source, write_disposition="replace")
    return {"seconds": time.perf_counter() - start, "rows": args["rows"]}


TASKS = {f.__name__: f for f in (dagster_job, runner_job, spill, duckdb_csv, duckdb_sql,
                                  dlt_copy)}

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    print(json.dumps(TASKS[sys.argv[1]](json.loads(sys.argv[2]))), flush=True)
