"""Use cases of the Nexus docs where one job writes different stages to different targets
(``targets[].input``): raw rows and an aggregate, valid rows and a quarantine, two sides of a
reconciliation; run end to end against PostgreSQL, MariaDB and files, results checked
exactly, asset lineage following each target's input."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq

from nexus_dagster.dagster.factory import build_definitions
from nexus_dagster.spec.loader import load_project
from tests.integration.use_cases.helpers import execute, project, rows, run
from tests.support import endpoint_events

ORDERS = (
    "create table orders (order_id int primary key, customer_id int, product_category text, "
    "amount numeric(10,2))",
    "insert into orders values (1, 1, 'books', 10.00), (2, 1, 'books', 30.00), "
    "(3, 1, 'toys', 5.00), (4, 2, 'toys', 7.50), (5, 3, 'books', 1.25)",
    "create table customers (c_custkey int primary key, customer_name text)",
    "insert into customers values (1, 'Ann'), (2, 'Bob'), (3, 'Cid')",
)


def parents(folder: Path, target_key_part: str) -> set[str]:
    """The upstream asset keys of the target asset whose key ends with ``target_key_part``."""
    graph = build_definitions(load_project(folder)).resolve_asset_graph()
    (key,) = [k for k in graph.get_all_asset_keys() if k.path[-1] == target_key_part]
    return {p.path[-1] for p in graph.get(key).parent_keys}


def test_uc4_raw_rows_and_the_aggregate_from_one_job(
    tmp_path: Path, pg_url: str, mariadb_url: str
) -> None:
    """Use case 4, "Data Aggregation Pipeline", with the raw rows kept: one job loads the
    orders as read into MariaDB and the docs' aggregation (revenue, orders, mean and max per
    customer and category, named from customers) into PostgreSQL; the raw target depends on
    the orders asset only, the summary on orders and customers."""
    execute(pg_url, *ORDERS)
    folder = project(tmp_path, """\
        name: uc4_raw_and_summary
        sources:
          - {name: orders, source_type: database, connection: shop, table: orders}
          - {name: customers, source_type: database, connection: shop, table: customers}
        transformations:
          - name: aggregate_sales
            transformation_type: aggregate
            input: orders
            config:
              group_by: [customer_id, product_category]
              aggregations:
                total_revenue: [amount, sum]
                total_orders: [order_id, count]
                avg_order_value: [amount, mean]
                max_order: [amount, max]
          - name: named
            transformation_type: join
            config: {left: aggregate_sales, right: customers, left_on: customer_id,
                     right_on: c_custkey}
        targets:
          - {name: raw_orders, target_type: database, connection: lake, table: raw_orders,
             write_mode: overwrite, input: orders}
          - {name: sales_summary, target_type: database, connection: shop,
             table: sales_summary, write_mode: overwrite}
        """, shop=pg_url, lake=mariadb_url)
    result = run(folder, "uc4_raw_and_summary")
    assert rows(mariadb_url, "select * from raw_orders order by order_id") == rows(
        pg_url, "select * from orders order by order_id")
    assert rows(pg_url, "select customer_name, product_category, total_revenue, total_orders, "
                        "avg_order_value, max_order from sales_summary order by 1, 2") == [
        ("Ann", "books", Decimal("40.00"), 2, 20.0, Decimal("30.00")),
        ("Ann", "toys", Decimal("5.00"), 1, 5.0, Decimal("5.00")),
        ("Bob", "toys", Decimal("7.50"), 1, 7.5, Decimal("7.50")),
        ("Cid", "books", Decimal("1.25"), 1, 1.25, Decimal("1.25")),
    ]
    assert parents(folder, "raw_orders") == {"orders"}
    assert parents(folder, "sales_summary") == {"orders", "customers"}
    events = endpoint_events(result)
    raw_lineage = events["uc4_raw_and_summary/raw_orders"]["dagster/column_lineage"].value
    assert {d.column_name for d in raw_lineage.deps_by_column["amount"]} == {"amount"}
    assert events["uc4_raw_and_summary/raw_orders"]["dagster/row_count"].value == 5
    assert events["uc4_raw_and_summary/sales_summary"]["dagster/row_count"].value == 4


def test_uc91_uc99_reference_validation_with_a_quarantine(tmp_path: Path, pg_url: str) -> None:
    """Use cases 91, "Reference data validation", and 99, "Error data quarantine": order rows
    whose country code is in the reference table (a semi join on country = iso_code) load
    into PostgreSQL, the others (an anti join) into a quarantine Parquet file; one job."""
    execute(pg_url, "create table countries (iso_code text, country_name text)",
            "insert into countries values ('DE', 'Germany'), ('FR', 'France')")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "orders.csv").write_text(
        "order_id,country,amount\n1,DE,10\n2,XX,20\n3,FR,30\n4,,40\n5,DE,50\n")
    folder = project(tmp_path, """\
        name: uc91_validate
        sources:
          - {name: orders, source_type: file, file_path: data/orders.csv}
          - {name: countries, source_type: database, connection: ref, table: countries}
        transformations:
          - name: valid
            transformation_type: join
            config: {left: orders, right: countries, left_on: country, right_on: iso_code,
                     how: semi}
          - name: invalid
            transformation_type: join
            config: {left: orders, right: countries, left_on: country, right_on: iso_code,
                     how: anti}
        targets:
          - {name: valid_orders, target_type: database, connection: ref, table: valid_orders,
             write_mode: overwrite, input: valid}
          - {name: quarantine, target_type: file, file_path: output/quarantine.parquet,
             write_mode: overwrite, input: invalid}
        """, ref=pg_url)
    run(folder, "uc91_validate")
    assert rows(pg_url, "select order_id, country, amount from valid_orders order by 1") == [
        (1, "DE", 10), (3, "FR", 30), (5, "DE", 50)]
    quarantined = pq.read_table(tmp_path / "output" / "quarantine.parquet").to_pylist()
    assert quarantined == [{"order_id": 2, "country": "XX", "amount": 20},
                           {"order_id": 4, "country": None, "amount": 40}]


def test_uc93_reconciliation_report_both_ways(
    tmp_path: Path, pg_url: str, mariadb_url: str
) -> None:
    """Use case 93, "Data reconciliation reports": orders of the source system (MariaDB)
    missing from the warehouse fact table (PostgreSQL, key fact_order_id) and facts with no
    source order, two anti joins written to two report tables by one job."""
    execute(mariadb_url, "create table orders (id int primary key, amount decimal(8,2))",
            "insert into orders values (1, 1.00), (2, 2.00), (3, 3.00), (4, 4.00)")
    execute(pg_url, "create table fact_orders (fact_order_id int, amount numeric(8,2))",
            "insert into fact_orders values (1, 1.00), (3, 3.00), (7, 7.00)")
    folder = project(tmp_path, """\
        name: uc93_reconcile
        sources:
          - {name: source_orders, source_type: database, connection: app, table: orders}
          - {name: facts, source_type: database, connection: dwh, table: fact_orders}
        transformations:
          - name: missing_in_warehouse
            transformation_type: join
            config: {left: source_orders, right: facts, left_on: id,
                     right_on: fact_order_id, how: anti}
          - name: unknown_in_source
            transformation_type: join
            config: {left: facts, right: source_orders, left_on: fact_order_id,
                     right_on: id, how: anti}
        targets:
          - {name: report_missing, target_type: database, connection: dwh,
             table: report_missing, write_mode: overwrite, input: missing_in_warehouse}
          - {name: report_unknown, target_type: database, connection: dwh,
             table: report_unknown, write_mode: overwrite}
        """, app=mariadb_url, dwh=pg_url)
    run(folder, "uc93_reconcile")
    assert rows(pg_url, "select id, amount from report_missing order by id") == [
        (2, Decimal("2.00")), (4, Decimal("4.00"))]
    assert rows(pg_url, "select fact_order_id, amount from report_unknown") == [
        (7, Decimal("7.00"))]


def test_a_pg_target_reading_raw_rows_is_not_given_the_pushed_down_steps(
    tmp_path: Path, pg_url: str
) -> None:
    """A PostgreSQL -> PostgreSQL job whose only target reads the source's raw rows (input)
    is not run as the COPY pipe of its filter: the target gets every row."""
    execute(pg_url, *ORDERS[:2])
    folder = project(tmp_path, """\
        name: raw_only
        sources:
          - {name: orders, source_type: database, connection: shop, table: orders}
        transformations:
          - name: big
            transformation_type: filter
            config: {condition: amount > 6}
        targets:
          - {name: copy, target_type: database, connection: shop, table: orders_copy,
             write_mode: overwrite, input: orders}
        """, shop=pg_url)
    result = run(folder, "raw_only")
    assert rows(pg_url, "select count(*) from orders_copy") == [(5,)]
    metadata = endpoint_events(result)["raw_only/copy"]
    assert {k: v.value for k, v in metadata.items() if k == "nexus/plan"} == {
        "nexus/plan": "general"}
