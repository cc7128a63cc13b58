"""The TPC-H example specs (examples/tpch/jobs: Q1 and Q3) run through Dagster on data that
tpchgen-cli generates at scale factor 0.01, and give exactly DuckDB's result of the same query
over the same files (decimals compared as decimals)."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from tests.benchmarks.tpch import EXAMPLES, QUERIES, generate, job_specs, parquet_rows, reference
from tests.integration.use_cases.helpers import run


@pytest.fixture(scope="module")
def tpch_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of examples/tpch with tpchgen-cli's CSV files (scale factor 0.01) in data/."""
    root = tmp_path_factory.mktemp("tpch") / "tpch"
    shutil.copytree(EXAMPLES, root, ignore=shutil.ignore_patterns("data", "output"))
    generate(root / "data", 0.01, "csv", ("customer", "orders", "lineitem"))
    return root


@pytest.mark.parametrize("query", sorted(QUERIES))
def test_example_spec_over_csv_equals_duckdb_query(tpch_csv: Path, query: str) -> None:
    run(tpch_csv / "jobs", query)
    ours = parquet_rows(tpch_csv / "output" / f"{query}.parquet")
    expected = reference(query, tpch_csv / "data", "csv")
    assert ours == expected
    # money stays exact: decimals, never floats
    assert any(isinstance(v, Decimal) for v in ours[0])


@pytest.mark.parametrize("query", sorted(QUERIES))
def test_spec_over_tpchgen_parquet_equals_duckdb_query(tmp_path: Path, query: str) -> None:
    data = generate(tmp_path / "data", 0.01, "parquet", QUERIES[query])
    specs = job_specs(tmp_path / "jobs", "parquet", data)
    run(specs, query)
    ours = parquet_rows(tmp_path / "output" / f"{query}.parquet")
    assert ours == reference(query, data, "parquet")


def test_q1_first_row_is_the_pinned_scale_factor_001_answer(tpch_csv: Path) -> None:
    """Q1's A/F row at scale factor 0.01 is the pinned answer (tpchgen-cli reproduces dbgen's
    data), so a change in the generator or in DuckDB cannot move both sides unnoticed."""
    run(tpch_csv / "jobs", "tpch_q1")
    first = parquet_rows(tpch_csv / "output" / "tpch_q1.parquet")[0]
    assert first[:4] == ("A", "F", Decimal("380456.00"), Decimal("532348211.65"))
    assert first[-1] == 14876


def test_q1_over_csv_without_column_types_equals_duckdb_query(tpch_csv: Path,
                                                               tmp_path: Path) -> None:
    """Fixed-decimal inference reads the money columns (written with two decimals) as exact
    decimals without ``column_types``: the result equals DuckDB's over decimal(15,2) columns."""
    spec = yaml.safe_load((tpch_csv / "jobs" / "tpch_q1.yaml").read_text())
    spec["sources"][0].pop("options")
    spec["sources"][0]["file_path"] = str(tpch_csv / "data" / "lineitem.csv")
    spec["targets"][0]["file_path"] = str(tmp_path / "q1.parquet")
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "tpch_q1.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    run(tmp_path / "jobs", "tpch_q1")
    ours = parquet_rows(tmp_path / "q1.parquet")
    assert ours == reference("tpch_q1", tpch_csv / "data", "csv")
    assert isinstance(ours[0][3], Decimal)  # sum_base_price
