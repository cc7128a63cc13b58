"""Use cases of the Nexus docs that needed pandas custom code for window statistics (moving
averages, RFM scores, z-scores and IQR outliers, normalization and shares of total), written as
YAML specs with `window` steps and run end to end from PostgreSQL into PostgreSQL and Parquet."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests.integration.use_cases.helpers import execute, insert, project, rows, run


def test_uc61_time_series_daily_sales_with_moving_averages(tmp_path: Path, pg_url: str) -> None:
    """Use case 61, "Time Series Analysis": orders resampled to daily sales and order counts,
    with a 3-day moving average over rows, a 7-day moving average over time (a day without
    orders is a gap, not a row) and a running total; the docs used pandas resample/rolling."""
    orders = [
        (1, "2024-03-01 09:00", "10.00"), (2, "2024-03-01 17:30", "5.50"),
        (3, "2024-03-02 08:00", "20.00"), (4, "2024-03-04 12:00", "7.25"),
        (5, "2024-03-05 23:59", "1.00"), (6, "2024-03-05 00:00", "3.00"),
        (7, "2024-03-09 10:00", "40.00"), (8, "2024-03-12 10:00", "2.00"),
    ]
    execute(pg_url, "create table orders (order_id int, order_ts timestamp, amount numeric(10,2))")
    insert(pg_url, "orders", orders)
    folder = project(tmp_path, """\
        name: uc61_daily_sales
        sources:
          - {name: orders, source_type: database, connection: shop, table: orders}
        transformations:
          - name: by_day
            transformation_type: map
            config: {mappings: {day: 'date_trunc("day", order_ts)'}}
          - name: daily
            transformation_type: aggregate
            config: {group_by: [day],
                     aggregations: {sales: [amount, sum], orders: [order_id, count]}}
          - name: trends
            transformation_type: window
            config:
              order_by: [day]
              columns:
                sales_ma3: [sales, rolling_mean, 3]
                sales_ma7d: [sales, rolling_mean, 7d]
                running: [sales, cumsum]
        targets:
          - {name: daily_sales, target_type: database, connection: shop, table: daily_sales,
             write_mode: overwrite}
        """, shop=pg_url)
    run(folder, "uc61_daily_sales")

    df = pd.DataFrame(orders, columns=["order_id", "ts", "amount"])
    df["day"] = pd.to_datetime(df["ts"]).dt.floor("D")
    df["amount"] = df["amount"].map(Decimal)
    daily = df.groupby("day").agg(sales=("amount", "sum"), orders=("order_id", "count"))
    as_float = daily["sales"].astype(float)
    ma3 = as_float.rolling(3).mean()
    ma7d = as_float.rolling("7D").mean()
    got = rows(pg_url, "select day, sales, orders, sales_ma3, sales_ma7d, running "
                       "from daily_sales order by day")
    assert [(r[0], r[1], r[2]) for r in got] == [
        (day.to_pydatetime(), sales, count)
        for day, sales, count in zip(daily.index, daily["sales"], daily["orders"], strict=True)
    ]
    assert [r[3] for r in got] == pytest.approx(
        [None if np.isnan(v) else v for v in ma3], nan_ok=True)
    assert [r[4] for r in got] == pytest.approx(list(ma7d))
    assert [r[5] for r in got] == list(daily["sales"].cumsum())


def test_uc62_rfm_segmentation(tmp_path: Path, pg_url: str) -> None:
    """Use case 62, "Customer Segmentation (RFM Analysis)": recency, frequency and monetary
    value per customer, 1-5 scores by quintile (ntile), the combined score and the segment
    rules; the docs used groupby + qcut + apply in custom code."""
    customers = range(1, 11)
    # customer c: last order (c * 3) days before the analysis date, c orders of c * 10 + c
    order_rows = []
    order_id = 0
    for c in customers:
        for k in range(c if c != 4 else 11):  # customer 4 orders most often
            order_id += 1
            day = dt.date(2024, 7, 1) - dt.timedelta(days=c * 3 + k)
            order_rows.append((c, order_id, day, Decimal(c * 10 + (7 if c == 9 else 0))))
    execute(pg_url, "create table orders (customer_id int, order_id int, order_date date, "
            "amount numeric(10,2))")
    insert(pg_url, "orders", order_rows)
    folder = project(tmp_path, """\
        name: uc62_rfm
        sources:
          - {name: orders, source_type: database, connection: shop, table: orders}
        transformations:
          - name: per_customer
            transformation_type: aggregate
            config:
              group_by: [customer_id]
              aggregations: {last_order: [order_date, max], frequency: [order_id, count],
                             monetary: [amount, sum]}
          - name: recency
            transformation_type: map
            config: {mappings: {recency: 'date_diff("day", last_order, to_date("2024-07-01"))'}}
          - {name: r, transformation_type: window,
             config: {order_by: [recency], ascending: false, columns: {r_score: [ntile, 5]}}}
          - {name: f, transformation_type: window,
             config: {order_by: [frequency], columns: {f_score: [ntile, 5]}}}
          - {name: m, transformation_type: window,
             config: {order_by: [monetary], columns: {m_score: [ntile, 5]}}}
          - name: segment
            transformation_type: map
            config:
              mappings:
                rfm_score: 'str(r_score) + str(f_score) + str(m_score)'
                segment: >-
                  case(r_score >= 4 and f_score >= 4 and m_score >= 4, "Champions",
                       r_score >= 3 and f_score >= 3, "Loyal Customers",
                       r_score >= 4, "Potential Loyalists", f_score >= 4, "At Risk", "Lost")
        targets:
          - {name: rfm, target_type: database, connection: shop, table: rfm,
             write_mode: overwrite}
        """, shop=pg_url)
    run(folder, "uc62_rfm")

    df = pd.DataFrame(order_rows, columns=["customer_id", "order_id", "order_date", "amount"])
    rfm = df.groupby("customer_id").agg(last_order=("order_date", "max"),
                                        frequency=("order_id", "count"),
                                        monetary=("amount", "sum"))
    rfm["recency"] = [(dt.date(2024, 7, 1) - d).days for d in rfm["last_order"]]

    def quintile(values: pd.Series, ascending: bool) -> pd.Series:
        position = values.rank(method="first", ascending=ascending) - 1  # no ties in this data
        return (position // 2 + 1).astype(int)

    rfm["r"] = quintile(rfm["recency"], ascending=False)
    rfm["f"] = quintile(rfm["frequency"], ascending=True)
    rfm["m"] = quintile(rfm["monetary"], ascending=True)

    def segment(r: int, f: int, m: int) -> str:
        if r >= 4 and f >= 4 and m >= 4:
            return "Champions"
        if r >= 3 and f >= 3:
            return "Loyal Customers"
        if r >= 4:
            return "Potential Loyalists"
        return "At Risk" if f >= 4 else "Lost"

    expected = [
        (c, int(row.recency), int(row.frequency), row.monetary, f"{row.r}{row.f}{row.m}",
         segment(row.r, row.f, row.m))
        for c, row in rfm.iterrows()
    ]
    assert rows(pg_url, "select customer_id, recency, frequency, monetary, rfm_score, segment "
                        "from rfm order by customer_id") == expected


def test_uc63_anomaly_detection_z_score_and_iqr(tmp_path: Path, pg_url: str) -> None:
    """Use case 63, "Anomaly Detection": per-sensor z-scores (|z| > 2) and IQR outliers
    (outside [Q1 - 1.5 IQR, Q3 + 1.5 IQR]) written to Parquet; the docs used scipy zscore and
    pandas quantile in custom code."""
    readings = [("a", i, v) for i, v in enumerate([10, 11, 9, 10, 12, 10, 11, 55, 10, 9])] + [
        ("b", i, v) for i, v in enumerate([100, 98, 101, 99, None, 97, 160, 100])]
    execute(pg_url, "create table readings (sensor text, seq int, value double precision)")
    insert(pg_url, "readings", readings)
    out = tmp_path / "anomalies.parquet"
    folder = project(tmp_path, f"""\
        name: uc63_anomalies
        sources:
          - {{name: readings, source_type: database, connection: plant,
             query: "select * from readings order by sensor, seq"}}
        transformations:
          - name: stats
            transformation_type: window
            config:
              partition_by: [sensor]
              columns: {{mu: [value, mean], sigma: [value, std], q1: [value, quantile, 0.25],
                         q3: [value, quantile, 0.75]}}
          - name: flags
            transformation_type: map
            config:
              mappings:
                z: (value - mu) / sigma
                is_anomaly: abs(z) > 2
                is_outlier: value < q1 - 1.5 * (q3 - q1) or value > q3 + 1.5 * (q3 - q1)
        targets:
          - {{name: out, target_type: file, file_path: '{out}', file_format: parquet,
             write_mode: overwrite}}
        """, plant=pg_url)
    run(folder, "uc63_anomalies")

    got = pq.read_table(out).to_pandas()
    df = pd.DataFrame(readings, columns=["sensor", "seq", "value"]).astype({"value": float})
    groups = df.groupby("sensor")["value"]
    z = (df["value"] - groups.transform("mean")) / groups.transform("std")
    q1, q3 = groups.transform(lambda s: s.quantile(0.25)), groups.transform(
        lambda s: s.quantile(0.75))
    iqr = q3 - q1
    np.testing.assert_allclose(got["z"], z, rtol=1e-12)
    assert got["is_anomaly"].tolist() == (z.abs() > 2).tolist()
    assert got["is_outlier"].tolist() == (
        (df["value"] < q1 - 1.5 * iqr) | (df["value"] > q3 + 1.5 * iqr)).tolist()
    assert got.loc[got["is_anomaly"], "seq"].tolist() == [7, 6]


def test_uc67_normalization_standardization_and_shares(tmp_path: Path, pg_url: str) -> None:
    """Use case 67, "Data normalization and standardization": min-max scaling and z-scores
    within each category, each product's share of its category's revenue and a revenue
    quartile (use case 72, binning); formerly custom code."""
    products = [(1, "tools", 10.0, 5), (2, "tools", 30.0, 1), (3, "tools", 20.0, 2),
                (4, "toys", 7.5, 4), (5, "toys", 7.5, 8), (6, "garden", 99.0, 1),
                (7, "toys", 15.0, 1), (8, "tools", 40.0, 3)]
    execute(pg_url, "create table products (id int, category text, price double precision, "
            "units int)")
    insert(pg_url, "products", products)
    folder = project(tmp_path, """\
        name: uc67_normalize
        sources:
          - {name: products, source_type: database, connection: shop, table: products}
        transformations:
          - {name: revenue, transformation_type: map, config: {mappings: {revenue: price * units}}}
          - name: stats
            transformation_type: window
            config:
              partition_by: [category]
              columns: {lo: [price, min], hi: [price, max], mu: [price, mean],
                        sigma: [price, std], category_revenue: [revenue, sum]}
          - {name: quartiles, transformation_type: window,
             config: {order_by: [revenue], columns: {revenue_quartile: [ntile, 4]}}}
          - name: scaled
            transformation_type: map
            config:
              mappings:
                price_minmax: 'if_else(hi > lo, (price - lo) / (hi - lo), 0.0)'
                price_z: (price - mu) / sigma
                share: revenue / category_revenue
          - {name: tidy, transformation_type: select,
             config: {columns: [id, category, price_minmax, price_z, share, revenue_quartile]}}
        targets:
          - {name: out, target_type: database, connection: shop, table: products_scaled,
             write_mode: overwrite}
        """, shop=pg_url)
    run(folder, "uc67_normalize")

    df = pd.DataFrame(products, columns=["id", "category", "price", "units"])
    df["revenue"] = df["price"] * df["units"]
    groups = df.groupby("category")
    lo, hi = groups["price"].transform("min"), groups["price"].transform("max")
    minmax = ((df["price"] - lo) / (hi - lo)).where(hi > lo, 0.0)
    z = (df["price"] - groups["price"].transform("mean")) / groups["price"].transform("std")
    share = df["revenue"] / groups["revenue"].transform("sum")
    position = df["revenue"].rank(method="first") - 1  # ties keep row order, like the window
    quartile = [int(p * 4 // len(df)) + 1 for p in position]
    got = rows(pg_url, "select id, category, price_minmax, price_z, share, revenue_quartile "
                       "from products_scaled order by id")
    assert [r[:2] for r in got] == list(zip(df["id"], df["category"], strict=True))
    assert [r[2] for r in got] == pytest.approx(list(minmax))
    # a one-product category has no standard deviation: null, where pandas has NaN
    assert [r[3] for r in got][5] is None and np.isnan(z[5])
    assert [r[3] for i, r in enumerate(got) if i != 5] == pytest.approx(z.drop(5).tolist())
    assert [r[4] for r in got] == pytest.approx(list(share))
    assert [r[5] for r in got] == quartile
