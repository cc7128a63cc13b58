"""One asset per physical table or file: keys from where the data lives, lineage across jobs,
spec overrides, asset metadata, and cursors kept per job on the shared source asset."""

from __future__ import annotations

import sqlite3
import textwrap
from pathlib import Path

import dagster as dg
import pytest

from nexus_dagster.dagster.factory import build_definitions
from nexus_dagster.errors import SpecError
from nexus_dagster.spec.loader import load_project

CONNECTIONS = "warehouse:\n  type: sqlite\n  database: w.db\n"

LOAD = """\
name: load_orders
sources:
  - {name: orders, source_type: file, file_path: data/orders.csv, incremental_column: id,
     incremental_value: 0}
targets:
  - {name: raw, target_type: database, connection: warehouse, table: raw_orders}
"""

REPORT = """\
name: report
sources:
  - {name: raw, source_type: database, connection: warehouse, table: raw_orders,
     incremental_column: id}
targets:
  - name: out
    target_type: file
    file_path: out/report.csv
    write_mode: overwrite
    owners: ["team:finance"]
    tags: {tier: gold}
    metadata: {steward: ana}
"""


def project(tmp_path: Path, **jobs: str) -> Path:
    folder = tmp_path / "job_specs"
    folder.mkdir(exist_ok=True)
    (folder / "connections.yaml").write_text(CONNECTIONS)
    for name, text in jobs.items():
        (folder / f"{name}.yaml").write_text(textwrap.dedent(text))
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "orders.csv").write_text("id,amount\n1,10\n2,20\n")
    return folder


def test_a_table_written_by_one_job_and_read_by_another_is_one_asset(tmp_path: Path):
    defs = build_definitions(load_project(project(tmp_path, load=LOAD, report=REPORT)))
    graph = defs.resolve_asset_graph()
    table = dg.AssetKey(["warehouse", "raw_orders"])
    report = dg.AssetKey(["file", "out", "report_csv"])
    assert set(graph.get_all_asset_keys()) == {
        dg.AssetKey(["file", "data", "orders_csv"]), table, report}
    assert graph.get(report).parent_keys == {table}
    assert graph.get(table).is_materializable  # written by load_orders, not an external asset
    assert graph.get(table).group_name == "load_orders"


def test_two_jobs_writing_one_table_is_a_spec_error_naming_both(tmp_path: Path):
    other = LOAD.replace("load_orders", "load_again")
    with pytest.raises(SpecError) as caught:
        build_definitions(load_project(project(tmp_path, load=LOAD, again=other)))
    text = str(caught.value)
    # one job's file and line, and the other job by name
    assert ("again.yaml:6: targets[0]" in text and "of job load_orders" in text) or (
        "load.yaml:6: targets[0]" in text and "of job load_again" in text)
    assert "writes asset warehouse/raw_orders" in text
    assert "give one of them its own asset_key" in text


def test_spec_overrides_and_asset_metadata(tmp_path: Path):
    report = REPORT.replace("    owners:", "    asset_key: finance/daily_report\n"
                            "    group_name: finance\n    deps: [external/fx_rates]\n    owners:")
    defs = build_definitions(load_project(project(tmp_path, load=LOAD, report=report)))
    spec = next(s for s in defs.resolve_all_asset_specs()
                if s.key == dg.AssetKey(["finance", "daily_report"]))
    assert spec.group_name == "finance"
    assert spec.owners == ["team:finance"] and spec.tags["tier"] == "gold"
    assert spec.metadata["steward"] == "ana"
    assert {d.asset_key for d in spec.deps} == {dg.AssetKey(["warehouse", "raw_orders"]),
                                                dg.AssetKey(["external", "fx_rates"])}
    assert spec.metadata["dagster/uri"] == (tmp_path / "out" / "report.csv").resolve().as_uri()
    (reference,) = spec.metadata["dagster/code_references"].code_references
    assert reference.file_path.endswith("report.yaml") and reference.line_number == 6
    table = next(s for s in defs.resolve_all_asset_specs()
                 if s.key == dg.AssetKey(["warehouse", "raw_orders"]))
    assert table.metadata["dagster/table_name"] == "w.raw_orders"


def test_a_bad_asset_key_is_a_spec_error(tmp_path: Path):
    bad = REPORT.replace("    owners:", "    asset_key: finance/daily-report\n    owners:")
    with pytest.raises(SpecError, match="asset_key 'finance/daily-report'"):
        load_project(project(tmp_path, report=bad))


def test_cursors_are_kept_per_job_and_survive_a_reported_materialization(tmp_path: Path):
    folder = project(tmp_path, load=LOAD)
    instance = dg.DagsterInstance.ephemeral()
    job = build_definitions(load_project(folder)).resolve_job_def("load_orders")
    assert job.execute_in_process(instance=instance).success
    # a user reports a materialization of the source from the UI: it carries no cursor
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=dg.AssetKey(["file", "data", "orders_csv"])))
    (tmp_path / "data" / "orders.csv").write_text("id,amount\n1,10\n2,20\n3,30\n")
    assert job.execute_in_process(instance=instance).success
    with sqlite3.connect(tmp_path / "w.db") as con:
        assert con.execute("SELECT id FROM raw_orders ORDER BY id").fetchall() == [
            (1,), (2,), (3,)]  # row 3 once, rows 1-2 not again


def test_a_cursor_stored_by_an_earlier_version_is_read(tmp_path: Path):
    """Before one asset per table, the cursor was a materialization of <job>/<source>."""
    folder = project(tmp_path, load=LOAD)
    instance = dg.DagsterInstance.ephemeral()
    instance.report_runless_asset_event(dg.AssetMaterialization(
        asset_key=dg.AssetKey(["load_orders", "orders"]),
        metadata={"nexus/cursor": dg.MetadataValue.json(
            {"column": "id", "type": "int", "value": "1"})}))
    job = build_definitions(load_project(folder)).resolve_job_def("load_orders")
    assert job.execute_in_process(instance=instance).success
    with sqlite3.connect(tmp_path / "w.db") as con:
        assert con.execute("SELECT id FROM raw_orders").fetchall() == [(2,)]


def test_target_freshness_becomes_the_dagster_freshness_policy(tmp_path: Path):
    report = REPORT.replace("    owners:", "    freshness: {max_age: 24h, warn_after: 12h}\n"
                            "    owners:")
    defs = build_definitions(load_project(project(tmp_path, load=LOAD, report=report)))
    spec = next(s for s in defs.resolve_all_asset_specs()
                if s.key == dg.AssetKey(["file", "out", "report_csv"]))
    policy = spec.freshness_policy
    assert policy.fail_window.to_timedelta().total_seconds() == 24 * 3600
    assert policy.warn_window.to_timedelta().total_seconds() == 12 * 3600


def test_freshness_warn_after_must_be_shorter(tmp_path: Path):
    report = REPORT.replace("    owners:", "    freshness: {max_age: 1h, warn_after: 2h}\n"
                            "    owners:")
    with pytest.raises(SpecError, match=r"report.yaml:[0-9]+: targets\[0\].freshness: .*"
                                        r"warn_after must be shorter than max_age"):
        load_project(project(tmp_path, report=report))
