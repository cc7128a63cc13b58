"""Benchmark: nexus-dagster against raw COPY, native paths, DuckDB and (optionally) dlt/Sling.

Run ``python -m tests.benchmarks.run --rows 2000000`` from the repository root. It starts the
test PostgreSQL and MariaDB (``scripts/services.py``), creates the ``nexus_bench`` databases
(dropped and made again each run) with the 8-column orders table, runs every tool in a child
process (wall time and peak RSS from ``wait4``) and prints one table. ``--rss-growth 10000000``
also runs the PostgreSQL -> PostgreSQL job at that size to compare peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable
BIN = Path(sys.executable).parent
PG = {"host": "127.0.0.1", "port": int(os.environ.get("NEXUS_PG_PORT", "55432")),
      "user": "nexus", "password": "nexus_pw"}
MARIA = {"host": "127.0.0.1", "port": int(os.environ.get("NEXUS_MARIADB_PORT", "53306")),
         "user": "nexus", "password": "nexus_pw"}
# NEXUS_BENCH_DB names the databases (so two benchmark runs on one server do not collide)
SRC = os.environ.get("NEXUS_BENCH_DB", "nexus_bench")
TGT, MDB = f"{SRC}_target", SRC
QUIET = os.environ.get("NEXUS_BENCH_VERBOSE", "") == ""

ORDERS_DDL = """CREATE TABLE {name} (id bigint PRIMARY KEY, created_at timestamptz NOT NULL,
 updated_at timestamptz, customer_id int, status text, amount numeric(12,2), email text,
 note text)"""
ORDERS_ROWS = """INSERT INTO {name} SELECT g,
 timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second',
 timestamptz '2024-06-01 00:00:00+00' + (g % 86400) * interval '1 second' + g * interval '1 us',
 g % 50000, (ARRAY['new','paid','shipped','cancelled'])[1 + g % 4],
 round(((g * 7919) % 100000) / 100.0, 2) - 10, 'user' || (g % 200000) || '@example.com',
 CASE WHEN g % 10 = 0 THEN NULL ELSE 'note ' || md5(g::text) || ' é' END
 FROM generate_series({start}::bigint, {stop}::bigint) g"""


@dataclass
class Row:
    tool: str
    wall: float
    rows: int
    rss_mb: float
    note: str = ""


def pg_url(db: str) -> str:
    return f"postgresql+psycopg2://{PG['user']}:{PG['password']}@{PG['host']}:{PG['port']}/{db}"


def psql_dsn(db: str) -> str:
    return f"postgresql://{PG['user']}:{PG['password']}@{PG['host']}:{PG['port']}/{db}"


def mariadb_cli(db: str) -> str:
    return (f"mariadb -h{MARIA['host']} -P{MARIA['port']} -u{MARIA['user']} "
            f"-p{MARIA['password']} --local-infile=1 {db}")


def measure(cmd: list[str] | str, env: dict | None = None, cwd: Path | None = None
            ) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MB of the process tree's largest member, stdout)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, shell=isinstance(cmd, str), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL if QUIET else None,
                            env={**os.environ, **(env or {})}, cwd=cwd,
                            executable="/bin/bash" if isinstance(cmd, str) else None)
    out = proc.stdout.read().decode() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"benchmark step failed ({proc.returncode}): {cmd}")
    return wall, usage.ru_maxrss / 1024, out


def task(name: str, args: dict, env: dict | None = None) -> tuple[float, float, dict]:
    """A tests.benchmarks.tasks function in a child: (inner seconds, peak RSS MB, result)."""
    _, rss, out = measure([PY, "-m", "tests.benchmarks.tasks", name, json.dumps(args)],
                          env=env, cwd=REPO)
    result = json.loads(out.strip().splitlines()[-1])
    return result["seconds"], rss, result


def sql(url: str, *statements: str) -> None:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)
    engine.dispose()


def make_orders(db: str, name: str, start: int, stop: int) -> None:
    sql(pg_url(db), f"DROP TABLE IF EXISTS {name}", ORDERS_DDL.format(name=name),
        ORDERS_ROWS.format(name=name, start=start, stop=stop).replace("%", "%%"),
        f"VACUUM ANALYZE {name}")


def setup(rows: int) -> None:
    # this machine sets PYTHONDONTWRITEBYTECODE: without .pyc files every child spends seconds
    # compiling Dagster's sources, which no deployed Dagster does; compile them once
    site = Path(sa.__file__).resolve().parents[1]
    subprocess.run([PY, "-m", "compileall", "-q", "-j", "0", str(site),
                    str(REPO / "nexus_dagster")],
                   check=False, capture_output=True)
    subprocess.run([PY, "scripts/services.py", "start", "--only", "postgres"], cwd=REPO,
                   check=True, capture_output=True)
    subprocess.run([PY, "scripts/services.py", "start", "--only", "mariadb"], cwd=REPO,
                   check=True, capture_output=True)
    for db in (SRC, TGT):
        sql(pg_url("postgres"), f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)',
            f'CREATE DATABASE "{db}"')
    make_orders(SRC, "orders", 1, rows)
    maria = (f"mysql+pymysql://{MARIA['user']}:{MARIA['password']}@{MARIA['host']}:"
             f"{MARIA['port']}/mysql")
    sql(maria, f"DROP DATABASE IF EXISTS {MDB}",
        f"CREATE DATABASE {MDB} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")


def write_specs(folder: Path, rows: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pg_src = {"type": "postgresql", "database": SRC, **PG}
    pg_tgt = {"type": "postgresql", "database": TGT, **PG}
    maria = {"type": "mariadb", "database": MDB, **MARIA}
    (folder / "connections.yaml").write_text(json.dumps(
        {"pg_src": pg_src, "pg_tgt": pg_tgt, "maria": maria}))
    steps = [
        {"name": "valid", "transformation_type": "filter", "order": 1,
         "config": {"condition": "amount >= 0 and status != \"cancelled\""}},
        {"name": "doubled", "transformation_type": "map", "order": 2,
         "config": {"mappings": {"amount_x2": "amount * 2"}}},
    ]

    def job(name, source, target, transformations=(), **extra):
        spec = {"name": name, "sources": [source], "transformations": list(transformations),
                "targets": [target], **extra}
        (folder / f"{name}.yaml").write_text(json.dumps(spec))

    def db_source(connection, table):
        return {"name": "src", "source_type": "database", "connection": connection,
                "table": table}

    def db_target(connection, table, mode="append", keys=()):
        return {"name": "dst", "target_type": "database", "connection": connection,
                "table": table, "write_mode": mode, "key_columns": list(keys)}

    job("bench_pg_pg", db_source("pg_src", "orders"), db_target("pg_tgt", "orders_nexus"),
        steps)
    job("bench_pg_maria", db_source("pg_src", "orders"), db_target("maria", "orders_nexus"))
    job("bench_maria_pg", db_source("maria", "orders_native"),
        db_target("pg_tgt", "orders_from_maria"))
    job("bench_csv_parquet",
        {"name": "src", "source_type": "file", "file_path": str(folder / "orders.csv"),
         "file_format": "csv"},
        {"name": "dst", "target_type": "file", "file_path": str(folder / "orders.parquet"),
         "file_format": "parquet", "write_mode": "overwrite"})
    job("bench_upsert", db_source("pg_src", "changes"),
        db_target("pg_tgt", "orders_upsert", "upsert", ["id"]))
    job("bench_append", db_source("pg_src", "changes_new"), db_target("pg_tgt", "orders_append"))
    job("bench_tiny", db_source("pg_src", "tiny"), db_target("pg_tgt", "tiny_copy", "overwrite"))


def drop(db: str, *tables: str) -> None:
    sql(pg_url(db), *[f"DROP TABLE IF EXISTS {t}" for t in tables])


def raw_copy(rows: int) -> Row:
    drop(TGT, "orders_raw")
    sql(pg_url(TGT), ORDERS_DDL.format(name="orders_raw"))
    cmd = (f"psql -qX '{psql_dsn(SRC)}' -c '\\copy orders to stdout (format binary)' | "
           f"psql -qX '{psql_dsn(TGT)}' -c '\\copy orders_raw from stdin (format binary)'")
    wall, rss, _ = measure(cmd)
    return Row("raw psql \\copy binary pipe", wall, rows, rss, "baseline")


def nexus_pg_pg(rows: int, folder: Path, pushdown: bool = True) -> Row:
    drop(TGT, "orders_nexus")
    env = {} if pushdown else {"NEXUS_PUSHDOWN": "0"}
    seconds, rss, _ = task("dagster_job", {"folder": str(folder), "job": "bench_pg_pg"}, env)
    label = "nexus PG->PG execute_in_process" + ("" if pushdown else " (general path)")
    return Row(label, seconds, rows, rss, "filter+map")


def dagster_cli(rows: int, folder: Path, job: str = "bench_pg_pg", label: str = "") -> Row:
    drop(TGT, "orders_nexus")
    home = Path(tempfile.mkdtemp(prefix="nexus-bench-home-"))
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    cmd = [str(BIN / "dagster"), "job", "execute", "-m", "nexus_dagster.definitions", "-j", job]
    wall, rss, _ = measure(cmd, env={"NEXUS_JOB_SPECS": str(folder), "DAGSTER_HOME": str(home)},
                           cwd=REPO)
    shutil.rmtree(home, ignore_errors=True)
    return Row(label or "nexus PG->PG `dagster job execute`", wall, rows, rss, "whole command")


def pg_to_maria(rows: int, folder: Path) -> list[Row]:
    cols = ("id, created_at AT TIME ZONE 'UTC', updated_at AT TIME ZONE 'UTC', customer_id, "
            "status, amount, email, note")
    maria_ddl = ("DROP TABLE IF EXISTS orders_native; CREATE TABLE orders_native (id BIGINT "
                 "PRIMARY KEY, created_at DATETIME(6), updated_at DATETIME(6), customer_id INT, "
                 "status LONGTEXT, amount DECIMAL(12,2), email LONGTEXT, note LONGTEXT) "
                 "CHARACTER SET utf8mb4")
    subprocess.run(f'{mariadb_cli(MDB)} -e "{maria_ddl}"', shell=True, check=True)
    cmd = (f"psql -qX '{psql_dsn(SRC)}' -c \"\\copy (SELECT {cols} FROM orders) to stdout\" | "
           f"{mariadb_cli(MDB)} -e \"SET unique_checks=0; LOAD DATA LOCAL INFILE '/dev/stdin' "
           f"INTO TABLE orders_native CHARACTER SET utf8mb4\"")
    wall, rss, _ = measure(cmd)
    native = Row("native PG->MariaDB (COPY | LOAD DATA LOCAL)", wall, rows, rss, "best native")
    subprocess.run(f'{mariadb_cli(MDB)} -e "DROP TABLE IF EXISTS orders_nexus"', shell=True,
                   check=True)
    seconds, rss, _ = task("runner_job", {"folder": str(folder), "job": "bench_pg_maria"})
    ours = Row("nexus PG->MariaDB", seconds, rows, rss, f"{seconds / native.wall:.2f}x native")
    return [native, ours]


def maria_to_pg(rows: int, folder: Path) -> list[Row]:
    drop(TGT, "orders_maria_native", "orders_from_maria")
    sql(pg_url(TGT), ORDERS_DDL.format(name="orders_maria_native").replace(
        "timestamptz", "timestamp"))
    cmd = (f"{mariadb_cli(MDB)} --batch --skip-column-names --quick -e 'SELECT * FROM "
           f"orders_native' | psql -qX '{psql_dsn(TGT)}' -c \"\\copy orders_maria_native "
           f"from stdin (format text, null 'NULL')\"")
    wall, rss, _ = measure(cmd)
    native = Row("native MariaDB->PG (mariadb --batch | COPY)", wall, rows, rss, "best native")
    seconds, rss, _ = task("runner_job", {"folder": str(folder), "job": "bench_maria_pg"})
    ours = Row("nexus MariaDB->PG", seconds, rows, rss, f"{seconds / native.wall:.2f}x native")
    return [native, ours]


def csv_parquet(rows: int, folder: Path) -> list[Row]:
    csv = folder / "orders.csv"
    subprocess.run(["psql", "-qX", psql_dsn(SRC), "-c",
                    f"\\copy orders to '{csv}' (format csv, header)"], check=True)
    seconds, rss, _ = task("duckdb_csv", {"csv": str(csv), "out": str(folder / "duck.parquet")})
    duck = Row("DuckDB COPY csv -> parquet", seconds, rows, rss, "baseline for CSV")
    seconds, rss, _ = task("runner_job", {"folder": str(folder), "job": "bench_csv_parquet"})
    ours = Row("nexus CSV->Parquet", seconds, rows, rss, f"{seconds / duck.wall:.2f}x DuckDB")
    return [duck, ours]


def spill(rows: int, folder: Path) -> Row:
    import pyarrow.parquet as pq

    path = folder / "orders.parquet"
    # sizes from the footer only: reading the table here would inflate every later child's
    # peak RSS (a forked child starts with its parent's pages)
    meta = pq.ParquetFile(path).metadata
    size = meta.num_rows
    in_memory = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    limit = f"{max(in_memory // 2 // (1 << 20), 64)}MB"
    steps = [
        {"name": "dedup", "transformation_type": "deduplicate", "order": 1,
         "config": {"subset": ["email", "status"], "keep": "last"}},
        {"name": "ordered", "transformation_type": "sort", "order": 2,
         "config": {"columns": ["amount", "id"], "ascending": [False, True]}},
    ]
    tmp = tempfile.mkdtemp(prefix="nexus-bench-spill-")
    seconds, rss, result = task("spill", {"path": str(path), "steps": steps, "limit": limit,
                                          "tmp": tmp})
    shutil.rmtree(tmp, ignore_errors=True)
    return Row(f"dedupe+sort under memory_limit={limit}", seconds, size, rss,
               f"data {in_memory >> 20} MB in memory, {result['rows']} rows out: spilled, ok")


def upsert_vs_append(rows: int, folder: Path) -> list[Row]:
    changed = min(200_000, rows // 10)
    make_orders(TGT, "orders_upsert", 1, rows)
    make_orders(TGT, "orders_append", 1, rows)
    make_orders(SRC, "changes", 1, changed)
    sql(pg_url(SRC), "UPDATE changes SET amount = amount + 1, note = 'changed'")
    make_orders(SRC, "changes_new", rows + 1, rows + changed)
    out = []
    for job, label in (("bench_append", "append"), ("bench_upsert", "upsert")):
        seconds, rss, _ = task("runner_job", {"folder": str(folder), "job": job})
        out.append(Row(f"nexus {label} {changed} rows into {rows}-row table", seconds, changed,
                       rss))
    out[1].note = f"{out[1].wall / out[0].wall:.2f}x append"
    return out


def overhead(folder: Path) -> list[Row]:
    make_orders(SRC, "tiny", 1, 10)
    seconds, rss, result = task("dagster_job", {"folder": str(folder), "job": "bench_tiny"})
    note = f"import {result['import_s']:.2f}s + definitions {result['build_s']:.2f}s before it"
    rows = [Row("10-row job execute_in_process", seconds, 10, rss, note)]
    rows.append(dagster_cli(10, folder, "bench_tiny", "10-row job `dagster job execute`"))
    return rows


def sling_binary() -> str | None:
    """The Sling CLI: the binary of the ``sling-linux-amd64`` wheel (the ``sling`` wrapper
    package would download it at run time), else one on PATH."""
    try:
        from sling_linux_amd64 import SLING_BIN
    except ImportError:
        return shutil.which("sling")
    return SLING_BIN if Path(SLING_BIN).is_file() else shutil.which("sling")


def optional_tools(rows: int) -> list[Row]:
    out = []
    try:
        import dlt  # noqa: F401
    except ImportError:
        pass
    else:
        tmp = tempfile.mkdtemp(prefix="nexus-bench-dlt-")
        seconds, rss, _ = task("dlt_copy", {"source": pg_url(SRC), "target": psql_dsn(TGT),
                                            "tmp": tmp, "rows": rows})
        shutil.rmtree(tmp, ignore_errors=True)
        out.append(Row("dlt (pyarrow backend) PG->PG", seconds, rows, rss, "no transforms"))
    sling = sling_binary()
    if sling:
        drop(TGT, "orders_sling")
        home = tempfile.mkdtemp(prefix="nexus-bench-sling-")
        wall, rss, _ = measure(
            [sling, "run", "--src-conn", psql_dsn(SRC) + "?sslmode=disable", "--src-stream",
             "public.orders",
             "--tgt-conn", psql_dsn(TGT) + "?sslmode=disable", "--tgt-object",
             "public.orders_sling", "--mode", "full-refresh"],
            env={"SLING_DISABLE_TELEMETRY": "true", "SLING_HOME_DIR": home})
        shutil.rmtree(home, ignore_errors=True)
        out.append(Row("Sling PG->PG", wall, rows, rss, "no transforms"))
    return out


def table(rows: list[Row], baseline: float) -> str:
    lines = ["| tool | wall s | rows/s | peak RSS MB | vs raw COPY | note |",
             "|---|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r.tool} | {r.wall:.2f} | {r.rows / r.wall:,.0f} | {r.rss_mb:.0f} | "
                     f"{r.wall / baseline:.2f}x | {r.note} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--rss-growth", type=int, default=0, metavar="ROWS",
                        help="also run PG->PG at this many rows and report peak RSS growth")
    parser.add_argument("--only", default="", help="comma list: pg,maria,csv,spill,upsert,"
                        "overhead,optional (default: all)")
    args = parser.parse_args(argv)
    wanted = set(filter(None, args.only.split(","))) or {
        "pg", "maria", "csv", "spill", "upsert", "overhead", "optional"}
    folder = Path(tempfile.mkdtemp(prefix="nexus-bench-"))
    try:
        print(f"setting up {args.rows:,} rows ...", file=sys.stderr)
        setup(args.rows)
        write_specs(folder / "job_specs", args.rows)
        specs = folder / "job_specs"
        results: list[Row] = []
        raw = raw_copy(args.rows)
        results.append(raw)
        if "pg" in wanted:
            results += [nexus_pg_pg(args.rows, specs), dagster_cli(args.rows, specs),
                        nexus_pg_pg(args.rows, specs, pushdown=False)]
        if "maria" in wanted:
            results += pg_to_maria(args.rows, specs) + maria_to_pg(args.rows, specs)
        if "csv" in wanted or "spill" in wanted:
            results += csv_parquet(args.rows, specs)
        if "spill" in wanted:
            results.append(spill(args.rows, specs))
        if "upsert" in wanted:
            results += upsert_vs_append(args.rows, specs)
        if "overhead" in wanted:
            results += overhead(specs)
        if "optional" in wanted:
            results += optional_tools(args.rows)
        if args.rss_growth:
            small = next((r for r in results if r.tool == "nexus PG->PG execute_in_process"),
                         None) or nexus_pg_pg(args.rows, specs)
            make_orders(SRC, "orders", 1, args.rss_growth)
            big_raw = raw_copy(args.rss_growth)
            big = nexus_pg_pg(args.rss_growth, specs)
            big.note += (f"; peak RSS {big.rss_mb / small.rss_mb - 1:+.0%} vs {args.rows:,}, "
                         f"{big.wall / big_raw.wall:.2f}x its raw COPY")
            big_raw.tool += f" ({args.rss_growth:,} rows)"
            big.tool += f" ({args.rss_growth:,} rows)"
            results += [big_raw, big]
            general = next((r for r in results if r.tool.endswith("(general path)")), None)
            if general is not None:  # the general path's growth too (with --only pg)
                big_general = nexus_pg_pg(args.rss_growth, specs, pushdown=False)
                big_general.note += (f"; peak RSS {big_general.rss_mb / general.rss_mb - 1:+.0%}"
                                     f" vs {args.rows:,}")
                big_general.tool += f" ({args.rss_growth:,} rows)"
                results.append(big_general)
        print(f"\n{args.rows:,} rows, {os.cpu_count()} cores, PostgreSQL and MariaDB on loopback\n")
        print(table(results, raw.wall))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
