"""Several outputs of one chain (targets with different ``input``): each output equals what
pandas computes, each source is read once and each step computes once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from nexus_dagster.errors import SpecError
from nexus_dagster.relation import Relation
from nexus_dagster.spec.models import Transformation
from nexus_dagster.transforms.chain import transform_outputs
from nexus_dagster.transforms.stages import plan_stages

from .helpers import frame

ORDERS = pa.table({
    "order_id": [1, 2, 3, 4, 5, 6],
    "customer_id": [7, 8, 7, 9, 8, 7],
    "amount": [10.0, 20.0, 30.0, 5.0, 1.0, 2.0],
})
CUSTOMERS = pa.table({"c_id": [7, 8, 9], "name": ["Ann", "Bob", "Cid"]})


def step(name: str, kind: str, input: str | None = None, code: str | None = None,
         **config: object) -> Transformation:
    return Transformation(name=name, transformation_type=kind, config=config, input=input,
                          custom_code=code)


class OnePass:
    """A source that can be opened once and counts the rows it hands out."""

    def __init__(self, table: pa.Table, name: str):
        self.table, self.name, self.rows, self.opens = table, name, 0, 0

    def relation(self) -> Relation:
        def open_() -> Iterator[pa.RecordBatch]:
            self.opens += 1
            assert self.opens == 1, f"source {self.name} opened twice"
            for batch in self.table.to_batches(max_chunksize=2):
                self.rows += batch.num_rows
                yield batch

        return Relation(self.table.schema, open_, self.name)


def assert_frame(actual: Relation, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(frame(actual.to_table()), expected.reset_index(drop=True),
                                  check_dtype=False)


TOTALS = step("totals", "aggregate", group_by="customer_id",
              aggregations={"total": ["amount", "sum"], "orders": ["order_id", "count"]})


def pandas_totals(orders: pd.DataFrame) -> pd.DataFrame:
    return orders.groupby("customer_id").agg(total=("amount", "sum"),
                                             orders=("order_id", "count")).reset_index()


def test_raw_rows_and_an_aggregate_read_the_source_once(tmp_path: Path) -> None:
    orders = OnePass(ORDERS, "orders")
    out = transform_outputs({"orders": orders.relation()}, [TOTALS], ["orders", None], tmp_path)
    assert_frame(out[None], pandas_totals(ORDERS.to_pandas()))
    assert_frame(out["orders"], ORDERS.to_pandas())
    assert_frame(out["orders"], ORDERS.to_pandas())  # re-readable: a file, not the source
    assert (orders.opens, orders.rows) == (1, ORDERS.num_rows)


def test_a_shared_step_computes_once_for_a_target_and_a_later_join(tmp_path: Path) -> None:
    orders, customers = OnePass(ORDERS, "orders"), OnePass(CUSTOMERS, "customers")
    steps = [
        step("big", "filter", input="orders", condition="amount >= 5"),
        step("totals", "aggregate", group_by="customer_id",
             aggregations={"total": ["amount", "sum"], "orders": ["order_id", "count"]}),
        step("named", "join", left="totals", right="customers", left_on="customer_id",
             right_on="c_id"),
    ]
    out = transform_outputs({"orders": orders.relation(), "customers": customers.relation()},
                            steps, ["big", "totals", None], tmp_path)
    df = ORDERS.to_pandas()
    big = df[df["amount"] >= 5]
    assert_frame(out["big"], big)
    assert_frame(out["totals"], pandas_totals(big))
    assert_frame(out[None], pandas_totals(big).merge(CUSTOMERS.to_pandas(),
                                                     left_on="customer_id", right_on="c_id"))
    # each source handed out its rows once, and the stage's statement scans each source's
    # one-shot stream once (no copy is made): computing 'big' again would find it drained
    assert (orders.rows, customers.rows) == (ORDERS.num_rows, CUSTOMERS.num_rows)
    (stage,) = plan_stages(["orders", "customers"], steps,
                           {"big": tmp_path / "b", "totals": tmp_path / "t"})
    assert stage.scans == Counter({"orders": 1, "customers": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_big.arrow",
                                                          "step_totals.arrow"]


def test_steps_after_the_last_output_are_not_run(tmp_path: Path) -> None:
    steps = [TOTALS, step("broken", "filter", condition="no_such_column > 1")]
    out = transform_outputs({"orders": OnePass(ORDERS, "orders").relation()}, steps,
                            ["totals"], tmp_path)
    assert_frame(out["totals"], pandas_totals(ORDERS.to_pandas()))


def test_a_custom_code_result_feeds_a_target_and_the_next_step(tmp_path: Path) -> None:
    steps = [
        step("tagged", "custom_code", code="df['tag'] = 'x' + df['order_id'].astype(str)"),
        step("few", "filter", condition="amount > 10"),
    ]
    out = transform_outputs({"orders": OnePass(ORDERS, "orders").relation()}, steps,
                            ["tagged", None], tmp_path)
    df = ORDERS.to_pandas()
    df["tag"] = "x" + df["order_id"].astype(str)
    assert_frame(out["tagged"], df)
    assert_frame(out[None], df[df["amount"] > 10])


def test_an_unknown_output_names_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no source or step named 'nope'; known: orders, totals"):
        transform_outputs({"orders": OnePass(ORDERS, "orders").relation()}, [TOTALS],
                          ["nope"], tmp_path)
