"""Use cases of the Nexus docs that needed custom code or a hand-written SQL query, written as
YAML specs with joins (differently named keys, joins of aggregates and pivots, 3-table chains,
semi/anti/cross joins) and run end to end against PostgreSQL, MariaDB and files."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from tests.integration.use_cases.helpers import execute, project, rows, run

SHOP_TABLES = (
    "create table customers (c_custkey int primary key, customer_name text, email text)",
    "insert into customers values (1, 'Ann', 'ann@example.com'), (2, 'Bob', 'bob@example.com'),"
    " (3, 'Cid', 'cid@example.com')",
    "create table products (p_id int primary key, product_name text, price numeric(10,2))",
    "insert into products values (100, 'pen', 1.50), (200, 'ink', 7.25)",
    "create table orders (o_id int primary key, o_custkey int, o_prodkey int, quantity int, "
    "o_year int)",
    "insert into orders values (1, 1, 100, 4, 2023), (2, 2, 200, 1, 2024), (3, 1, 200, 2, 2024),"
    " (4, 9, 100, 5, 2024), (5, 2, 100, 10, 2024)",
)


def test_uc3_multi_table_join_and_load(tmp_path: Path, pg_url: str, mariadb_url: str) -> None:
    """Use case 3, "Multi-Table Join and Load": orders JOIN customers ON o_custkey = c_custkey
    JOIN products ON o_prodkey = p_id, recent orders only, total = quantity * price; the docs
    needed a hand-written source query, here three database sources and two joins load
    MariaDB."""
    execute(pg_url, *SHOP_TABLES)
    folder = project(tmp_path, """\
        name: uc3_join_and_load
        sources:
          - {name: orders, source_type: database, connection: shop, table: orders}
          - {name: customers, source_type: database, connection: shop, table: customers}
          - {name: products, source_type: database, connection: shop, table: products}
        transformations:
          - name: recent
            transformation_type: filter
            input: orders
            config: {condition: o_year >= 2024}
          - name: with_customer
            transformation_type: join
            config: {left: recent, right: customers, left_on: o_custkey, right_on: c_custkey}
          - name: with_product
            transformation_type: join
            config: {left: with_customer, right: products, left_on: o_prodkey, right_on: p_id}
          - name: priced
            transformation_type: map
            config: {mappings: {total: quantity * price}}
        targets:
          - {name: order_lines, target_type: database, connection: warehouse,
             table: order_lines, write_mode: overwrite}
        """, shop=pg_url, warehouse=mariadb_url)
    run(folder, "uc3_join_and_load")
    assert rows(mariadb_url, "select o_id, customer_name, product_name, total from order_lines "
                             "order by o_id") == [
        (2, "Bob", "ink", Decimal("7.25")),
        (3, "Ann", "ink", Decimal("14.50")),
        (5, "Bob", "pen", Decimal("15.00")),
    ]  # order 1 is from 2023, order 4's customer 9 is unknown


def test_uc7_cross_database_consolidation_enriches_an_aggregate(
    tmp_path: Path, pg_url: str, mariadb_url: str
) -> None:
    """Use case 7, "Cross-database data consolidation": customers in PostgreSQL, orders in
    MariaDB, orders aggregated per customer and joined to every customer (left join of an
    aggregate on c_custkey = o_custkey) into PostgreSQL, and the customers without orders (an
    anti join) into a second table."""
    execute(pg_url, *SHOP_TABLES[:2])
    execute(mariadb_url, "create table orders (o_id int primary key, o_custkey int, "
                         "amount decimal(10,2))",
            "insert into orders values (1, 1, 10.00), (2, 2, 5.50), (3, 1, 2.25), (4, 9, 1.00)")
    folder = project(tmp_path, """\
        name: uc7_consolidation
        sources:
          - {name: customers, source_type: database, connection: crm, table: customers}
          - {name: orders, source_type: database, connection: shop, table: orders}
        transformations:
          - name: per_customer
            transformation_type: aggregate
            input: orders
            config:
              group_by: [o_custkey]
              aggregations: {revenue: [amount, sum], orders: [o_id, count]}
          - name: enriched
            transformation_type: join
            config: {left: customers, right: per_customer, left_on: c_custkey,
                     right_on: o_custkey, how: left}
          - name: without_orders
            transformation_type: join
            config: {left: customers, right: orders, left_on: c_custkey, right_on: o_custkey,
                     how: anti}
        targets:
          - {name: customer_360, target_type: database, connection: crm,
             table: customer_360, write_mode: overwrite, input: enriched}
          - {name: idle_customers, target_type: database, connection: crm,
             table: idle_customers, write_mode: overwrite}
        """, crm=pg_url, shop=mariadb_url)
    run(folder, "uc7_consolidation")
    assert rows(pg_url, "select c_custkey, customer_name, revenue, orders from customer_360 "
                        "order by c_custkey") == [
        (1, "Ann", Decimal("12.25"), 2),
        (2, "Bob", Decimal("5.50"), 1),
        (3, "Cid", None, None),
    ]
    assert rows(pg_url, "select * from idle_customers") == [(3, "Cid", "cid@example.com")]


def test_uc13_history_reconstruction_with_a_cross_join(tmp_path: Path, pg_url: str) -> None:
    """Use case 13, "Historical data reconstruction": every product in every year (a cross
    join of products and a calendar), yearly sales aggregated and left-joined on two keys of
    different names, missing years filled with 0."""
    execute(pg_url, *SHOP_TABLES[2:],
            "create table calendar (year int)", "insert into calendar values (2023), (2024)")
    folder = project(tmp_path, """\
        name: uc13_history
        sources:
          - {name: products, source_type: database, connection: shop, table: products}
          - {name: calendar, source_type: database, connection: shop, table: calendar}
          - {name: orders, source_type: database, connection: shop, table: orders}
        transformations:
          - name: yearly
            transformation_type: aggregate
            input: orders
            config: {group_by: [o_prodkey, o_year], aggregations: {units: [quantity, sum]}}
          - name: grid
            transformation_type: join
            config: {left: products, right: calendar, how: cross}
          - name: history
            transformation_type: join
            config: {left: grid, right: yearly, left_on: [p_id, year],
                     right_on: [o_prodkey, o_year], how: left}
          - name: filled
            transformation_type: map
            config: {mappings: {units: 'coalesce(units, 0)'}}
        targets:
          - {name: product_years, target_type: database, connection: shop,
             table: product_years, write_mode: overwrite}
        """, shop=pg_url)
    run(folder, "uc13_history")
    assert rows(pg_url, "select product_name, year, units from product_years "
                        "order by p_id, year") == [
        ("pen", 2023, 4), ("pen", 2024, 15), ("ink", 2023, 0), ("ink", 2024, 3),
    ]


def test_uc90_duplicates_across_sources_by_a_semi_join(
    tmp_path: Path, pg_url: str, mariadb_url: str
) -> None:
    """Use case 90, "Duplicate detection across sources": CRM contacts (PostgreSQL) that also
    exist in billing (MariaDB) under another column name (email = billing_email), each once
    even when billing has the address twice (a semi join)."""
    execute(pg_url, *SHOP_TABLES[:2])
    execute(mariadb_url, "create table accounts (account_id int, billing_email varchar(80))",
            "insert into accounts values (7, 'bob@example.com'), (8, 'zed@example.com'), "
            "(9, 'bob@example.com'), (10, 'cid@example.com')")
    folder = project(tmp_path, """\
        name: uc90_duplicates
        sources:
          - {name: contacts, source_type: database, connection: crm, table: customers}
          - {name: accounts, source_type: database, connection: billing, table: accounts}
        transformations:
          - name: in_both
            transformation_type: join
            config: {left: contacts, right: accounts, left_on: email,
                     right_on: billing_email, how: semi}
        targets:
          - {name: duplicates, target_type: database, connection: crm, table: duplicates,
             write_mode: overwrite}
        """, crm=pg_url, billing=mariadb_url)
    run(folder, "uc90_duplicates")
    assert rows(pg_url, "select * from duplicates order by c_custkey") == [
        (2, "Bob", "bob@example.com"), (3, "Cid", "cid@example.com"),
    ]


def test_uc96_right_to_be_forgotten_by_an_anti_join(tmp_path: Path, pg_url: str) -> None:
    """Use case 96, "GDPR compliance (right to be forgotten)": the customer copy for analytics
    keeps every customer except those with an erasure request (customer_id = subject_id,
    an anti join; a request without a subject hides nobody)."""
    execute(pg_url, *SHOP_TABLES[:2], "create table erasure_requests (subject_id int)",
            "insert into erasure_requests values (2), (null), (42)")
    folder = project(tmp_path, """\
        name: uc96_forget
        sources:
          - {name: customers, source_type: database, connection: crm, table: customers}
          - {name: erasures, source_type: database, connection: crm, table: erasure_requests}
        transformations:
          - name: kept
            transformation_type: join
            config: {left: customers, right: erasures, left_on: c_custkey,
                     right_on: subject_id, how: anti}
        targets:
          - {name: analytics_customers, target_type: database, connection: crm,
             table: analytics_customers, write_mode: overwrite}
        """, crm=pg_url)
    run(folder, "uc96_forget")
    assert rows(pg_url, "select c_custkey from analytics_customers order by 1") == [(1,), (3,)]


def test_uc5_denormalization_joins_a_pivot_back(tmp_path: Path) -> None:
    """Use case 5, "Data Denormalization": category sales pivoted per customer (sum, filled
    with 0) and merged back onto every sales row (a left join of a pivot result); the docs'
    custom code, as two built-in steps, checked against that pandas code."""
    (tmp_path / "data").mkdir()
    sales = pd.DataFrame({"customer_id": [1, 1, 2, 3, 1],
                          "category": ["books", "toys", "books", "toys", "books"],
                          "sales": [10.0, 5.0, 7.5, 2.0, 1.0]})
    sales.to_csv(tmp_path / "data" / "sales.csv", index=False)
    folder = project(tmp_path, """\
        name: uc5_denormalize
        sources:
          - {name: sales, source_type: file, file_path: data/sales.csv}
        transformations:
          - name: per_category
            transformation_type: pivot
            config: {index: customer_id, columns: category, values: sales, aggfunc: sum,
                     fill_value: 0}
          - name: denormalized
            transformation_type: join
            config: {left: sales, right: per_category, on: customer_id, how: left}
        targets:
          - {name: wide_sales, target_type: file, file_path: output/wide_sales.parquet,
             write_mode: overwrite}
        """)
    run(folder, "uc5_denormalize")
    pivot_df = sales.pivot_table(index="customer_id", columns="category", values="sales",
                                 aggfunc="sum", fill_value=0)
    expected = sales.merge(pivot_df.reset_index(), on="customer_id", how="left")
    out = pq.read_table(tmp_path / "output" / "wide_sales.parquet").to_pandas()
    pd.testing.assert_frame_equal(out, expected, check_dtype=False)
