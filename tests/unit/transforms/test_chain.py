"""The built-in transformations, each compared with what pandas does on the same data."""

from __future__ import annotations

import datetime
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from nexus_dagster.errors import ExpressionError, SpecError, TransformError
from nexus_dagster.relation import Relation
from nexus_dagster.transforms.chain import apply_transformations

from .helpers import frame, run, step


def assert_frame(actual: pa.Table, expected: pd.DataFrame, **kwargs: object) -> None:
    pd.testing.assert_frame_equal(
        frame(actual), expected.reset_index(drop=True), check_dtype=False, **kwargs
    )


# ----------------------------------------------------------------------------- filter
def test_filter_documented_condition(people: pa.Table) -> None:
    out = run(people, step("filter_active", "filter", condition='status == "active" and age >= 18'))
    df = people.to_pandas()
    assert_frame(out, df.query('status == "active" and age >= 18'))


def test_filter_not_and_in(people: pa.Table) -> None:
    out = run(people, step("f", "filter", condition='not (country in ["DE", "FR"])'))
    df = people.to_pandas()
    assert_frame(out, df[~df["country"].isin(["DE", "FR"])])


def test_filter_not_equal_keeps_nulls_like_pandas(people: pa.Table) -> None:
    out = run(people, step("f", "filter", condition='status != "active"'))
    df = people.to_pandas()
    assert_frame(out, df[df["status"] != "active"])


def test_filter_keeps_schema_and_types() -> None:
    tz = pa.timestamp("us", tz="Europe/Berlin")
    table = pa.table(
        {
            "ts": pa.array([0, 10**12], tz),
            "amount": pa.array([Decimal("1.10"), Decimal("-2.00")], pa.decimal128(12, 2)),
            "name": pa.array(["a", "b"], pa.large_string()),
        }
    )
    out = run(table, step("f", "filter", condition="amount > 0"))
    assert out.schema == table.schema
    assert out.column("amount").to_pylist() == [Decimal("1.10")]


# ----------------------------------------------------------------------------- map
def test_map_documented_mappings(people: pa.Table) -> None:
    out = run(
        people,
        step(
            "create_columns",
            "map",
            mappings={
                "full_name": 'first_name + " " + last_name',
                "revenue": "quantity * price",
                "discount_amount": "revenue * discount_rate",
            },
        ),
    )
    df = people.to_pandas()
    df["full_name"] = df["first_name"] + " " + df["last_name"]
    df["revenue"] = df["quantity"] * df["price"]
    df["discount_amount"] = df["revenue"] * df["discount_rate"]
    assert_frame(out, df)
    assert out.column_names[-3:] == ["full_name", "revenue", "discount_amount"]


def test_map_replaces_in_place(people: pa.Table) -> None:
    out = run(people, step("m", "map", mappings={"age": "age + 1", "status": "upper(status)"}))
    assert out.column_names == people.column_names
    df = people.to_pandas()
    df["age"] = df["age"] + 1
    df["status"] = df["status"].str.upper()
    assert_frame(out, df)


def test_map_decimal_arithmetic_stays_decimal() -> None:
    table = pa.table(
        {"q": [2, 3], "p": pa.array([Decimal("1.25"), Decimal("2.10")], pa.decimal128(10, 2))}
    )
    out = run(table, step("m", "map", mappings={"total": "q * p"}))
    assert pa.types.is_decimal(out.schema.field("total").type)
    assert out.column("total").to_pylist() == [Decimal("2.50"), Decimal("6.30")]


def test_map_unknown_column_names_it(people: pa.Table) -> None:
    with pytest.raises(ExpressionError, match=r"unknown column 'revenue'.*transformation 'm'"):
        run(people, step("m", "map", mappings={"x": "revenue * 2"}))


def test_map_type_error_names_the_step(people: pa.Table) -> None:
    with pytest.raises(TransformError, match="'bad'"):
        run(
            people,
            step("ok", "filter", condition="age > 0"),
            step("bad", "map", mappings={"x": "year(first_name)"}),
        )


# ----------------------------------------------------------------------------- aggregate
def test_aggregate_documented_config() -> None:
    table = pa.table(
        {
            "customer_id": [1, 1, 2, 2, 2, 3],
            "product_category": ["a", "a", "b", "a", "b", "c"],
            "amount": [10.0, 20.0, 5.0, None, 7.0, 1.0],
            "order_id": [100, 101, 102, 103, None, 105],
        }
    )
    out = run(
        table,
        step(
            "summarize",
            "aggregate",
            group_by=["customer_id", "product_category"],
            aggregations={
                "total_sales": ("amount", "sum"),
                "order_count": ("order_id", "count"),
                "avg_order_value": ("amount", "mean"),
            },
        ),
    )
    expected = (
        table.to_pandas()
        .groupby(["customer_id", "product_category"])
        .agg(
            total_sales=("amount", "sum"),
            order_count=("order_id", "count"),
            avg_order_value=("amount", "mean"),
        )
        .reset_index()
    )
    assert_frame(out, expected)


def test_aggregate_all_functions() -> None:
    rng = np.random.default_rng(3)
    df = pd.DataFrame(
        {
            "g": rng.choice(["x", "y", "z"], 60),
            "v": rng.integers(0, 10, 60).astype(float),
        }
    )
    df.loc[[0, 7, 30], "v"] = np.nan
    functions = [
        "sum",
        "mean",
        "count",
        "size",
        "min",
        "max",
        "median",
        "std",
        "var",
        "first",
        "last",
        "nunique",
    ]
    aggregations = {f"v_{f}": ("v", f) for f in functions}
    out = run(
        pa.Table.from_pandas(df, preserve_index=False),
        step("a", "aggregate", group_by="g", aggregations=aggregations),
    )
    expected = df.groupby("g").agg(**aggregations).reset_index()
    assert_frame(out, expected, rtol=1e-9)


def test_aggregate_without_group_by_is_one_row(people: pa.Table) -> None:
    out = run(
        people,
        step("a", "aggregate", aggregations={"n": ("id", "size"), "total": ("quantity", "sum")}),
    )
    assert out.to_pylist() == [{"n": 7, "total": 28}]
    assert out.schema.field("total").type == pa.int64()


def test_aggregate_decimal_sum_stays_decimal() -> None:
    table = pa.table(
        {
            "k": ["a", "a", "b"],
            "d": pa.array([Decimal("0.10"), Decimal("0.20"), None], pa.decimal128(10, 2)),
        }
    )
    out = run(table, step("a", "aggregate", group_by="k", aggregations={"s": ("d", "sum")}))
    assert pa.types.is_decimal(out.schema.field("s").type)
    assert out.column("s").to_pylist() == [Decimal("0.30"), Decimal("0.00")]


def test_aggregate_sorted_by_keys_with_nulls_last(people: pa.Table) -> None:
    out = run(
        people, step("a", "aggregate", group_by="status", aggregations={"n": ("id", "count")})
    )
    assert out.column("status").to_pylist() == ["active", "inactive", None]
    assert out.column("n").to_pylist() == [4, 2, 1]


def test_aggregate_first_last_follow_row_order(people: pa.Table) -> None:
    out = run(
        people,
        step("s", "sort", columns="age", ascending=False),
        step(
            "a",
            "aggregate",
            group_by="country",
            aggregations={"oldest": ("first_name", "first"), "youngest": ("first_name", "last")},
        ),
    )
    df = people.to_pandas().sort_values("age", ascending=False, kind="stable")
    expected = (
        df.groupby("country", dropna=False)
        .agg(oldest=("first_name", "first"), youngest=("first_name", "last"))
        .reset_index()
    )
    assert_frame(out, expected)


def test_aggregate_unknown_column(people: pa.Table) -> None:
    with pytest.raises(TransformError, match=r"unknown group_by column 'nope'.*available"):
        run(people, step("a", "aggregate", group_by="nope", aggregations={"n": ("id", "count")}))


# ----------------------------------------------------------------------------- sort
def test_sort_documented_config() -> None:
    table = pa.table(
        {
            "date": pa.array([datetime.date(2024, 1, d) for d in (3, 1, 3, 2, 1)]),
            "amount": [5.0, 7.0, 9.0, None, 7.0],
            "id": [1, 2, 3, 4, 5],
        }
    )
    out = run(
        table, step("sort_data", "sort", columns=["date", "amount"], ascending=[False, False])
    )
    expected = table.to_pandas().sort_values(
        ["date", "amount"], ascending=[False, False], kind="stable"
    )
    assert_frame(out, expected)


def test_sort_is_stable_with_nulls_last(people: pa.Table) -> None:
    out = run(people, step("s", "sort", columns="country"))
    expected = people.to_pandas().sort_values("country", kind="stable", na_position="last")
    assert_frame(out, expected)
    out = run(people, step("s", "sort", columns="country", ascending=False))
    expected = people.to_pandas().sort_values("country", ascending=False, kind="stable")
    assert_frame(out, expected)


def test_sort_then_map_over_the_sort_key_keeps_the_order(people: pa.Table) -> None:
    out = run(people, step("s", "sort", columns="age"), step("m", "map", mappings={"age": "0"}))
    expected = people.to_pandas().sort_values("age", kind="stable")
    assert out.column("id").to_pylist() == expected["id"].tolist()


# ----------------------------------------------------------------------------- deduplicate
@pytest.mark.parametrize("keep", ["first", "last"])
def test_deduplicate_documented_config(keep: str) -> None:
    table = pa.table(
        {
            "email": ["a@x", "b@x", "a@x", None, "a@x", None],
            "date": ["d1", "d1", "d1", "d2", "d2", "d2"],
            "n": [1, 2, 3, 4, 5, 6],
        }
    )
    out = run(table, step("remove_duplicates", "deduplicate", subset=["email", "date"], keep=keep))
    expected = table.to_pandas().drop_duplicates(subset=["email", "date"], keep=keep)
    assert_frame(out, expected)


def test_deduplicate_all_columns(people: pa.Table) -> None:
    doubled = pa.concat_tables([people, people.slice(2, 3)])
    out = run(doubled, step("d", "deduplicate"))
    assert_frame(out, doubled.to_pandas().drop_duplicates())


# ----------------------------------------------------------------------------- pivot
def test_pivot_documented_config() -> None:
    table = pa.table(
        {
            "customer_id": [1, 1, 2, 3, 2],
            "month": ["2024-02", "2024-01", "2024-01", "2024-03", "2024-03"],
            "sales": [10.0, 20.0, 30.0, 40.0, 50.0],
        }
    )
    out = run(
        table, step("pivot_sales", "pivot", index="customer_id", columns="month", values="sales")
    )
    expected = table.to_pandas().pivot(index="customer_id", columns="month", values="sales")
    expected.columns.name = None
    assert_frame(out, expected.reset_index())


def test_pivot_aggfunc_fill_value_and_string_names() -> None:
    table = pa.table(
        {"k": ["a", "a", "b", "a"], "year": [2023, 2024, 2024, 2024], "v": [1, 2, 3, 4]}
    )
    out = run(
        table,
        step("p", "pivot", index=["k"], columns="year", values="v", aggfunc="sum", fill_value=0),
    )
    assert out.column_names == ["k", "2023", "2024"]
    expected = table.to_pandas().pivot_table(
        index="k", columns="year", values="v", aggfunc="sum", fill_value=0
    )
    expected.columns = [str(c) for c in expected.columns]
    assert_frame(out, expected.reset_index())


def test_pivot_max_columns() -> None:
    table = pa.table({"k": [1, 1, 1], "c": ["x", "y", "z"], "v": [1, 2, 3]})
    with pytest.raises(TransformError, match="more than 2 distinct values"):
        run(table, step("p", "pivot", index="k", columns="c", values="v", max_columns=2))


def test_pivot_after_filter_and_before_map() -> None:
    table = pa.table({"k": [1, 1, 2, 2], "c": ["x", "y", "x", "y"], "v": [1, 2, 3, 4]})
    out = run(
        table,
        step("f", "filter", condition="v > 1"),
        step("p", "pivot", index="k", columns="c", values="v"),
        step("m", "map", mappings={"total": "coalesce(x, 0) + y"}),
    )
    assert out.to_pylist() == [
        {"k": 1, "x": None, "y": 2, "total": 2},
        {"k": 2, "x": 3, "y": 4, "total": 7},
    ]


# ----------------------------------------------------------------------------- union, joins
def test_union_of_sources_by_column_name() -> None:
    a = pa.table({"id": [1, 2], "name": ["a", "b"]})
    b = pa.table({"name": ["c"], "extra": [True], "id": [3]})
    out = run({"a": a, "b": b})
    assert out.to_pylist() == [
        {"id": 1, "name": "a", "extra": None},
        {"id": 2, "name": "b", "extra": None},
        {"id": 3, "name": "c", "extra": True},
    ]
    assert out.schema.field("extra").type == pa.bool_()


def test_union_then_filter_keeps_source_order() -> None:
    a = pa.table({"id": list(range(0, 50))})
    b = pa.table({"id": list(range(50, 100))})
    out = run({"a": a, "b": b}, step("f", "filter", condition="id % 3 == 0"))
    assert out.column("id").to_pylist() == list(range(0, 100, 3))


def test_union_then_sort_is_stable_across_sources() -> None:
    a = pa.table({"k": [1, 0], "src": ["a", "a"]})
    b = pa.table({"k": [1, 0], "src": ["b", "b"]})
    out = run({"a": a, "b": b}, step("s", "sort", columns="k"))
    assert out.to_pylist() == [
        {"k": 0, "src": "a"},
        {"k": 0, "src": "b"},
        {"k": 1, "src": "a"},
        {"k": 1, "src": "b"},
    ]


ORDERS = pa.table(
    {
        "order_id": [10, 11, 12, 13, 14],
        "customer_id": [2, 1, 2, 9, None],
        "amount": [5.0, 6.0, 7.0, 8.0, 9.0],
        "note": ["o1", "o2", "o3", "o4", "o5"],
    }
)
CUSTOMERS = pa.table(
    {
        "customer_id": [1, 2, 3, 2],
        "name": ["Ann", "Bob", "Cid", "Bob2"],
        "note": ["c1", "c2", "c3", "c4"],
    }
)


@pytest.mark.parametrize("how", ["inner", "left", "right", "outer"])
def test_join_each_how(how: str) -> None:
    out = run(
        {"orders": ORDERS, "customers": CUSTOMERS},
        step("j", "join", left="orders", right="customers", on="customer_id", how=how),
    )
    expected = ORDERS.to_pandas().merge(CUSTOMERS.to_pandas(), on="customer_id", how=how)
    if how in ("left", "outer"):  # SQL: null keys never match (pandas matches NaN with NaN)
        assert expected["customer_id"].isna().sum() == 1
    assert_frame(out, expected)
    assert "note_x" in out.column_names and "note_y" in out.column_names


def test_join_suffixes_and_following_steps() -> None:
    out = run(
        {"orders": ORDERS, "customers": CUSTOMERS},
        step("f", "filter", condition="amount > 100"),  # on the union: discarded by the join
        step(
            "j",
            "join",
            left="orders",
            right="customers",
            on=["customer_id"],
            suffixes=["_order", "_customer"],
        ),
        step("m", "map", mappings={"label": 'name + ":" + note_order'}),
        step("s", "sort", columns="amount", ascending=False),
    )
    # pandas merge order (left rows, then matching right rows in their order); stable sort
    assert out.column("label").to_pylist() == ["Bob:o3", "Bob2:o3", "Ann:o2", "Bob:o1", "Bob2:o1"]


def test_join_of_an_earlier_step_and_a_self_join() -> None:
    out = run(
        {"orders": ORDERS, "customers": CUSTOMERS},
        step("j", "join", left="orders", right="customers", on="customer_id"),
        step("big", "filter", condition="amount >= 7"),
        step(
            "again",
            "join",
            left="big",
            right="customers",
            on="customer_id",
            suffixes=["", "_again"],
        ),
    )
    assert out.num_rows == 4
    self_join = run(
        {"customers": CUSTOMERS},
        step("j", "join", left="customers", right="customers", on="customer_id"),
    )
    expected = CUSTOMERS.to_pandas().merge(CUSTOMERS.to_pandas(), on="customer_id")
    assert_frame(self_join, expected)


def test_join_with_one_pass_sources_read_twice() -> None:
    def relation(table: pa.Table, name: str) -> Relation:
        return Relation.from_batches(table.schema, iter(table.to_batches(2)), name)

    out = apply_transformations(
        {"orders": relation(ORDERS, "orders"), "customers": relation(CUSTOMERS, "customers")},
        [
            step("j", "join", left="customers", right="customers", on="customer_id"),
            step("j2", "join", left="j", right="orders", on="customer_id"),
        ],
    ).to_table()
    customers = CUSTOMERS.to_pandas()
    expected = customers.merge(customers, on="customer_id").merge(
        ORDERS.to_pandas(), on="customer_id"
    )
    assert_frame(out, expected)


def test_join_errors() -> None:
    tables = {"orders": ORDERS, "customers": CUSTOMERS}
    with pytest.raises(SpecError, match="unknown source or step 'nope'"):
        run(tables, step("j", "join", left="orders", right="nope", on="customer_id"))
    with pytest.raises(TransformError, match="key 'name' is not a column of 'orders'"):
        run(tables, step("j", "join", left="orders", right="customers", on="name"))


# ----------------------------------------------------------------------------- chains
def test_chain_filter_map_aggregate_sort(people: pa.Table) -> None:
    out = run(
        people,
        step("f", "filter", condition="age >= 18 and not is_test"),
        step("m", "map", mappings={"revenue": "quantity * price"}),
        step(
            "a",
            "aggregate",
            group_by="country",
            aggregations={"revenue": ("revenue", "sum"), "people": ("id", "count")},
        ),
        step("s", "sort", columns=["revenue"], ascending=False),
    )
    df = people.to_pandas()
    df = df[(df["age"] >= 18) & (df["is_test"] == False)].copy()  # noqa: E712
    df["revenue"] = df["quantity"] * df["price"]
    expected = (
        df.groupby("country", dropna=False)
        .agg(revenue=("revenue", "sum"), people=("id", "count"))
        .reset_index()
        .sort_values("revenue", ascending=False, kind="stable")
    )
    assert_frame(out, expected)


def test_no_steps_returns_the_input() -> None:
    relation = Relation.from_table(ORDERS)
    assert apply_transformations({"orders": relation}, []) is relation


def test_result_is_lazy_and_reiterable() -> None:
    opened = []
    table = pa.table({"x": [1, 2, 3]})

    def open_():  # type: ignore[no-untyped-def]
        opened.append(1)
        return iter(table.to_batches())

    result = apply_transformations(
        {"s": Relation(table.schema, open_)}, [step("f", "filter", condition="x > 1")]
    )
    assert opened == []
    assert result.to_table().num_rows == 2
    assert result.to_table().num_rows == 2
    assert len(opened) == 2


def test_source_errors_surface_as_themselves() -> None:
    schema = pa.schema([("x", pa.int64())])

    def broken():  # type: ignore[no-untyped-def]
        yield pa.record_batch({"x": [1]}, schema=schema)
        raise ConnectionResetError("source went away")

    result = apply_transformations(
        {"s": Relation(schema, broken)}, [step("f", "filter", condition="x > 0")]
    )
    with pytest.raises(ConnectionResetError, match="source went away"):
        result.to_table()


def test_reserved_column_names() -> None:
    table = pa.table({"__nexus_ord": [1]})
    with pytest.raises(TransformError, match="reserved"):
        run(table, step("f", "filter", condition="True"))


def test_invalid_memory_limit() -> None:
    with pytest.raises(TransformError, match="memory_limit"):
        run(ORDERS, step("f", "filter", condition="True"), memory_limit="lots")


def test_batch_size_is_respected() -> None:
    table = pa.table({"x": list(range(100))})
    result = apply_transformations(
        {"src": Relation.from_table(table)},
        [step("s", "sort", columns="x", ascending=False)],
        batch_size=30,
    )
    sizes = [b.num_rows for b in result]
    assert max(sizes) <= 30 and sum(sizes) == 100
