"""Joins on differently named keys, semi/anti/cross joins, joins of any earlier step and
chains of joins, each compared with pandas on the same data."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from nexus_dagster.errors import TransformError
from nexus_dagster.spec.models import Transformation
from nexus_dagster.transforms.column_lineage import column_lineage

from .helpers import frame, run

ORDERS = pa.table(
    {
        "o_id": [10, 11, 12, 13, 14, 15],
        "o_custkey": [2, 1, 2, 9, None, 1],
        "o_region": ["eu", "us", "eu", "eu", "us", "us"],
        "amount": [5.0, 6.0, 7.0, 8.0, 9.0, 1.5],
    }
)
CUSTOMERS = pa.table(
    {
        "c_custkey": [1, 2, 3, 2],
        "c_region": ["us", "eu", "eu", "us"],
        "name": ["Ann", "Bob", "Cid", "Bob2"],
        "amount": [100.0, 200.0, 300.0, 400.0],
    }
)
TABLES = {"orders": ORDERS, "customers": CUSTOMERS}


def step(name: str, kind: str, input: str | None = None, **config: object) -> Transformation:
    """A step with its config as keyword arguments and the step's ``input``."""
    return Transformation(name=name, transformation_type=kind, config=config, input=input)


def assert_frame(actual: pa.Table, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(frame(actual), expected.reset_index(drop=True),
                                  check_dtype=False)


def no_null_keys(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """pandas matches NaN keys with NaN keys; SQL never matches NULL keys."""
    return df[df[column].notna()]


@pytest.mark.parametrize("how", ["inner", "left", "right", "outer"])
def test_left_on_right_on_matches_pandas_merge(how: str) -> None:
    out = run(TABLES, step("j", "join", left="orders", right="customers",
                           left_on="o_custkey", right_on="c_custkey", how=how))
    expected = ORDERS.to_pandas().merge(CUSTOMERS.to_pandas(), left_on="o_custkey",
                                        right_on="c_custkey", how=how)
    assert_frame(out, expected)
    assert {"amount_x", "amount_y", "o_custkey", "c_custkey"} <= set(out.column_names)


@pytest.mark.parametrize("how", ["inner", "left", "outer"])
def test_two_key_pairs_match_pandas_merge(how: str) -> None:
    out = run(TABLES, step("j", "join", left="orders", right="customers",
                           left_on=["o_custkey", "o_region"],
                           right_on=["c_custkey", "c_region"], how=how))
    expected = ORDERS.to_pandas().merge(CUSTOMERS.to_pandas(),
                                        left_on=["o_custkey", "o_region"],
                                        right_on=["c_custkey", "c_region"], how=how)
    assert_frame(out, expected)


def test_a_key_pair_with_one_name_is_one_column_like_pandas() -> None:
    left = pa.table({"id": [2, 1, 3], "k": [1, 1, 1]})
    right = pa.table({"id": [1, 2], "x": [5, 6]})
    out = run({"l": left, "r": right}, step("j", "join", left="l", right="r",
                                            left_on=["id", "k"], right_on=["id", "x"],
                                            how="outer"))
    expected = left.to_pandas().merge(right.to_pandas(), left_on=["id", "k"],
                                      right_on=["id", "x"], how="outer")
    assert out.column_names == ["id", "k", "x"]
    assert_frame(out, expected)


def test_semi_join_keeps_left_rows_with_a_match_like_isin() -> None:
    out = run(TABLES, step("j", "join", left="orders", right="customers",
                           left_on="o_custkey", right_on="c_custkey", how="semi"))
    orders = ORDERS.to_pandas()
    expected = orders[orders["o_custkey"].isin(CUSTOMERS.to_pandas()["c_custkey"])]
    assert out.column_names == ORDERS.column_names
    assert_frame(out, expected)  # each left row once although customer 2 matches twice


def test_anti_join_keeps_left_rows_without_a_match_like_not_isin() -> None:
    out = run(TABLES, step("j", "join", left="customers", right="orders",
                           left_on="c_custkey", right_on="o_custkey", how="anti"))
    customers = CUSTOMERS.to_pandas()
    orders = no_null_keys(ORDERS.to_pandas(), "o_custkey")
    assert_frame(out, customers[~customers["c_custkey"].isin(orders["o_custkey"])])
    assert out.column("name").to_pylist() == ["Cid"]


def test_anti_join_keeps_a_null_key_row_and_a_right_null_hides_nothing() -> None:
    """NOT EXISTS semantics: a NULL key matches nothing (NOT IN would drop every row)."""
    out = run(TABLES, step("j", "join", left="orders", right="customers",
                           left_on="o_custkey", right_on="c_custkey", how="anti"))
    assert out.column("o_id").to_pylist() == [13, 14]
    right_null = run({"c": CUSTOMERS, "o": ORDERS},
                     step("j", "join", left="c", right="o", left_on="c_custkey",
                          right_on="o_custkey", how="anti"))
    assert right_null.column("c_custkey").to_pylist() == [3]


def test_semi_and_anti_on_two_keys_match_isin_of_pairs() -> None:
    orders = ORDERS.to_pandas()
    pairs = set(zip(CUSTOMERS.column("c_custkey").to_pylist(),
                    CUSTOMERS.column("c_region").to_pylist(), strict=True))
    has = orders.apply(lambda r: (r["o_custkey"], r["o_region"]) in pairs, axis=1)
    for how, expected in (("semi", orders[has]), ("anti", orders[~has])):
        out = run(TABLES, step("j", "join", left="orders", right="customers",
                               left_on=["o_custkey", "o_region"],
                               right_on=["c_custkey", "c_region"], how=how))
        assert_frame(out, expected)


def test_cross_join_matches_pandas_cross_merge() -> None:
    sizes = pa.table({"size": ["S", "M"], "amount": [1, 2]})
    colors = pa.table({"color": ["red", "blue", "green"], "amount": [3, 4, 5]})
    out = run({"sizes": sizes, "colors": colors},
              step("j", "join", left="sizes", right="colors", how="cross"))
    expected = sizes.to_pandas().merge(colors.to_pandas(), how="cross")
    assert out.column_names == ["size", "amount_x", "color", "amount_y"]
    assert_frame(out, expected)


def test_join_of_an_aggregate_enriches_it_like_pandas() -> None:
    out = run(
        TABLES,
        step("totals", "aggregate", group_by="o_custkey",
             aggregations={"total": ["amount", "sum"], "orders": ["o_id", "count"]},
             input="orders"),
        step("named", "join", left="totals", right="customers", left_on="o_custkey",
             right_on="c_custkey", how="left"),
    )
    totals = ORDERS.to_pandas().groupby("o_custkey", dropna=False).agg(total=("amount", "sum"),
                                             orders=("o_id", "count")).reset_index()
    expected = totals.merge(CUSTOMERS.to_pandas(), left_on="o_custkey", right_on="c_custkey",
                            how="left")
    assert_frame(out, expected)


def test_join_of_a_pivot_and_of_a_map() -> None:
    sales = pa.table({"customer_id": [1, 1, 2, 2, 3], "category": ["a", "b", "a", "a", "b"],
                      "sales": [1.0, 2.0, 3.0, 4.0, 5.0]})
    out = run(
        {"sales": sales},
        step("wide", "pivot", index="customer_id", columns="category", values="sales",
             aggfunc="sum", fill_value=0),
        step("doubled", "map", mappings={"twice": "sales * 2"}, input="sales"),
        step("back", "join", left="doubled", right="wide", on="customer_id", how="left"),
    )
    df = sales.to_pandas()
    wide = df.pivot_table(index="customer_id", columns="category", values="sales",
                          aggfunc="sum", fill_value=0).reset_index()
    wide.columns.name = None
    expected = df.assign(twice=df["sales"] * 2).merge(wide, on="customer_id", how="left")
    assert_frame(out, expected)


def test_chain_of_three_joins_matches_pandas() -> None:
    products = pa.table({"p_id": [1, 2], "product": ["pen", "ink"]})
    lines = pa.table({"l_order": [10, 10, 11, 12, 15], "l_product": [1, 2, 2, 1, 2],
                      "qty": [1, 2, 3, 4, 5]})
    out = run(
        {**TABLES, "products": products, "lines": lines},
        step("oc", "join", left="orders", right="customers", left_on="o_custkey",
             right_on="c_custkey"),
        step("ocl", "join", left="oc", right="lines", left_on="o_id", right_on="l_order"),
        step("all", "join", left="ocl", right="products", left_on="l_product",
             right_on="p_id"),
        step("m", "map", mappings={"line": 'name + ":" + product'}),
    )
    expected = (
        ORDERS.to_pandas()
        .merge(CUSTOMERS.to_pandas(), left_on="o_custkey", right_on="c_custkey")
        .merge(lines.to_pandas(), left_on="o_id", right_on="l_order")
        .merge(products.to_pandas(), left_on="l_product", right_on="p_id")
    )
    expected["line"] = expected["name"] + ":" + expected["product"]
    assert_frame(out, expected)


def test_a_step_input_reads_a_source_instead_of_the_union() -> None:
    out = run(TABLES, step("big", "filter", condition="amount >= 7", input="orders"))
    orders = ORDERS.to_pandas()
    assert_frame(out, orders[orders["amount"] >= 7])


def test_join_key_missing_names_side_and_columns() -> None:
    with pytest.raises(TransformError, match="key 'c_id' is not a column of 'customers'"):
        run(TABLES, step("j", "join", left="orders", right="customers",
                         left_on="o_custkey", right_on="c_id"))


def test_lineage_of_the_new_join_forms() -> None:
    cols = {"orders": ORDERS.column_names, "customers": CUSTOMERS.column_names}
    keyed = [step("j", "join", left="orders", right="customers", left_on="o_custkey",
                  right_on="c_custkey")]
    lineage = column_lineage(keyed, cols, ["o_custkey", "c_custkey", "amount_x", "amount_y"])
    assert lineage == {"o_custkey": {("orders", "o_custkey")},
                       "c_custkey": {("customers", "c_custkey")},
                       "amount_x": {("orders", "amount")},
                       "amount_y": {("customers", "amount")}}
    semi = [step("j", "join", left="orders", right="customers", left_on="o_custkey",
                 right_on="c_custkey", how="semi")]
    keys = {("orders", "o_custkey"), ("customers", "c_custkey")}
    assert column_lineage(semi, cols, ["amount"]) == {"amount": {("orders", "amount")} | keys}
    cross = [step("j", "join", left="orders", right="customers", how="cross")]
    assert column_lineage(cross, cols, ["name", "amount_y"]) == {
        "name": {("customers", "name")}, "amount_y": {("customers", "amount")}}
    enriched = [
        step("totals", "aggregate", group_by="o_custkey",
             aggregations={"total": ["amount", "sum"]}, input="orders"),
        step("named", "join", left="totals", right="customers", left_on="o_custkey",
             right_on="c_custkey"),
    ]
    assert column_lineage(enriched, cols, ["total", "name"]) == {
        "total": {("orders", "amount")}, "name": {("customers", "name")}}
