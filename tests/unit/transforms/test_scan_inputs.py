"""A relation with a DuckDB scan (``Relation.scan``): a SQL stage reads the scan instead of the
batches when DuckDB types it exactly as the Arrow stream, and the batches otherwise."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from nexus_dagster.relation import Relation
from nexus_dagster.spec.models import Transformation
from nexus_dagster.transforms.chain import apply_transformations


class _RangeScan:
    """Rows 0, 1, 2 of column ``n`` as ``sql_type`` (the batches hold other values, so a test
    sees which of the two the stage read)."""

    numbers_in_read_order = False  # the ordinal is the row's value
    needs_profile = False

    def __init__(self, sql_type: str):
        self.sql_type = sql_type
        self.counted: list[Any] = []

    def select_sql(self, ordinal: str | None = None, offset: int = 0) -> str:
        extra = f", CAST({offset} + i AS BIGINT) AS {ordinal}" if ordinal else ""
        return f"SELECT CAST(i AS {self.sql_type}) AS n{extra} FROM range(3) AS t(i)"

    def scanned(self, con: Any) -> None:
        self.counted.append(con)

    def read_error(self, exc: Exception) -> Exception | None:
        return None


def _chain(scan: _RangeScan, step: Transformation) -> list[Any]:
    base = Relation.from_table(pa.table({"n": pa.array([10, 20, 30], pa.int64())}), "src")
    relation = Relation(base.schema, base.open, base.name, base.stats, scan)
    return apply_transformations({"src": relation}, [step]).to_table().column("n").to_pylist()


FILTER = Transformation(name="some", transformation_type="filter", config={"condition": "n >= 1"})
SORT = Transformation(name="desc", transformation_type="sort",
                      config={"columns": ["n"], "ascending": [False]})


def test_stage_reads_a_scan_typed_like_the_arrow_stream_and_reports_it_scanned() -> None:
    scan = _RangeScan("BIGINT")
    assert _chain(scan, FILTER) == [1, 2]
    assert len(scan.counted) == 1
    ordered = _RangeScan("BIGINT")  # an ordered stage: the scan numbers its rows
    assert _chain(ordered, SORT) == [2, 1, 0]
    assert len(ordered.counted) == 1


def test_stage_reads_the_batches_when_duckdb_types_the_scan_differently() -> None:
    scan = _RangeScan("DOUBLE")
    assert _chain(scan, FILTER) == [10, 20, 30]
    assert scan.counted == []
