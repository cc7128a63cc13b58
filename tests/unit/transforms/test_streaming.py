"""Data in flight: filter/map stream batch by batch; blocking steps spill to disk."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pyarrow as pa
import pytest

from nexus_dagster.relation import Relation
from nexus_dagster.transforms.chain import apply_transformations

from .helpers import step

SCHEMA = pa.schema([("id", pa.int64()), ("amount", pa.float64()), ("status", pa.string())])
STATUSES = pa.array(["paid", "open", "void", "paid"])


def generated(rows: int, batch: int, consumed: list[int]) -> Relation:
    """A one-pass source producing ``rows`` rows, counting the batches handed out."""

    def batches():  # type: ignore[no-untyped-def]
        for start in range(0, rows, batch):
            n = min(batch, rows - start)
            ids = np.arange(start, start + n, dtype=np.int64)
            consumed.append(n)
            yield pa.record_batch(
                [pa.array(ids), pa.array(ids % 1000 / 10.0), STATUSES.take(ids % 4)],
                schema=SCHEMA,
            )

    return Relation(SCHEMA, batches, "generated")


def test_filter_map_stream_two_million_rows() -> None:
    rows, batch = 2_000_000, 50_000
    consumed: list[int] = []
    result = apply_transformations(
        {"orders": generated(rows, batch, consumed)},
        [
            step("paid", "filter", condition='status == "paid" and amount > 0'),
            step(
                "revenue",
                "map",
                mappings={"amount_x2": "amount * 2", "label": 'status + ":" + str(id)'},
            ),
        ],
        batch_size=batch,
    )
    assert consumed == []  # lazy until read
    baseline = pa.total_allocated_bytes()
    arrow_peak = 0
    tracemalloc.start()
    try:
        total = 0
        read_at_first_output = None
        peak_batch = 0
        for out in result:
            if read_at_first_output is None:
                read_at_first_output = sum(consumed)
            total += out.num_rows
            peak_batch = max(peak_batch, out.num_rows)
            arrow_peak = max(arrow_peak, pa.total_allocated_bytes() - baseline)
            del out
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    expected = sum(1 for i in range(rows) if i % 4 in (0, 3) and i % 1000 != 0)
    assert total == expected
    assert peak_batch <= batch
    # the first output batch came long before the source was exhausted
    assert read_at_first_output is not None and read_at_first_output < rows / 2
    # Arrow buffers alive at any time and Python allocations stay far below the data size
    # (the whole input is ~46 MB of Arrow data)
    assert arrow_peak < 10 * 2**20
    assert peak < 20 * 2**20


def test_order_is_kept_without_sorting() -> None:
    consumed: list[int] = []
    result = apply_transformations(
        {"orders": generated(300_000, 10_000, consumed)},
        [step("f", "filter", condition="id % 7 == 0")],
        batch_size=10_000,
    )
    ids = np.concatenate([b.column("id").to_numpy() for b in result])
    assert (np.diff(ids) > 0).all()


@pytest.mark.slow
def test_aggregate_spills_past_memory_limit(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rows = 3_000_000
    schema = pa.schema([("key", pa.string()), ("v", pa.float64()), ("n", pa.int64())])

    def batches():  # type: ignore[no-untyped-def]
        for start in range(0, rows, 100_000):
            ids = np.arange(start, start + 100_000) % (rows // 2)
            keys = pa.compute.binary_join_element_wise(
                "customer-", pa.array(ids).cast(pa.string()), ""
            )
            yield pa.record_batch([keys, pa.array(ids / 3.0), pa.array(ids)], schema=schema)

    result = apply_transformations(
        {"big": Relation(schema, batches)},
        [
            step(
                "a",
                "aggregate",
                group_by="key",
                aggregations={
                    "total": ("v", "sum"),
                    "first": ("n", "first"),
                    "distinct": ("n", "nunique"),
                    "rows": ("n", "size"),
                },
            ),
            step("s", "sort", columns="total", ascending=False),
        ],
        memory_limit="64MB",
        temp_directory=str(tmp_path),
    )
    groups = 0
    previous = float("inf")
    for batch in result:
        groups += batch.num_rows
        totals = batch.column("total").to_numpy()
        assert (np.diff(totals) <= 0).all() and totals[0] <= previous
        previous = totals[-1]
        assert set(batch.column("rows").to_pylist()) == {2}
    assert groups == rows // 2
    assert list(tmp_path.iterdir()) == []  # the spill folder is removed afterwards
