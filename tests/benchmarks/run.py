"""Benchmark: nexus-dagster against raw COPY, native paths, DuckDB and (optionally) dlt/Sling.

Run ``python -m tests.benchmarks.run --rows 2000000`` from the repository root. It starts the
test PostgreSQL and MariaDB (``scripts/services.py``), creates the ``nexus_bench`` databases
(dropped and made again each run) with the 8-column orders table, runs every tool in a child
process (wall time and peak RSS from ``wait4``) and prints one table. Every row's ratio is
against a baseline measured in the same run that moves the same rows (a filtered job against
the raw binary COPY pipe of the same SELECT, a copy against the raw pipe of the table, start-up
against ``python -c "import dagster"``), and every row says which rows moved and the load
average when it was measured. ``--readme`` writes the table into README.md between the
``<!-- bench:start -->`` and ``<!-- bench:end -->`` markers. ``--rss-growth 10000000`` also
runs the PostgreSQL -> PostgreSQL job at that size to compare peak RSS.
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
from dataclasses import dataclass, field
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


README = REPO / "README.md"
MARKERS = ("<!-- bench:start -->", "<!-- bench:end -->")

#: the filter + map steps of ``bench_pg_pg`` as the SELECT a raw pipe runs (same rows, columns)
#: the tables the raw pipes fill: no primary key, as the tables nexus creates for these jobs
RAW_DDL = ORDERS_DDL.replace(" PRIMARY KEY", "")
FILTER_MAP_SELECT = ("SELECT id, created_at, updated_at, customer_id, status, amount, email, "
                     "note, amount * 2 AS amount_x2 FROM orders "
                     "WHERE amount >= 0 AND status <> 'cancelled'")


@dataclass
class Row:
    """One line of the table: a tool's wall time and peak RSS, the rows it moved and the
    baseline (another row of the same run, moving the same rows) its ratio is taken against.
    ``delta`` shows seconds above the baseline instead of a ratio; ``goal`` is the target
    (a ratio, or seconds above with ``delta``)."""

    tool: str
    wall: float
    rows: int
    rss_mb: float
    note: str = ""
    moved: str = ""
    baseline: Row | None = None
    tag: str = ""
    delta: bool = False
    goal: float | None = None
    load: float = field(default_factory=lambda: os.getloadavg()[0])

    def versus(self) -> str:
        """The ratio (or the seconds above) against the baseline, with the baseline's tag."""
        if self.baseline is None:
            return f"baseline ({self.tag})" if self.tag else ""
        if self.delta:
            return f"+{self.wall - self.baseline.wall:.2f} s over {self.baseline.tag}"
        return f"{self.wall / self.baseline.wall:.2f}x {self.baseline.tag}"

    def verdict(self) -> str:
        """``<= goal: met`` / ``missed`` when the row has a target."""
        if self.goal is None or self.baseline is None:
            return ""
        if self.delta:
            value, limit = self.wall - self.baseline.wall, f"<= +{self.goal:.1f} s"
        else:
            value, limit = self.wall / self.baseline.wall, f"<= {self.goal:.1f}x"
        return f"{limit}: {'met' if value <= self.goal else 'MISSED'}"


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
    maria = (f"mysql+pymysql://{MARIA['user']}:{MARIA['password']}@{MARIA['host']}:"
             f"{MARIA['port']}/mysql")
    for service, url in (("postgres", pg_url("postgres")), ("mariadb", maria)):
        try:  # a server already answering on the port (another checkout's) is used as it is
            sql(url, "SELECT 1")
        except sa.exc.OperationalError:
            subprocess.run([PY, "scripts/services.py", "start", "--only", service], cwd=REPO,
                           check=True, capture_output=True)
    for db in (SRC, TGT):
        sql(pg_url("postgres"), f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)',
            f'CREATE DATABASE "{db}"')
    make_orders(SRC, "orders", 1, rows)
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
    job("bench_pg_copy", db_source("pg_src", "orders"), db_target("pg_tgt", "orders_copy"))
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


def count(db: str, query: str) -> int:
    engine = sa.create_engine(pg_url(db), poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        value = int(connection.exec_driver_sql(query).scalar_one())
    engine.dispose()
    return value


def raw_copy(rows: int) -> Row:
    """The raw binary COPY pipe of the whole table: the baseline of plain copies."""
    drop(TGT, "orders_raw")
    sql(pg_url(TGT), RAW_DDL.format(name="orders_raw"))
    cmd = (f"psql -qX '{psql_dsn(SRC)}' -c '\\copy orders to stdout (format binary)' | "
           f"psql -qX '{psql_dsn(TGT)}' -c '\\copy orders_raw from stdin (format binary)'")
    wall, rss, _ = measure(cmd)
    return Row("raw psql \\copy binary pipe of the table", wall, rows, rss,
               moved=f"all {rows:,} rows, 8 columns", tag="raw table pipe")


def raw_select_copy() -> Row:
    """The raw binary COPY pipe of the filter + map SELECT: the baseline of filtered jobs."""
    drop(TGT, "orders_raw_select")
    columns = RAW_DDL.split("(", 1)[1].rsplit(")", 1)[0]  # and the type nexus gives amount * 2
    sql(pg_url(TGT), f"CREATE TABLE orders_raw_select ({columns}, amount_x2 numeric(18,2))")
    kept = count(SRC, f"SELECT count(*) FROM ({FILTER_MAP_SELECT}) s")
    cmd = (f"psql -qX '{psql_dsn(SRC)}' -c \"\\copy ({FILTER_MAP_SELECT}) to stdout "
           f"(format binary)\" | psql -qX '{psql_dsn(TGT)}' -c '\\copy orders_raw_select "
           f"from stdin (format binary)'")
    wall, rss, _ = measure(cmd)
    return Row("raw psql \\copy binary pipe of the filter+map SELECT", wall, kept, rss,
               moved=f"{kept:,} rows kept by the filter, 9 columns", tag="raw SELECT pipe")


def nexus_pg_pg(base: Row, folder: Path, pushdown: bool = True) -> Row:
    """The filter + map job through Dagster ``execute_in_process`` (the run, not the imports)."""
    drop(TGT, "orders_nexus")
    env = {} if pushdown else {"NEXUS_PUSHDOWN": "0"}
    seconds, rss, result = task("dagster_job", {"folder": str(folder), "job": "bench_pg_pg"},
                                env)
    label = "nexus PG->PG filter+map execute_in_process" + (
        " (pushdown)" if pushdown else " (general path)")
    return Row(label, seconds, result["rows"], rss, _set_up(result),
               moved=_moved(result["rows"], base), baseline=base, goal=1.2 if pushdown else 2.5)


def nexus_runner_pg_pg(base: Row, folder: Path) -> Row:
    """The filter + map job through the runner alone (the pipe without Dagster's run)."""
    drop(TGT, "orders_nexus")
    seconds, rss, result = task("runner_job", {"folder": str(folder), "job": "bench_pg_pg"})
    return Row("nexus PG->PG filter+map, runner only (pushdown)", seconds, result["rows"], rss,
               moved=_moved(result["rows"], base), baseline=base)


def nexus_pg_copy(base: Row, folder: Path, pushdown: bool = True) -> Row:
    """The table copied without steps (pushdown, or the general path)."""
    drop(TGT, "orders_copy")
    env = {} if pushdown else {"NEXUS_PUSHDOWN": "0"}
    seconds, rss, result = task("dagster_job", {"folder": str(folder), "job": "bench_pg_copy"},
                                env)
    label = "nexus PG->PG copy execute_in_process" + (
        " (pushdown)" if pushdown else " (general path)")
    return Row(label, seconds, result["rows"], rss, _set_up(result),
               moved=_moved(result["rows"], base), baseline=base)


def _set_up(result: dict) -> str:
    """What an ``execute_in_process`` row's clock leaves out (Dagster's ephemeral instance)."""
    return f"run only; Dagster's ephemeral instance {result['instance_s']:.2f} s before it"


def _moved(rows: int, base: Row) -> str:
    """The baseline's description of the rows moved, checked against the job's count."""
    if rows != base.rows:
        return f"{rows:,} ROWS, NOT THE {base.rows:,} OF ITS BASELINE"
    return base.moved


def dagster_cli(base: Row, folder: Path, job: str = "bench_pg_pg", label: str = "",
                goal: float | None = None, launcher: str = "dagster", delta: bool = False) -> Row:
    """A whole ``dagster job execute`` (or ``dg launch``) command: imports, definitions,
    instance, run."""
    drop(TGT, "orders_nexus")
    home = Path(tempfile.mkdtemp(prefix="nexus-bench-home-"))
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    if launcher == "dg":
        cmd = [str(BIN / "dg"), "launch", "--job", job, "-m", "nexus_dagster.definitions"]
    else:
        cmd = [str(BIN / "dagster"), "job", "execute", "-m", "nexus_dagster.definitions", "-j",
               job]
    # from the spec folder, not the repository (which is a dg project of its own)
    wall, rss, _ = measure(cmd, env={"NEXUS_JOB_SPECS": str(folder), "DAGSTER_HOME": str(home)},
                           cwd=folder)
    shutil.rmtree(home, ignore_errors=True)
    return Row(label or "nexus PG->PG filter+map `dagster job execute`", wall, base.rows, rss,
               "whole command", moved=base.moved, baseline=base, goal=goal, delta=delta)


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
    native = Row("native PG->MariaDB (COPY | LOAD DATA LOCAL)", wall, rows, rss,
                 moved=f"all {rows:,} rows, 8 columns", tag="native PG->MariaDB")
    subprocess.run(f'{mariadb_cli(MDB)} -e "DROP TABLE IF EXISTS orders_nexus"', shell=True,
                   check=True)
    seconds, rss, _ = task("runner_job", {"folder": str(folder), "job": "bench_pg_maria"})
    ours = Row("nexus PG->MariaDB", seconds, rows, rss, moved=native.moved, baseline=native)
    return [native, ours]


def maria_to_pg(rows: int, folder: Path) -> list[Row]:
    drop(TGT, "orders_maria_native", "orders_from_maria")
    sql(pg_url(TGT), ORDERS_DDL.format(name="orders_maria_native").replace(
        "timestamptz", "timestamp"))
    cmd = (f"{mariadb_cli(MDB)} --batch --skip-column-names --quick -e 'SELECT * FROM "
           f"orders_native' | psql -qX '{psql_dsn(TGT)}' -c \"\\copy orders_maria_native "
           f"from stdin (format text, null 'NULL')\"")
    wall, rss, _ = measure(cmd)
    native = Row("native MariaDB->PG (mariadb --batch | COPY)", wall, rows, rss,
                 moved=f"all {rows:,} rows, 8 columns", tag="native MariaDB->PG")
    seconds, rss, _ = task("runner_job", {"folder": str(folder), "job": "bench_maria_pg"})
    ours = Row("nexus MariaDB->PG", seconds, rows, rss, moved=native.moved, baseline=native)
    return [native, ours]


def csv_parquet(rows: int, folder: Path) -> list[Row]:
    csv = folder / "orders.csv"
    subprocess.run(["psql", "-qX", psql_dsn(SRC), "-c",
                    f"\\copy orders to '{csv}' (format csv, header)"], check=True)
    seconds, rss, _ = task("duckdb_csv", {"csv": str(csv), "out": str(folder / "duck.parquet")})
    duck = Row("DuckDB COPY csv -> parquet", seconds, rows, rss,
               moved=f"all {rows:,} rows, 8 columns", tag="DuckDB")
    seconds, rss, _ = task("runner_job", {"folder": str(folder), "job": "bench_csv_parquet"})
    ours = Row("nexus CSV->Parquet", seconds, rows, rss, moved=duck.moved, baseline=duck)
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
               f"data {in_memory >> 20} MB in memory: spilled, ok (no baseline)",
               moved=f"{size:,} rows in, {result['rows']:,} out")


def upsert_vs_append(rows: int, folder: Path) -> list[Row]:
    changed = min(200_000, rows // 10)
    make_orders(TGT, "orders_upsert", 1, rows)
    make_orders(TGT, "orders_append", 1, rows)
    make_orders(SRC, "changes", 1, changed)
    sql(pg_url(SRC), "UPDATE changes SET amount = amount + 1, note = 'changed'")
    make_orders(SRC, "changes_new", rows + 1, rows + changed)
    out = []
    for job, label, moved in (("bench_append", "append", "new keys"),
                              ("bench_upsert", "upsert", "existing keys, every row changed")):
        seconds, rss, _ = task("runner_job", {"folder": str(folder), "job": job})
        out.append(Row(f"nexus {label} {changed:,} rows into {rows:,}-row table", seconds,
                       changed, rss, moved=f"{changed:,} rows ({moved})", tag=label))
    out[1].baseline = out[0]
    return out


def overhead(folder: Path) -> list[Row]:
    """Start-up: a 10-row job through the Dagster commands against a bare ``import dagster``
    (and a one-asset Dagster job, what Dagster's command costs without us)."""
    make_orders(SRC, "tiny", 1, 10)
    tiny = "10 rows, 2 columns"
    wall, rss, _ = measure([PY, "-c", "import dagster"])
    bare = Row('`python -c "import dagster"`', wall, 0, rss, moved="none",
               tag="import dagster")
    trivial = folder.parent / "trivial_dagster.py"
    trivial.write_text(TRIVIAL_JOB)
    home = Path(tempfile.mkdtemp(prefix="nexus-bench-home-"))
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    wall, rss, _ = measure([str(BIN / "dagster"), "job", "execute", "-f", str(trivial), "-j",
                            "trivial"], env={"DAGSTER_HOME": str(home)}, cwd=folder.parent)
    shutil.rmtree(home, ignore_errors=True)
    rows = [bare, Row("one no-op asset, plain Dagster `dagster job execute`", wall, 0, rss,
                      "Dagster's own floor", moved="none", baseline=bare, delta=True)]
    seconds, rss, result = task("dagster_job", {"folder": str(folder), "job": "bench_tiny"})
    note = (f"run only; import {result['import_s']:.2f} s + definitions "
            f"{result['build_s']:.2f} s + Dagster's ephemeral instance "
            f"{result['instance_s']:.2f} s before it")
    rows.append(Row("10-row job execute_in_process", seconds, 10, rss, note, moved=tiny))
    for launcher, label in (("dagster", "`dagster job execute`"), ("dg", "`dg launch`")):
        row = dagster_cli(bare, folder, "bench_tiny", f"10-row job {label}", goal=2.0,
                          launcher=launcher, delta=True)
        row.rows, row.moved = 10, tiny
        rows.append(row)
    return rows


def sling_binary() -> str | None:
    """The Sling CLI: the binary of the ``sling-linux-amd64`` wheel (the ``sling`` wrapper
    package would download it at run time), else one on PATH."""
    try:
        from sling_linux_amd64 import SLING_BIN
    except ImportError:
        return shutil.which("sling")
    return SLING_BIN if Path(SLING_BIN).is_file() else shutil.which("sling")


def optional_tools(rows: int, base: Row) -> list[Row]:
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
        out.append(Row("dlt (pyarrow backend) PG->PG", seconds, rows, rss, "no transforms",
                       moved=base.moved, baseline=base))
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
        out.append(Row("Sling PG->PG", wall, rows, rss, "no transforms", moved=base.moved,
                       baseline=base))
    return out


def rss_growth(results: list[Row], rows: int, big_rows: int, specs: Path) -> list[Row]:
    """The PG->PG filter + map job again at ``big_rows`` rows: peak RSS growth and ratio."""
    base = next((r for r in results if r.tag == "raw SELECT pipe"), None) or raw_select_copy()
    small = next((r for r in results if r.tool.endswith("(pushdown)") and "filter" in r.tool
                  and "runner" not in r.tool), None) or nexus_pg_pg(base, specs)
    general = next((r for r in results if r.tool.endswith("(general path)")
                    and "filter" in r.tool), None)
    make_orders(SRC, "orders", 1, big_rows)
    big_base = raw_select_copy()
    big = nexus_pg_pg(big_base, specs)
    big.note += f"; peak RSS {big.rss_mb / small.rss_mb - 1:+.0%} vs {rows:,} source rows"
    out = [big_base, big]
    if general is not None:  # the general path's growth too (with --only pg)
        big_general = nexus_pg_pg(big_base, specs, pushdown=False)
        big_general.note += (f"; peak RSS {big_general.rss_mb / general.rss_mb - 1:+.0%} vs "
                             f"{rows:,} source rows")
        out.append(big_general)
    for row in out:
        row.tool += f" ({big_rows:,} source rows)"
    return out


TRIVIAL_JOB = """import dagster as dg


@dg.asset
def one() -> None:
    return None


defs = dg.Definitions(assets=[one], jobs=[
    dg.define_asset_job("trivial", selection=[one], executor_def=dg.in_process_executor)])
"""


def table(rows: list[Row]) -> str:
    """The Markdown table: each row with the rows it moved, its baseline and its target."""
    lines = ["| tool | rows moved | wall s | rows/s | peak RSS MB | vs baseline (same rows) | "
             "target | load | note |",
             "|---|---|---:|---:|---:|---|---|---:|---|"]
    for r in rows:
        rate = f"{r.rows / r.wall:,.0f}" if r.rows else ""
        tool, note = (text.replace("|", "\\|") for text in (r.tool, r.note))
        lines.append(f"| {tool} | {r.moved} | {r.wall:.2f} | {rate} | "
                     f"{r.rss_mb:.0f} | {r.versus()} | {r.verdict()} | {r.load:.1f} | {note} |")
    return "\n".join(lines)


def write_readme(text: str) -> None:
    """Replace what README.md holds between the bench markers with ``text``."""
    readme = README.read_text()
    start, end = (readme.find(marker) for marker in MARKERS)
    if start < 0 or end < start:
        raise SystemExit(f"README.md has no {MARKERS[0]} ... {MARKERS[1]} block to update")
    README.write_text(readme[:start + len(MARKERS[0])] + "\n" + text + "\n" + readme[end:])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--rss-growth", type=int, default=0, metavar="ROWS",
                        help="also run PG->PG at this many rows and report peak RSS growth")
    parser.add_argument("--only", default="", help="comma list: pg,maria,csv,spill,upsert,"
                        "overhead,optional,tpch (default: all of these), celery (only when "
                        "named: two Celery workers, needs Redis and moto S3)")
    parser.add_argument("--tpch-sf", type=float, default=1.0, metavar="SCALE",
                        help="TPC-H scale factor of the tpch rows (1: 6M lineitem rows)")
    parser.add_argument("--readme", action="store_true",
                        help="write the table into README.md between the bench markers")
    args = parser.parse_args(argv)
    wanted = set(filter(None, args.only.split(","))) or {
        "pg", "maria", "csv", "spill", "upsert", "overhead", "optional", "tpch"}
    folder = Path(tempfile.mkdtemp(prefix="nexus-bench-"))
    try:
        print(f"setting up {args.rows:,} rows ...", file=sys.stderr)
        setup(args.rows)
        write_specs(folder / "job_specs", args.rows)
        specs = folder / "job_specs"
        results: list[Row] = []
        load_before = os.getloadavg()
        raw = raw_copy(args.rows)
        results.append(raw)
        if "pg" in wanted:
            selected = raw_select_copy()
            results += [selected, nexus_pg_pg(selected, specs),
                        nexus_runner_pg_pg(selected, specs),
                        dagster_cli(selected, specs),
                        nexus_pg_pg(selected, specs, pushdown=False),
                        nexus_pg_copy(raw, specs), nexus_pg_copy(raw, specs, pushdown=False)]
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
            results += optional_tools(args.rows, raw)
        if "tpch" in wanted:
            from tests.benchmarks import tpch

            results += tpch.benchmark(args.tpch_sf, folder / "tpch", PG, TGT, measure, task, sql,
                                      pg_url(TGT), psql_dsn(TGT), Row)
        if "celery" in wanted:
            from tests.benchmarks import celery_split

            results += celery_split.benchmark(
                args.rows, folder, {"pg_src": {"type": "postgresql", "database": SRC, **PG},
                                    "pg_tgt": {"type": "postgresql", "database": TGT, **PG}},
                measure, count, TGT, make_orders, SRC, pg_url("postgres"), BIN, Row)
        if args.rss_growth:
            results += rss_growth(results, args.rows, args.rss_growth, specs)
        load_after = os.getloadavg()
        command = " ".join(["python -m tests.benchmarks.run",
                            *(sys.argv[1:] if argv is None else argv)])
        text = (f"`{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
                f"{args.rows:,} rows, {os.cpu_count()} cores, PostgreSQL and MariaDB on "
                f"loopback; load average {load_before[0]:.1f} before, {load_after[0]:.1f} "
                "after (the load column: the 1-minute load average when each row was measured)."
                "\n\n" + table(results))
        print("\n" + text)
        if args.readme:
            write_readme(text)
            print(f"\nREADME.md updated between {MARKERS[0]} and {MARKERS[1]}", file=sys.stderr)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
