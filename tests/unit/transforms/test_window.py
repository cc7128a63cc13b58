"""The window transformation, each function compared with pandas on awkward data: null values,
null partition keys, ties in the order, an all-null partition, empty input, time ranges across
a DST change; and its lineage and spec errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from nexus_dagster.errors import TransformError
from nexus_dagster.spec.loader import collect
from nexus_dagster.spec.models import ETLJob
from nexus_dagster.transforms.column_lineage import column_lineage

from .helpers import run, step

SALES = pa.table(
    {
        "region": ["n", "s", "n", None, "s", "n", "e", "n", None, "s"],
        "day": pa.array([3, 1, 1, 2, 2, 2, 5, 4, 1, 3], pa.int64()),
        "amount": pa.array([10.0, 5.0, None, 7.0, 5.0, 2.5, None, 10.0, 1.0, -4.0]),
        "qty": pa.array([1, 2, 3, 4, None, 6, 7, 8, 9, 10], pa.int64()),
    }
)
"""Region "e" has only a null amount; None is a region too; day ties within "n"/"s"."""


def _window(table: pa.Table, **config) -> pd.DataFrame:
    return run(table, step("w", "window", **config)).to_pandas()


def _sorted(df: pd.DataFrame, order: list[str], ascending: bool | list[bool] = True):
    return df.sort_values(order, ascending=ascending, kind="stable", na_position="last")


def _by_group(df: pd.DataFrame, order: list[str], column: str, fn, ascending=True) -> pd.Series:
    """pandas: sort stably by ``order``, apply ``fn`` per region, back in row order."""
    s = _sorted(df, order, ascending) if order else df
    return s.groupby("region", dropna=False, sort=False)[column].transform(fn).reindex(df.index)


def _same(actual: pd.Series, expected: pd.Series) -> None:
    np.testing.assert_allclose(actual.astype(float).to_numpy(), expected.astype(float).to_numpy(),
                               rtol=1e-12, equal_nan=True)


# ----------------------------------------------------------------------------- shifts, running
def test_lag_and_lead_are_pandas_shift_per_partition_in_window_order() -> None:
    got = _window(SALES, partition_by="region", order_by="day", columns={
        "prev": ["amount", "lag"], "prev2": ["qty", "lag", 2, 0], "next": ["amount", "lead"],
        "row_prev": ["qty", "lag"],
    })
    df = SALES.to_pandas()
    _same(got["prev"], _by_group(df, ["day"], "amount", lambda s: s.shift(1)))
    _same(got["prev2"], _by_group(df, ["day"], "qty", lambda s: s.shift(2, fill_value=0)))
    _same(got["next"], _by_group(df, ["day"], "amount", lambda s: s.shift(-1)))
    assert got["region"].tolist() == df["region"].tolist()  # rows keep their order


def test_lag_without_order_by_follows_row_order() -> None:
    got = _window(SALES, partition_by="region", columns={"prev": ["qty", "lag"]})
    df = SALES.to_pandas()
    _same(got["prev"], df.groupby("region", dropna=False)["qty"].shift(1))


def test_cumulative_functions_skip_nulls_like_pandas() -> None:
    got = _window(SALES, partition_by="region", order_by="day", columns={
        "total": ["amount", "cumsum"], "low": ["amount", "cummin"], "high": ["qty", "cummax"],
    })
    df = SALES.to_pandas()
    _same(got["total"], _by_group(df, ["day"], "amount", "cumsum"))
    _same(got["low"], _by_group(df, ["day"], "amount", "cummin"))
    _same(got["high"], _by_group(df, ["day"], "qty", "cummax"))


def test_cumsum_of_integers_stays_integer() -> None:
    out = run(SALES, step("w", "window", columns={"running": ["day", "cumsum"]}))
    assert out.schema.field("running").type == pa.int64()
    assert out.column("running").to_pylist() == list(np.cumsum(SALES.column("day").to_pylist()))


@pytest.mark.parametrize("function", ["sum", "mean", "min", "max"])
def test_rolling_rows_match_pandas_rolling(function: str) -> None:
    got = _window(SALES, partition_by="region", order_by="day", columns={
        "r3": ["amount", f"rolling_{function}", 3], "r2m1": ["amount", f"rolling_{function}", 2, 1],
    })
    df = SALES.to_pandas()
    _same(got["r3"], _by_group(df, ["day"], "amount",
                               lambda s: getattr(s.rolling(3), function)()))
    _same(got["r2m1"], _by_group(df, ["day"], "amount",
                                 lambda s: getattr(s.rolling(2, min_periods=1), function)()))


def test_rolling_time_range_matches_pandas_across_a_dst_change() -> None:
    stamps = pd.to_datetime([
        "2024-03-29 12:00", "2024-03-30 11:00", "2024-03-30 13:00", "2024-03-31 12:00",
        "2024-03-31 13:30", "2024-04-01 12:30", "2024-04-08 00:00",
    ]).tz_localize("Europe/Berlin")
    table = pa.table({
        "ts": pa.array(stamps, pa.timestamp("us", tz="Europe/Berlin")),
        "x": [1.0, 2.0, None, 4.0, 8.0, 16.0, 32.0],
    })
    got = _window(table, order_by="ts", columns={
        "d1": ["x", "rolling_sum", "1d"], "h25": ["x", "rolling_mean", "25h"],
        "w1": ["x", "rolling_max", "1w"], "d1m2": ["x", "rolling_sum", "1d", 2],
    })
    df = table.to_pandas()
    roll = df.rolling
    _same(got["d1"], roll("1D", on="ts")["x"].sum())
    _same(got["h25"], roll("25h", on="ts")["x"].mean())
    _same(got["w1"], roll("7D", on="ts")["x"].max())
    _same(got["d1m2"], roll("1D", on="ts", min_periods=2)["x"].sum())


def test_rolling_time_range_over_dates_per_partition() -> None:
    table = pa.table({
        "region": ["a", "a", "b", "a", "b"],
        "d": pa.array([pd.Timestamp(f"2024-01-{n:02d}").date() for n in (1, 3, 3, 9, 10)]),
        "x": [1, 2, 3, 4, 5],
    })
    got = _window(table, partition_by="region", order_by="d",
                  columns={"week": ["x", "rolling_sum", "7d"]})
    assert got["week"].tolist() == [1, 3, 3, 6, 5]  # (t - 7d, t]: Jan 3 is not in Jan 10's


# ----------------------------------------------------------------------------- ranking
def test_ranking_functions_match_pandas_rank_methods() -> None:
    got = _window(SALES, partition_by="region", order_by="day", ascending=False, columns={
        "rn": ["row_number"], "rk": ["rank"], "dense": ["dense_rank"], "pct": ["percent_rank"],
    })
    df = SALES.to_pandas()
    _same(got["rn"], _by_group(df, ["day"], "day", lambda s: np.arange(1, len(s) + 1),
                               ascending=False))
    groups = df.groupby("region", dropna=False)["day"]
    _same(got["rk"], groups.rank(method="min", ascending=False))
    _same(got["dense"], groups.rank(method="dense", ascending=False))
    size = groups.transform("size")
    expected_pct = ((groups.rank(method="min", ascending=False) - 1) / (size - 1)).fillna(0)
    _same(got["pct"], expected_pct)


def test_ntile_splits_each_partition_into_near_equal_buckets() -> None:
    table = pa.table({"g": ["a"] * 7 + ["b"] * 2, "v": [7, 1, 6, 2, 5, 3, 4, 9, 8]})
    got = _window(table, partition_by="g", order_by="v", columns={"q": ["ntile", 3]})
    # SQL ntile: the first (rows % n) buckets get one row more
    assert got.sort_values(["g", "v"])["q"].tolist() == [1, 1, 1, 2, 2, 3, 3, 1, 2]


def test_null_order_values_rank_last() -> None:
    table = pa.table({"v": pa.array([3.0, None, 1.0])})
    got = _window(table, order_by="v", columns={"rk": ["rank"]})
    assert got["rk"].tolist() == [2, 3, 1]


def test_top_n_per_group_is_a_window_and_a_filter() -> None:
    out = run(
        SALES,
        step("w", "window", partition_by="region", order_by=["qty"], ascending=False,
             columns={"pos": ["row_number"]}),
        step("top", "filter", condition="pos <= 2"),
    ).to_pandas()
    df = SALES.to_pandas()
    expected = _sorted(df, ["qty"], False).groupby("region", dropna=False).head(2).sort_index()
    assert out["qty"].tolist() == expected["qty"].tolist()


# ----------------------------------------------------------------------------- first/last, whole
def test_first_and_last_are_the_first_and_last_non_null_in_window_order() -> None:
    got = _window(SALES, partition_by="region", order_by="day", columns={
        "first": ["amount", "first"], "last": ["amount", "last"],
    })
    df = SALES.to_pandas()
    _same(got["first"], _by_group(df, ["day"], "amount", "first"))
    _same(got["last"], _by_group(df, ["day"], "amount", "last"))


@pytest.mark.parametrize("function", ["sum", "mean", "std", "var", "min", "max", "count",
                                      "median"])
def test_whole_partition_statistics_match_pandas_transform(function: str) -> None:
    got = _window(SALES, partition_by="region", order_by="day",  # order_by must not matter
                  columns={"stat": ["amount", function]})
    expected = SALES.to_pandas().groupby("region", dropna=False)["amount"].transform(function)
    _same(got["stat"], expected)


def test_quantile_share_of_total_and_z_score() -> None:
    out = run(
        SALES,
        step("w", "window", partition_by="region", columns={
            "p90": ["amount", "quantile", 0.9], "total": ["amount", "sum"],
            "mu": ["amount", "mean"], "sigma": ["amount", "std"],
        }),
        step("m", "map", mappings={"share": "amount / total", "z": "(amount - mu) / sigma"}),
    ).to_pandas()
    df = SALES.to_pandas()
    groups = df.groupby("region", dropna=False)["amount"]
    _same(out["p90"], groups.transform(lambda s: s.quantile(0.9)))
    _same(out["share"], df["amount"] / groups.transform("sum"))
    _same(out["z"], (df["amount"] - groups.transform("mean")) / groups.transform("std"))


def test_whole_table_window_without_partition() -> None:
    got = _window(SALES, columns={"n": ["qty", "count"], "top": ["qty", "max"]})
    assert set(got["n"]) == {9} and set(got["top"]) == {10}


def test_empty_input_gives_empty_output_with_the_new_columns() -> None:
    out = run(SALES.slice(0, 0), step("w", "window", partition_by="region", order_by="day",
                                      columns={"rk": ["rank"], "t": ["amount", "cumsum"]}))
    assert out.num_rows == 0 and out.column_names[-2:] == ["rk", "t"]


def test_an_output_may_replace_an_input_column() -> None:
    got = _window(SALES, columns={"qty": ["qty", "cumsum"]})
    assert got.columns.tolist() == SALES.column_names
    _same(got["qty"], SALES.to_pandas()["qty"].cumsum())


# ----------------------------------------------------------------------------- errors, lineage
def test_a_time_range_over_a_number_column_is_a_transform_error() -> None:
    with pytest.raises(TransformError, match="'day', which must be a date or timestamp"):
        run(SALES, step("w", "window", order_by="day", columns={"r": ["qty", "rolling_sum",
                                                                         "7d"]}))


def test_an_unknown_partition_column_names_the_step() -> None:
    with pytest.raises(TransformError, match="'w' \\(window\\): unknown partition_by column 'x'"):
        run(SALES, step("w", "window", partition_by="x", columns={"t": ["qty", "sum"]}))


def _spec(tmp_path: Path, columns: str, extra: str = "") -> list[str]:
    folder = tmp_path / "job_specs"
    folder.mkdir()
    (folder / "job.yaml").write_text(textwrap.dedent(f"""\
        name: windows
        sources:
          - {{name: sales, source_type: file, file_path: sales.csv}}
        transformations:
          - name: w
            transformation_type: window
            config: {{{extra}columns: {columns}}}
        targets:
          - {{name: out, target_type: file, file_path: out.csv}}
        """))
    _, problems = collect([folder])
    return [str(p) for p in problems]


@pytest.mark.parametrize(
    ("columns", "extra", "message"),
    [
        ("{t: [amount, cumsumm]}", "", "'t' uses unknown window function 'cumsumm'; known: lag"),
        ("{t: [amount, lag, 1, 0, 5]}", "", "'t': lag takes 0 to 2 argument(s)"),
        ("{t: [amount, rolling_mean]}", "", "rolling_mean takes 1 to 2 argument(s)"),
        ("{t: [amount, rolling_mean, 7x]}", "", "a number of rows >= 1 or a time range"),
        ("{t: [amount, rolling_sum, 7d]}", "", "give exactly one order_by column"),
        ("{t: [rank]}", "", "rank ranks rows by order_by: add order_by"),
        ("{t: [amount, rank]}", "order_by: [day], ", "takes no column: write [rank]"),
        ("{t: [ntile, 0]}", "order_by: [day], ", "ntile needs a number of buckets >= 1"),
        ("{t: [amount, quantile, 2]}", "", "quantile needs q between 0 and 1"),
        ("{t: [amount, sum]}", "order_by: [a, b], ascending: [true], ",
         "ascending has 1 flags for 2 order_by columns"),
    ],
)
def test_window_spec_errors_name_file_line_and_field(tmp_path, columns, extra, message):
    problems = _spec(tmp_path, columns, extra)
    assert len(problems) == 1, problems
    assert "job.yaml:" in problems[0] and "transformations[0].config" in problems[0]
    assert message in problems[0]


def test_window_lineage_adds_partition_and_order_columns() -> None:
    steps = ETLJob.model_validate({
        "name": "j",
        "sources": [{"name": "s", "source_type": "file", "file_path": "s.csv"}],
        "transformations": [{"name": "w", "transformation_type": "window", "config": {
            "partition_by": ["region"], "order_by": ["day"],
            "columns": {"total": ["amount", "cumsum"], "rk": ["rank"]}}}],
        "targets": [{"name": "o", "target_type": "file", "file_path": "o.csv"}],
    }).ordered_transformations()
    lineage = column_lineage(steps, {"s": ["region", "day", "amount", "note"]},
                             ["note", "total", "rk"])
    assert lineage == {
        "note": {("s", "note")},
        "total": {("s", "amount"), ("s", "region"), ("s", "day")},
        "rk": {("s", "region"), ("s", "day")},
    }
