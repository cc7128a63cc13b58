"""`nexus preview`: a sample through the job's transformations, printed per target; the
database source gets the LIMIT in its SQL; nothing is written or recorded."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from nexus_dagster.cli import main
from nexus_dagster.preview import preview_job, sample_request
from nexus_dagster.run.endpoints import open_endpoint, read_request
from nexus_dagster.spec.loader import load_project

REPO = Path(__file__).resolve().parents[2]


def demo_project(tmp_path: Path) -> Path:
    """A copy of the shipped specs and demo data, with no output, instance or audit log."""
    shutil.copytree(REPO / "job_specs", tmp_path / "job_specs")
    (tmp_path / "data" / "demo").mkdir(parents=True)
    shutil.copy(REPO / "data" / "demo" / "orders.csv", tmp_path / "data" / "demo")
    return tmp_path / "job_specs"


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*")}


def test_preview_prints_schema_and_first_rows_per_target_and_writes_nothing(
        tmp_path, monkeypatch, capsys):
    specs = demo_project(tmp_path)
    home, audit = tmp_path / "dagster_home", tmp_path / "audit.jsonl"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("NEXUS_AUDIT_LOG", str(audit))
    before = snapshot(tmp_path)
    assert main(["preview", "demo_orders", "--rows", "5", "--specs", str(specs)]) == 0
    out = capsys.readouterr().out
    assert "source orders: 5 row(s) read" in out
    assert "target daily_revenue (database warehouse: daily_revenue): 4 row(s)" in out
    assert "    order_day: date32[day]\n    category: string\n" in out
    assert "order_day category  orders" in out
    assert "target daily_revenue_parquet (file: output/daily_revenue.parquet)" in out
    # no target written, no Dagster instance, no audit line, the source untouched
    assert snapshot(tmp_path) == before
    assert not (tmp_path / "output").exists() and not home.exists() and not audit.exists()


def test_database_source_sample_is_limited_in_its_sql(tmp_path):
    specs = demo_project(tmp_path)
    (tmp_path / "output").mkdir()
    with sqlite3.connect(tmp_path / "output" / "warehouse.db") as db:
        db.execute("CREATE TABLE daily_revenue (order_day TEXT, category TEXT, orders INTEGER,"
                   " revenue REAL, net_revenue REAL)")
        db.executemany("INSERT INTO daily_revenue VALUES (?, ?, ?, ?, ?)",
                       [(f"2024-01-{d % 28 + 1:02d}", f"c{d % 5}", 1, 2.0, 1.5)
                        for d in range(1000)])
    project = load_project(specs)
    spec = project.job("category_totals")
    source = spec.job.sources[0]
    connector = open_endpoint(source, spec, project.connections)
    try:
        request = sample_request(connector, read_request(source, connector, spec.root), 7)
    finally:
        connector.close()
    assert request.table is None
    assert " ".join(request.query.split()).startswith("SELECT * FROM daily_revenue LIMIT 7")
    result = preview_job(project, "category_totals", rows=7)
    assert result.sources == {"daily_revenue": 7}
    table, _ = result.targets["category_totals"]
    assert table.column_names == ["category", "days", "orders", "revenue", "net_revenue"]
    assert sum(table.column("orders").to_pylist()) == 7
    assert not (tmp_path / "output" / "category_totals.csv").exists()


def test_preview_of_unknown_job_names_the_jobs(tmp_path, capsys):
    assert main(["preview", "demo_order", "--specs", str(demo_project(tmp_path))]) == 1
    assert "no job named 'demo_order'; did you mean 'demo_orders'? jobs: category_totals, " \
           "demo_orders" in \
        capsys.readouterr().err


def test_targets_reading_different_inputs_preview_their_own_rows(tmp_path):
    """A raw target (``input:`` the source) and an aggregate target get their own samples."""
    folder = tmp_path / "job_specs"
    folder.mkdir()
    (tmp_path / "orders.csv").write_text("id,city,amount\n1,Lima,5\n2,Lima,7\n3,Kyoto,1\n")
    (folder / "two.yaml").write_text("""\
name: two
sources: [{name: orders, source_type: file, file_path: orders.csv}]
transformations:
  - {name: per_city, transformation_type: aggregate,
     config: {group_by: [city], aggregations: {total: [amount, sum]}}}
targets:
  - {name: raw, target_type: file, file_path: out/raw.parquet, input: orders}
  - {name: totals, target_type: file, file_path: out/totals.parquet}
""")
    preview = preview_job(load_project(folder), "two", rows=10)
    raw, _ = preview.targets["raw"]
    totals, _ = preview.targets["totals"]
    assert raw.column_names == ["id", "city", "amount"] and raw.num_rows == 3
    assert sorted(zip(totals["city"].to_pylist(), totals["total"].to_pylist(), strict=True)) == [
        ("Kyoto", 1), ("Lima", 12)]
    assert "the same rows" not in preview.render()
    assert not (tmp_path / "out").exists()
