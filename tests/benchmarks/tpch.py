"""TPC-H with tpchgen-cli: the data, DuckDB's own queries, and the benchmark rows.

The example specs in ``examples/tpch/jobs`` (Q1 and Q3 as aggregate/join/filter/map/window/
sort steps) read ``data/<table>.csv`` under their project root; :func:`job_specs` copies them
for the other format. :func:`reference` runs the same query in DuckDB over the same files,
with the same column types (money columns ``decimal(15,2)``), so results compare exactly.

Benchmark rows (``python -m tests.benchmarks.run --only tpch --rows 1000 [--tpch-sf 10]``;
``--rows`` only sizes the orders table the other rows use), each against a baseline measured in
the same run on the same files:

* lineitem CSV and Parquet -> PostgreSQL vs ``psql \\copy`` of the CSV into a table with the
  same column types (``CREATE TABLE ... (LIKE <the table nexus created>)``);
* Q1 and Q3 over CSV and over Parquet vs DuckDB's ``COPY (query) TO parquet`` over the same
  files, results checked equal.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "tpch"
#: the example jobs: name -> the tables they read
QUERIES = {"tpch_q1": ("lineitem",), "tpch_q3": ("customer", "orders", "lineitem")}
#: every money column (TPC-H: decimal(15,2)); tpchgen-cli's Parquet files carry this type
MONEY = {
    "lineitem": ("l_quantity", "l_extendedprice", "l_discount", "l_tax"),
    "orders": ("o_totalprice",),
    "customer": ("c_acctbal",),
}
MONEY_TYPE = "decimal(15,2)"
#: targets (issue 19): lineitem -> PostgreSQL vs psql \copy, the query specs vs DuckDB
LOAD_GOAL, QUERY_GOAL = 1.2, 1.3

#: DuckDB's own Q1 and Q3 (Q3 with the spec's tie-breakers: order date, then order key)
SQL = {
    "tpch_q1": """
        SELECT l_returnflag, l_linestatus, sum(l_quantity) AS sum_qty,
               sum(l_extendedprice) AS sum_base_price,
               sum(l_extendedprice * (1 - l_discount)) AS sum_disc_price,
               sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) AS sum_charge,
               avg(l_quantity) AS avg_qty, avg(l_extendedprice) AS avg_price,
               avg(l_discount) AS avg_disc, count(*) AS count_order
        FROM lineitem
        WHERE l_shipdate <= DATE '1998-12-01' - INTERVAL 90 DAY
        GROUP BY l_returnflag, l_linestatus
        ORDER BY l_returnflag, l_linestatus""",
    "tpch_q3": """
        SELECT l_orderkey, sum(l_extendedprice * (1 - l_discount)) AS revenue, o_orderdate,
               o_shippriority
        FROM customer, orders, lineitem
        WHERE c_mktsegment = 'BUILDING' AND c_custkey = o_custkey AND l_orderkey = o_orderkey
          AND o_orderdate < DATE '1995-03-15' AND l_shipdate > DATE '1995-03-15'
        GROUP BY l_orderkey, o_orderdate, o_shippriority
        ORDER BY revenue DESC, o_orderdate, l_orderkey
        LIMIT 10""",
}


def tpchgen() -> str:
    """The ``tpchgen-cli`` binary of this environment (the ``test`` and ``bench`` extras)."""
    found = Path(sys.executable).parent / "tpchgen-cli"
    if found.is_file():
        return str(found)
    on_path = shutil.which("tpchgen-cli")
    if on_path is None:
        raise RuntimeError("tpchgen-cli is not installed: pip install -e .[test] (or .[bench])")
    return on_path


def generate(folder: Path, scale: float, fmt: str, tables: Sequence[str]) -> Path:
    """``tables`` at scale factor ``scale`` as ``folder/<table>.<fmt>`` (csv or parquet)."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([tpchgen(), fmt, "-s", str(scale), "--tables", ",".join(tables),
                    "-o", str(folder), "--overwrite"], check=True, capture_output=True)
    return folder


def job_specs(folder: Path, fmt: str, data: Path) -> Path:
    """The example jobs in ``folder`` reading ``data/<table>.<fmt>`` (an absolute path); the
    money columns keep ``decimal(15,2)`` (Parquet files carry it, CSV gets ``column_types``).
    Returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in QUERIES:
        spec = yaml.safe_load((EXAMPLES / "jobs" / f"{name}.yaml").read_text())
        for source in spec["sources"]:
            source["file_path"] = str(data / f"{source['name']}.{fmt}")
            source["file_format"] = fmt
            if fmt != "csv":
                source.pop("options", None)
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder


def views(data: Path, fmt: str, tables: Sequence[str]) -> list[str]:
    """DuckDB statements making each table a view over its file, money as decimal(15,2)."""
    out = []
    for table in tables:
        path = data / f"{table}.{fmt}"
        if fmt == "csv":
            types = {c: MONEY_TYPE for c in MONEY.get(table, ())}
            read = f"read_csv('{path}', header=true, types={types!r})"
        else:
            read = f"read_parquet('{path}')"
        out.append(f"CREATE VIEW {table} AS SELECT * FROM {read}")
    return out


def reference(query: str, data: Path, fmt: str) -> list[tuple[Any, ...]]:
    """DuckDB's own result of ``query`` (a name of :data:`SQL`) over the files in ``data``."""
    import duckdb

    con = duckdb.connect()
    try:
        for statement in views(data, fmt, QUERIES[query]):
            con.execute(statement)
        return con.execute(SQL[query]).fetchall()
    finally:
        con.close()


def parquet_rows(path: Path) -> list[tuple[Any, ...]]:
    """The rows of a Parquet file as tuples (decimals as ``Decimal``, dates as ``date``)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    return list(zip(*(table.column(i).to_pylist() for i in range(table.num_columns)),
                    strict=True))


# ------------------------------------------------------------------------------ benchmark rows
def benchmark(scale: float, folder: Path, pg: dict[str, Any], db: str,
              measure: Callable[..., tuple[float, float, str]],
              task: Callable[..., tuple[float, float, dict]],
              sql: Callable[..., None], pg_url: str, psql_dsn: str,
              row: Callable[..., Any]) -> list[Any]:
    """The TPC-H rows of the benchmark table (``run.py`` passes its helpers, its ``Row`` and
    the target PostgreSQL database ``db``): each nexus row has its baseline row and target."""
    tables = ("customer", "orders", "lineitem")
    data = {fmt: generate(folder / f"data_{fmt}", scale, fmt, tables)
            for fmt in ("csv", "parquet")}
    lines = _line_count(data["csv"] / "lineitem.csv") - 1
    out = []
    out += _lineitem_loads(folder, data, lines, pg, db, measure, task, sql, pg_url, psql_dsn,
                           row)
    out += _queries(folder, data, lines, task, row)
    return out


def _line_count(path: Path) -> int:
    count = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 24):
            count += chunk.count(b"\n")
    return count


def _lineitem_loads(folder: Path, data: dict[str, Path], lines: int, pg: dict[str, Any],
                    db: str, measure: Callable[..., tuple[float, float, str]],
                    task: Callable[..., tuple[float, float, dict]], sql: Callable[..., None],
                    pg_url: str, psql_dsn: str, row: Callable[..., Any]) -> list[Any]:
    specs = folder / "load_specs"
    specs.mkdir(parents=True, exist_ok=True)
    (specs / "connections.yaml").write_text(json.dumps(
        {"pg": {"type": "postgresql", "database": db, **pg}}))
    money = {c: MONEY_TYPE for c in MONEY["lineitem"]}
    for fmt in ("csv", "parquet"):
        source = {"name": "lineitem", "source_type": "file", "file_format": fmt,
                  "file_path": str(data[fmt] / f"lineitem.{fmt}")}
        if fmt == "csv":
            source["options"] = {"column_types": money}
        (specs / f"tpch_load_{fmt}.yaml").write_text(json.dumps({
            "name": f"tpch_load_{fmt}", "sources": [source], "transformations": [],
            "targets": [{"name": "dst", "target_type": "database", "connection": "pg",
                         "table": f"lineitem_{fmt}", "write_mode": "append"}]}))
    sql(pg_url, "DROP TABLE IF EXISTS lineitem_csv, lineitem_parquet, lineitem_copy")
    loads = []
    for fmt in ("csv", "parquet"):
        seconds, rss, result = task("runner_job", {"folder": str(specs),
                                                   "job": f"tpch_load_{fmt}"})
        loads.append((fmt, seconds, rss, result["rows"]))
    # the baseline's table: the very column types nexus created from the CSV
    sql(pg_url, "CREATE TABLE lineitem_copy (LIKE lineitem_csv)")
    wall, rss, _ = measure(
        f"psql -qX '{psql_dsn}' -c \"\\copy lineitem_copy from "
        f"'{data['csv'] / 'lineitem.csv'}' (format csv, header)\"")
    types = _column_types(pg_url, ("lineitem_csv", "lineitem_parquet", "lineitem_copy"))
    moved = f"lineitem: all {lines:,} rows, 16 columns"
    base = row("psql \\copy lineitem.csv -> PG", wall, lines, rss,
               _money_and_dates(types["lineitem_copy"]), moved=moved, tag="psql \\copy")
    out = [base]
    for fmt, seconds, rss, rows in loads:
        check = "" if rows == lines else f"; {rows} ROWS LOADED"
        differ = [f"{a} vs {b}" for a, b in zip(types[f"lineitem_{fmt}"].split(", "),
                                                types["lineitem_copy"].split(", "), strict=True)
                  if a != b]
        same = f"types differ: {', '.join(differ)}" if differ else "same column types"
        out.append(row(f"nexus lineitem {fmt.upper()} -> PG", seconds, rows, rss,
                       f"{same}{check}", moved=moved, baseline=base, goal=LOAD_GOAL))
    sql(pg_url, "DROP TABLE IF EXISTS lineitem_csv, lineitem_parquet, lineitem_copy")
    return out


def _column_types(pg_url: str, tables: Sequence[str]) -> dict[str, str]:
    """Each table's column types in order (``numeric(15,2)``, ``date``, ...)."""
    import sqlalchemy as sa

    engine = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    with engine.connect() as con:
        out = {table: con.execute(sa.text(
            "SELECT string_agg(format_type(atttypid, atttypmod), ', ' ORDER BY attnum) "
            "FROM pg_attribute WHERE attrelid = CAST(:t AS regclass) AND attnum > 0 "
            "AND NOT attisdropped"), {"t": table}).scalar_one() for table in tables}
    engine.dispose()
    return out


def _money_and_dates(types: str) -> str:
    names = types.split(", ")
    return f"{names.count('numeric(15,2)')} numeric(15,2), {names.count('date')} date columns"


def _queries(folder: Path, data: dict[str, Path], lines: int,
             task: Callable[..., tuple[float, float, dict]], row: Callable[..., Any]
             ) -> list[Any]:
    out, compare = [], []
    for fmt in ("csv", "parquet"):
        specs = job_specs(folder / f"query_specs_{fmt}", fmt, data[fmt])
        for query in QUERIES:
            duck_out = folder / f"duck_{query}_{fmt}.parquet"
            statements = [*views(data[fmt], fmt, QUERIES[query]),
                          f"COPY ({SQL[query]}) TO '{duck_out}' (FORMAT parquet)"]
            seconds, duck_rss, _ = task("duckdb_sql", {"statements": statements})
            ours, rss, _ = task("runner_job", {"folder": str(specs), "job": query})
            ours_out = folder / f"nexus_{query}_{fmt}.parquet"
            shutil.move(specs.parent / "output" / f"{query}.parquet", ours_out)
            label = query.removeprefix("tpch_").upper()
            moved = f"{' + '.join(QUERIES[query])} {fmt.upper()} in ({lines:,} line items)"
            base = row(f"DuckDB TPC-H {label} over {fmt.upper()}", seconds, lines, duck_rss,
                       moved=moved, tag="DuckDB")
            out += [base, row(f"nexus TPC-H {label} spec over {fmt.upper()}", ours, lines, rss,
                              moved=moved, baseline=base, goal=QUERY_GOAL)]
            compare.append((out[-1], ours_out, duck_out))
    # read the results only now: pyarrow in this process would raise every later child's peak
    # RSS (a child starts with its parent's pages)
    for result, ours_out, duck_out in compare:
        equal = parquet_rows(ours_out) == parquet_rows(duck_out)
        result.note = "result equal to DuckDB's" if equal else "RESULT DIFFERS FROM DUCKDB"
    return out
