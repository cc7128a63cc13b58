"""Column lineage through the transformation chain (the step table's lineage rules)."""

from __future__ import annotations

from nexus_dagster.spec.models import ETLJob, Transformation
from nexus_dagster.transforms.column_lineage import column_lineage


def _steps(*steps: dict, sources: tuple[str, ...] = ("orders",)) -> list[Transformation]:
    return ETLJob.model_validate({
        "name": "j",
        "sources": [{"name": s, "source_type": "file", "file_path": f"{s}.csv"} for s in sources],
        "transformations": [{"name": f"s{i}", **step} for i, step in enumerate(steps)],
        "targets": [{"name": "out", "target_type": "file", "file_path": "out.csv"}],
    }).ordered_transformations()


def test_map_filter_and_constants():
    job = _steps(
        {"transformation_type": "filter", "config": {"condition": "amount > 0"}},
        {"transformation_type": "map", "config": {"mappings": {
            "revenue": "quantity * price", "net": "revenue * (1 - discount)", "one": "1"}}},
    )
    cols = {"orders": ["id", "quantity", "price", "discount", "amount"]}
    lineage = column_lineage(job, cols, ["id", "revenue", "net", "one"])
    assert lineage["id"] == {("orders", "id")}
    assert lineage["revenue"] == {("orders", "quantity"), ("orders", "price")}
    assert lineage["net"] == {("orders", "quantity"), ("orders", "price"), ("orders", "discount")}
    assert lineage["one"] == set()


def test_aggregate_keeps_keys_and_measured_columns():
    job = _steps({"transformation_type": "aggregate", "config": {
        "group_by": ["day"], "aggregations": {"total": ["amount", "sum"], "n": ["id", "count"]}}})
    lineage = column_lineage(job, {"orders": ["id", "day", "amount", "note"]},
                             ["day", "total", "n"])
    assert lineage == {"day": {("orders", "day")}, "total": {("orders", "amount")},
                       "n": {("orders", "id")}}


def test_join_union_pivot_and_custom_code():
    join = _steps({"transformation_type": "join", "config": {
        "left": "orders", "right": "customers", "on": ["cid"]}},
        sources=("orders", "customers"))
    cols = {"orders": ["cid", "name", "amount"], "customers": ["cid", "name", "city"]}
    lineage = column_lineage(join, cols, ["cid", "name_x", "name_y", "city", "amount"])
    assert lineage["cid"] == {("orders", "cid"), ("customers", "cid")}
    assert lineage["name_x"] == {("orders", "name")}
    assert lineage["name_y"] == {("customers", "name")}
    assert lineage["city"] == {("customers", "city")}

    union = _steps(sources=("a", "b"))
    assert column_lineage(union, {"a": ["x"], "b": ["x", "y"]}, ["x", "y"]) == {
        "x": {("a", "x"), ("b", "x")}, "y": {("b", "y")}}

    pivot = _steps({"transformation_type": "pivot", "config": {
        "index": "cid", "columns": "month", "values": "sales"}})
    lineage = column_lineage(pivot, {"orders": ["cid", "month", "sales", "x"]}, ["cid", "2024-01"])
    assert lineage["cid"] == {("orders", "cid")}
    assert lineage["2024-01"] == {("orders", "month"), ("orders", "sales")}

    code = _steps({"transformation_type": "custom_code", "custom_code": "df['z'] = 1"})
    lineage = column_lineage(code, {"orders": ["a", "b"]}, ["a", "z"])
    assert lineage["a"] == lineage["z"] == {("orders", "a"), ("orders", "b")}


def test_a_join_reads_an_earlier_join_as_it_was_produced():
    """A map after a join does not change what a later join reads from that join."""
    steps = _steps(
        {"transformation_type": "join", "config": {
            "left": "orders", "right": "customers", "on": ["cid"]}},
        {"transformation_type": "map", "config": {"mappings": {"city": "amount"}}},
        {"transformation_type": "join", "config": {"left": "s0", "right": "regions",
                                                   "on": ["city"]}},
        sources=("orders", "customers", "regions"),
    )
    cols = {"orders": ["cid", "amount"], "customers": ["cid", "city"],
            "regions": ["city", "region"]}
    lineage = column_lineage(steps, cols, ["city", "region"])
    assert lineage["city"] == {("customers", "city"), ("regions", "city")}
    assert lineage["region"] == {("regions", "region")}
