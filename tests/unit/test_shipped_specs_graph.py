"""The shipped example specs share one asset: the table demo_orders writes is the table
category_totals reads, so the asset graph shows demo_orders -> category_totals."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from nexus_dagster.dagster.factory import build_definitions
from nexus_dagster.spec.loader import load_project

SPECS = Path(__file__).resolve().parents[2] / "job_specs"


def test_the_demo_table_is_one_asset_between_two_jobs():
    defs = build_definitions(load_project(SPECS))
    graph = defs.resolve_asset_graph()
    table = dg.AssetKey(["warehouse", "daily_revenue"])
    totals = dg.AssetKey(["file", "output", "category_totals_csv"])
    keys = set(graph.get_all_asset_keys())
    assert table in keys and totals in keys
    assert graph.get(totals).parent_keys == {table}
    assert graph.get(table).group_name == "demo_orders"  # written by the demo job
    demo = defs.resolve_job_def("demo_orders").asset_layer.selected_asset_keys
    totals_job = defs.resolve_job_def("category_totals").asset_layer.selected_asset_keys
    assert table in demo and table not in totals_job and totals in totals_job
