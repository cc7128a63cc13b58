"""The use-case catalog's specs 1-50 (``examples/use_cases/uc0NN_*.yaml``) run end to end as
shipped: each test copies ``examples/`` into tmp_path (the job's spec, the shared
connections.yaml and the data files), points the catalog's ``NEXUS_UC_*`` variables at the
test servers (a fresh database per test), seeds the sources, runs the job through Dagster and
compares the targets with results computed here from the same input with Python/pandas."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cryptography.fernet import Fernet

from nexus_dagster.dagster.factory import build_definitions
from nexus_dagster.spec.loader import load_project
from tests.integration.api.server import (
    API_KEY,
    BASIC,
    CLIENT_ID,
    CLIENT_SECRET,
    TOKEN,
    ApiServer,
    make_users,
)
from tests.integration.use_cases.helpers import execute, insert, rows, run
from tests.support import cleanup, make_store, run_job

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
DATA = EXAMPLES / "use_cases" / "data"


def catalog(tmp_path: Path, job: str) -> Path:
    """``examples/`` copied into tmp_path with only ``job``'s spec (and connections.yaml);
    returns the copied spec folder."""

    def ignore(folder: str, names: list[str]) -> list[str]:
        if Path(folder) == EXAMPLES:
            return [n for n in names if n == "output"]
        if Path(folder) == EXAMPLES / "use_cases":
            return [n for n in names if n.endswith(".yaml")
                    and n not in (f"{job}.yaml", "connections.yaml")]
        return []

    shutil.copytree(EXAMPLES, tmp_path / "examples", ignore=ignore)
    return tmp_path / "examples" / "use_cases"


def lite(folder: Path, query: str) -> list[tuple]:
    """Rows of a query on the catalog's SQLite connection (``lite``: output/uc.db)."""
    with sqlite3.connect(folder.parent / "output" / "uc.db") as con:
        return [tuple(r) for r in con.execute(query)]


@pytest.fixture
def pg(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh PostgreSQL database behind the catalog's ``pg`` connection."""
    monkeypatch.setenv("NEXUS_UC_PG_URL", pg_url)
    return pg_url


@pytest.fixture
def maria(mariadb_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh MariaDB database behind the catalog's ``mariadb`` connection."""
    monkeypatch.setenv("NEXUS_UC_MARIADB_URL", mariadb_url)
    return mariadb_url


@pytest.fixture
def web(api: ApiServer, monkeypatch: pytest.MonkeyPatch) -> ApiServer:
    """The local test API behind the catalog's ``api`` connection, with its credentials."""
    for name, value in {"NEXUS_UC_API_URL": api.url, "NEXUS_UC_API_TOKEN": TOKEN,
                        "NEXUS_UC_API_KEY": API_KEY, "NEXUS_UC_API_USER": BASIC[0],
                        "NEXUS_UC_API_PASSWORD": BASIC[1], "NEXUS_UC_OAUTH_CLIENT_ID": CLIENT_ID,
                        "NEXUS_UC_OAUTH_CLIENT_SECRET": CLIENT_SECRET}.items():
        monkeypatch.setenv(name, value)
    return api


def csv(name: str) -> pd.DataFrame:
    return pd.read_csv(DATA / name)


# ----------------------------------------------------------------------------- files
def test_uc004_aggregates_match_pandas_groupby(tmp_path: Path, pg: str) -> None:
    folder = catalog(tmp_path, "uc004_aggregation_pipeline")
    run(folder, "uc004_aggregation_pipeline")
    df = csv("uc004_sales.csv")
    expected = df.groupby(["customer_id", "product_category"]).agg(
        total=("amount", "sum"), n=("order_id", "count"), avg=("amount", "mean"),
        top=("amount", "max")).reset_index()
    got = rows(pg, "select customer_id, product_category, total_revenue, total_orders, "
                   "avg_order_value, max_order from sales_summary "
                   "order by customer_id, product_category")
    assert [(c, k, round(float(t), 2), n, round(float(a), 4), float(m))
            for c, k, t, n, a, m in got] == [
        (r.customer_id, r.product_category, round(r.total, 2), r.n, round(r.avg, 4), r.top)
        for r in expected.itertuples()]


def test_uc005_every_sales_row_gets_its_customers_category_columns(tmp_path: Path) -> None:
    folder = catalog(tmp_path, "uc005_denormalization")
    run(folder, "uc005_denormalization")
    df = csv("uc005_customer_sales.csv")
    wide = df.pivot_table(index="customer_id", columns="category", values="sales",
                          aggfunc="sum", fill_value=0)
    got = lite(folder, "select customer_id, category, sales, sales_books, sales_garden, "
                       "sales_toys from uc005_customer_sales_wide")
    assert len(got) == len(df)
    assert sorted((c, k, round(s, 2)) for c, k, s, *_ in got) == sorted(
        (r.customer_id, r.category, round(r.sales, 2)) for r in df.itertuples())
    for customer, _, _, books, garden, toys in got:
        assert (round(books, 2), round(garden, 2), round(toys, 2)) == tuple(
            round(wide.loc[customer].get(c, 0), 2) for c in ("books", "garden", "toys"))


def test_uc023_webhook_files_loaded_once_by_event_id_and_moved(tmp_path: Path) -> None:
    folder = catalog(tmp_path, "uc023_webhook_capture")
    run(folder, "uc023_webhook_capture")
    payloads = [e for f in sorted((DATA / "uc023_webhooks").glob("*.json"))
                for e in json.loads(f.read_text())]
    got = lite(folder, "select event_id, type, amount from uc023_webhook_events "
                       "order by event_id")
    assert got == sorted((e["event_id"], e["type"], e["amount"]) for e in payloads)
    assert not list((folder / "data" / "uc023_webhooks").glob("*.json"))
    assert len(list((folder.parent / "output" / "uc023_processed").rglob("*.json"))) == 3


def test_uc031_csv_loaded_with_exact_decimal_balances(tmp_path: Path, pg: str) -> None:
    folder = catalog(tmp_path, "uc031_csv_to_database")
    run(folder, "uc031_csv_to_database")
    df = pd.read_csv(DATA / "uc031_customers.csv", dtype=str)
    got = rows(pg, "select c_custkey, c_name, c_acctbal from customers order by c_custkey")
    assert got == [(int(r.c_custkey), r.c_name, Decimal(r.c_acctbal)) for r in df.itertuples()]


def test_uc032_every_sheet_read_and_tagged(tmp_path: Path) -> None:
    folder = catalog(tmp_path, "uc032_excel_multi_sheet")
    run(folder, "uc032_excel_multi_sheet")
    sheets = pd.read_excel(DATA / "uc032_report.xlsx", sheet_name=None)
    got = lite(folder, "select source_sheet, count(*), sum(units), round(sum(revenue), 2) "
                       "from uc032_regional_sales group by source_sheet order by source_sheet")
    assert got == sorted((name, len(s), int(s.units.sum()), round(float(s.revenue.sum()), 2))
                         for name, s in sheets.items())


def test_uc033_jsonl_problems_per_service(tmp_path: Path) -> None:
    folder = catalog(tmp_path, "uc033_jsonl_processing")
    run(folder, "uc033_jsonl_processing")
    df = pd.read_json(DATA / "uc033_logs.jsonl", lines=True)
    df = df[df.level.isin(["WARN", "ERROR"])]
    expected = df.groupby(["service", "level"]).agg(n=("message", "count"),
                                                    m=("latency_ms", "max")).reset_index()
    got = lite(folder, "select service, level, events, max_latency_ms from uc033_log_problems "
                       "order by service, level")
    assert got == [(r.service, r.level, r.n, r.m) for r in expected.itertuples()]


def test_uc034_parquet_typed_and_sorted(tmp_path: Path) -> None:
    folder = catalog(tmp_path, "uc034_parquet_optimization")
    run(folder, "uc034_parquet_optimization")
    table = pq.read_table(folder.parent / "output" / "uc034_customers.parquet")
    assert str(table.schema.field("c_acctbal").type) == "decimal128(12, 2)"
    df = pd.read_csv(DATA / "uc034_customers.csv", dtype={"c_acctbal": str})
    df = df.sort_values(["c_mktsegment", "c_custkey"])
    assert [(r["c_custkey"], r["c_acctbal"]) for r in table.to_pylist()] == [
        (r.c_custkey, Decimal(r.c_acctbal)) for r in df.itertuples()]


def test_uc035_valid_users_pass_every_rule_and_load(tmp_path: Path) -> None:
    folder = catalog(tmp_path, "uc035_data_validation")
    run(folder, "uc035_data_validation")
    df = csv("uc035_users.csv")
    assert lite(folder, "select count(*), sum(age), count(distinct email) from uc035_users") == [
        (len(df), int(df.age.sum()), len(df))]


def test_uc035_a_user_without_email_stops_the_load(tmp_path: Path) -> None:
    folder = catalog(tmp_path, "uc035_data_validation")
    users = folder / "data" / "uc035_users.csv"
    users.write_text(users.read_text() + "31,,40,DE\n")
    result = run_job(folder, "uc035_data_validation", dg.DagsterInstance.ephemeral())
    assert not result.success
    assert not (folder.parent / "output" / "uc.db").exists() or not lite(
        folder, "select name from sqlite_master where name = 'uc035_users'")


def test_uc038_log_lines_parsed_and_summarised(tmp_path: Path) -> None:
    folder = catalog(tmp_path, "uc038_log_parsing")
    run(folder, "uc038_log_parsing")
    counts: dict[tuple[str, int], list[int]] = {}
    pattern = re.compile(r'"[A-Z]+ ([^ ]+) HTTP[^"]*" (\d{3}) (\d+)$')
    for line in (DATA / "uc038_access.log").read_text().splitlines():
        path, status, size = pattern.search(line).groups()
        entry = counts.setdefault((path, int(status)), [0, 0])
        entry[0] += 1
        entry[1] += int(size)
    got = lite(folder, "select path, status, requests, bytes from uc038_traffic "
                       "order by path, status")
    assert got == [(p, s, n, b) for (p, s), (n, b) in sorted(counts.items())]


def test_uc039_every_zip_member_loaded_with_its_name(tmp_path: Path) -> None:
    folder = catalog(tmp_path, "uc039_zip_batch")
    run(folder, "uc039_zip_batch")
    got = lite(folder, "select _source_file, count(*), round(sum(o_totalprice), 2) "
                       "from uc039_orders group by _source_file order by _source_file")
    import zipfile

    with zipfile.ZipFile(DATA / "uc039_orders.zip") as archive:
        expected = {m: pd.read_csv(archive.open(m)) for m in archive.namelist()}
    assert [(f.rsplit("!", 1)[1], n, s) for f, n, s in got] == sorted(
        (m, len(d), round(float(d.o_totalprice.sum()), 2)) for m, d in expected.items())


def test_uc040_xml_products_become_flat_json_records(tmp_path: Path) -> None:
    folder = catalog(tmp_path, "uc040_xml_to_json")
    run(folder, "uc040_xml_to_json")
    records = json.loads((folder.parent / "output" / "uc040_catalog.json").read_text())
    products = ET.parse(DATA / "uc040_catalog.xml").getroot().findall("product")
    assert [(r["sku"], r["name"], r["price._text"], r["price.currency"], r["supplier.name"])
            for r in records] == [
        (p.get("sku"), p.findtext("name"), float(p.findtext("price")),
         p.find("price").get("currency"), p.findtext("supplier/name")) for p in products]


def test_uc041_fixed_width_accounts_typed(tmp_path: Path, pg: str) -> None:
    folder = catalog(tmp_path, "uc041_fixed_width")
    run(folder, "uc041_fixed_width")
    lines = (DATA / "uc041_accounts.fwf").read_text().splitlines()
    expected = [(int(x[:6]), x[6:26].strip(), Decimal(x[26:36].strip()), x[36:46])
                for x in lines]
    got = rows(pg, "select account_id, holder, balance, opened_on::text from accounts "
                   "order by account_id")
    assert got == expected


def test_uc042_every_store_file_concatenated(tmp_path: Path) -> None:
    folder = catalog(tmp_path, "uc042_multi_file_concat")
    run(folder, "uc042_multi_file_concat")
    frames = {f.name: pd.read_csv(f) for f in sorted((DATA / "uc042_sales").glob("*.csv"))}
    got = lite(folder, "select _source_file, count(*), round(sum(line_total), 2) "
                       "from uc042_all_sales group by _source_file order by _source_file")
    assert [(Path(f).name, n, s) for f, n, s in got] == [
        (name, len(d), round(sum(round(q * p, 2) for q, p in zip(d.quantity, d.unit_price,
                                                                 strict=True)), 2))
        for name, d in frames.items()]


def test_uc043_one_csv_converted_to_parquet_jsonl_and_xml(tmp_path: Path) -> None:
    folder = catalog(tmp_path, "uc043_format_conversion")
    run(folder, "uc043_format_conversion")
    out = folder.parent / "output"
    # prices are written with two decimals: read as decimal(18, 2), every format keeps them exact
    expected = [(r.p_partkey, r.p_name, Decimal(r.p_retailprice)) for r in pd.read_csv(
        DATA / "uc043_parts.csv", dtype={"p_retailprice": str}).itertuples()]
    parquet = pq.read_table(out / "uc043_parts.parquet")
    assert parquet.schema.field("p_retailprice").type == pa.decimal128(18, 2)
    jsonl = [json.loads(x, parse_float=Decimal)  # the prices are exact JSON numbers
             for x in (out / "uc043_parts.jsonl").read_text().splitlines()]
    parts = ET.parse(out / "uc043_parts.xml").getroot().findall("part")
    assert [(r["p_partkey"], r["p_name"], r["p_retailprice"])
            for r in parquet.to_pylist()] == expected
    assert [(r["p_partkey"], r["p_name"], r["p_retailprice"]) for r in jsonl] == expected
    assert [(int(p.findtext("p_partkey")), p.findtext("p_name"),
             Decimal(p.findtext("p_retailprice"))) for p in parts] == expected


def test_uc044_batched_read_gives_the_same_totals_as_pandas(tmp_path: Path) -> None:
    folder = catalog(tmp_path, "uc044_chunked_processing")
    run(folder, "uc044_chunked_processing")
    df = csv("uc044_events.csv")
    expected = df[df.event_type == "purchase"].groupby("user_id").agg(
        n=("event_id", "count"), v=("value", "sum")).reset_index()
    got = lite(folder, "select user_id, purchases, value from uc044_user_purchases "
                       "order by user_id")
    assert got == [(r.user_id, r.n, r.v) for r in expected.itertuples()]


def test_uc045_fernet_encrypted_payroll_decrypted_and_loaded(
    tmp_path: Path, pg: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = Fernet.generate_key()
    monkeypatch.setenv("MASTER_ENCRYPTION_KEY", key.decode())
    folder = catalog(tmp_path, "uc045_encrypted_file")
    plain = (DATA / "uc045_payroll.csv").read_bytes()
    (folder / "data" / "uc045_payroll.csv.enc").write_bytes(Fernet(key).encrypt(plain))
    run(folder, "uc045_encrypted_file")
    df = pd.read_csv(DATA / "uc045_payroll.csv", dtype=str)
    got = rows(pg, "select employee_id, gross, tax, net from payroll order by employee_id")
    assert got == [(int(r.employee_id), Decimal(r.gross), Decimal(r.tax),
                    Decimal(r.gross) - Decimal(r.tax)) for r in df.itertuples()]


# ----------------------------------------------------------------------------- databases
SHOP = (
    "create table customers (id int primary key, customer_name text)",
    "insert into customers values (1, 'Ann'), (2, 'Bob')",
    "create table products (product_key int primary key, product_name text, "
    "price numeric(10,2))",
    "insert into products values (10, 'pen', 1.50), (20, 'ink', 7.25)",
    "create table orders (order_id int primary key, customer_id int, product_id int, "
    "quantity int, order_date date)",
    "insert into orders values (1, 1, 10, 4, '2023-12-30'), (2, 2, 20, 1, '2024-01-02'),"
    " (3, 1, 20, 2, '2024-02-01'), (4, 2, 10, 10, '2024-03-05')",
)


def test_uc001_users_copied_to_mysql(tmp_path: Path, pg: str, maria: str) -> None:
    users = [(i, f"user{i}", f"u{i}@example.com", Decimal(f"{i}.50")) for i in range(1, 8)]
    execute(pg, "create table users (id int primary key, name text, email text, "
                "credit numeric(8,2))")
    insert(pg, "users", users)
    run(catalog(tmp_path, "uc001_pg_to_mysql"), "uc001_pg_to_mysql")
    assert rows(maria, "select id, name, email, credit from users order by id") == users


def test_uc002_only_rows_from_the_incremental_value_on_are_upserted(
    tmp_path: Path, pg: str, maria: str
) -> None:
    execute(pg, "create table orders (order_id int primary key, amount int, "
                "updated_at timestamp)",
            "insert into orders values (1, 10, '2023-12-31 23:59:59'), "
            "(2, 20, '2024-01-01 00:00:00'), (3, 30, '2024-02-01 08:00:00')")
    run(catalog(tmp_path, "uc002_incremental_sync"), "uc002_incremental_sync")
    assert rows(maria, "select order_id, amount from orders_replica order by order_id") == [
        (2, 20), (3, 30)]


def test_uc003_three_tables_joined_and_priced(tmp_path: Path, pg: str, maria: str) -> None:
    execute(pg, *SHOP)
    run(catalog(tmp_path, "uc003_multi_table_join"), "uc003_multi_table_join")
    prices = {10: ("pen", Decimal("1.50")), 20: ("ink", Decimal("7.25"))}
    names = {1: "Ann", 2: "Bob"}
    orders = [(2, 2, 20, 1), (3, 1, 20, 2), (4, 2, 10, 10)]  # 2024 only
    assert rows(maria, "select order_id, customer_name, product_name, total from order_lines "
                       "order by order_id") == [
        (o, names[c], prices[p][0], prices[p][1] * q) for o, c, p, q in orders]


def test_uc006_changed_customer_gets_a_new_version_and_missing_one_is_closed(
    tmp_path: Path, pg: str
) -> None:
    execute(pg, "create table customers (customer_id int primary key, name text, city text, "
                "segment text)",
            "insert into customers values (1, 'Ann', 'Berlin', 'A'), (2, 'Bob', 'Paris', 'B'),"
            " (3, 'Cid', 'Rome', 'A')")
    folder = catalog(tmp_path, "uc006_scd_type2")
    instance = dg.DagsterInstance.ephemeral()
    assert run_job(folder, "uc006_scd_type2", instance).success
    execute(pg, "update customers set city = 'Madrid' where customer_id = 2",
            "delete from customers where customer_id = 3")
    assert run_job(folder, "uc006_scd_type2", instance).success
    assert rows(pg, "select customer_id, city, is_current, valid_to is null "
                    "from dim_customers order by customer_id, valid_from") == [
        (1, "Berlin", True, True),
        (2, "Paris", False, False), (2, "Madrid", True, True),
        (3, "Rome", False, False)]


def test_uc007_revenue_per_customer_across_two_databases(
    tmp_path: Path, pg: str, maria: str
) -> None:
    execute(pg, "create table customers (c_custkey int primary key, name text)",
            "insert into customers values (1, 'Ann'), (2, 'Bob'), (3, 'Cid')")
    execute(maria, "create table orders (o_id int primary key, o_custkey int, "
                   "amount decimal(10,2))",
            "insert into orders values (1, 1, 10.00), (2, 2, 5.50), (3, 1, 2.25)")
    run(catalog(tmp_path, "uc007_cross_db_consolidation"), "uc007_cross_db_consolidation")
    assert rows(pg, "select c_custkey, name, revenue, orders from customer_revenue "
                    "order by c_custkey") == [
        (1, "Ann", Decimal("12.25"), 2), (2, "Bob", Decimal("5.50"), 1), (3, "Cid", None, None)]


def test_uc008_a_month_is_moved_to_the_archive(tmp_path: Path, pg: str, maria: str) -> None:
    execute(pg, "create table orders (order_id int primary key, amount int, "
                "order_date timestamp)",
            "insert into orders values (1, 10, '2023-01-05'), (2, 20, '2023-01-31 23:00'),"
            " (3, 30, '2023-02-01'), (4, 40, '2024-06-01')")
    folder = catalog(tmp_path, "uc008_db_archiving")
    job = build_definitions(load_project(folder)).resolve_job_def("uc008_db_archiving")
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(),
                                    partition_key="2023-01-01", raise_on_error=False)
    assert result.success
    assert rows(maria, "select order_id, amount from orders_archive order by order_id") == [
        (1, 10), (2, 20)]
    assert rows(pg, "select order_id from orders order by order_id") == [(3,), (4,)]


def test_uc009_bad_payments_quarantined_with_reasons(tmp_path: Path, pg: str) -> None:
    execute(pg, "create table payments (payment_id int, amount numeric(8,2), currency text, "
                "email text)")
    insert(pg, "payments", [(1, Decimal("10.00"), "EUR", "a@x.de"),
                            (2, Decimal("-5.00"), "EUR", "b@x.de"),
                            (3, Decimal("7.00"), "GBP", "c@x.de"),
                            (4, Decimal("8.00"), "USD", "not-an-email"),
                            (5, Decimal("9.00"), "USD", "e@x.com")])
    run(catalog(tmp_path, "uc009_validate_before_load"), "uc009_validate_before_load")
    assert rows(pg, "select payment_id from payments_clean order by 1") == [(1,), (5,)]
    rejects = dict(rows(pg, "select payment_id, _reject_reason from payments_rejects"))
    assert sorted(rejects) == [2, 3, 4]
    assert "amount" in rejects[2] and "currency" in rejects[3] and "email" in rejects[4]


def test_uc009_a_missing_payment_id_writes_nothing(tmp_path: Path, pg: str) -> None:
    execute(pg, "create table payments (payment_id int, amount numeric(8,2), currency text, "
                "email text)",
            "insert into payments values (1, 1, 'EUR', 'a@x.de'), (null, 2, 'EUR', 'b@x.de')")
    folder = catalog(tmp_path, "uc009_validate_before_load")
    assert not run_job(folder, "uc009_validate_before_load",
                       dg.DagsterInstance.ephemeral()).success
    assert rows(pg, "select table_name from information_schema.tables "
                    "where table_name like 'payments_%'") == []


def test_uc011_two_tenants_merged_by_tenant_and_id(tmp_path: Path, pg: str, maria: str) -> None:
    execute(pg, "create table customers (id int primary key, name text, plan text)",
            "insert into customers values (1, 'Ann', 'pro'), (2, 'Bob', 'free')")
    execute(maria, "create table customers (id int primary key, name varchar(20), "
                   "plan varchar(10))",
            "insert into customers values (1, 'Xia', 'team')")
    run(catalog(tmp_path, "uc011_multi_tenant_sync"), "uc011_multi_tenant_sync")
    assert rows(pg, "select tenant, id, name, plan from tenant_customers order by 1, 2") == [
        ("acme", 1, "Ann", "pro"), ("acme", 2, "Bob", "free"), ("globex", 1, "Xia", "team")]


def test_uc012_employees_replicated_with_derived_columns(
    tmp_path: Path, pg: str, maria: str
) -> None:
    execute(pg, "create table employees (emp_id int primary key, first_name text, "
                "last_name text, email text, monthly_salary numeric(10,2))",
            "insert into employees values (1, 'Ann', 'Lee', ' Ann.Lee@X.DE ', 4100.50),"
            " (2, 'Bob', 'Ray', 'bob@x.de', 3900.00)")
    run(catalog(tmp_path, "uc012_replication_with_transform"), "uc012_replication_with_transform")
    assert rows(maria, "select emp_id, full_name, email, yearly_salary from employees "
                       "order by emp_id") == [
        (1, "Ann Lee", "ann.lee@x.de", Decimal("4100.50") * 12),
        (2, "Bob Ray", "bob@x.de", Decimal("3900.00") * 12)]


def test_uc013_prices_as_of_a_date(tmp_path: Path, pg: str) -> None:
    history = [(1, Decimal("10.00"), "2024-01-01", "2024-03-01"),
               (1, Decimal("12.00"), "2024-03-01", None),
               (2, Decimal("5.00"), "2024-02-01", "2024-03-15"),
               (2, Decimal("6.00"), "2024-03-15", None),
               (3, Decimal("9.00"), "2024-04-01", None)]
    execute(pg, "create table price_history (product_id int, price numeric(8,2), "
                "valid_from timestamp, valid_to timestamp)")
    insert(pg, "price_history", history)
    run(catalog(tmp_path, "uc013_historical_reconstruction"), "uc013_historical_reconstruction")
    day = "2024-03-15"
    assert rows(pg, "select product_id, price from prices_2024_03_15 order by 1") == [
        (p, price) for p, price, start, end in history
        if start <= day and (end is None or end > day)]


def test_uc014_daily_sales_summary_matches_a_group_by(tmp_path: Path, pg: str) -> None:
    sales = [(i, 1 + i % 2, Decimal(f"{i * 3}.25"), f"2024-05-0{1 + i % 3} 1{i % 10}:00")
             for i in range(1, 13)]
    execute(pg, "create table sales (sale_id int, store_id int, amount numeric(10,2), "
                "sold_at timestamp)")
    insert(pg, "sales", sales)
    run(catalog(tmp_path, "uc014_materialized_view"), "uc014_materialized_view")
    expected: dict[tuple[int, str], list] = {}
    for _, store, amount, sold in sales:
        entry = expected.setdefault((store, sold[:10]), [Decimal(0), 0])
        entry[0] += amount
        entry[1] += 1
    assert rows(pg, "select store_id, sale_day::text, revenue, sales from mv_daily_sales "
                    "order by 1, 2") == [
        (s, d, r, n) for (s, d), (r, n) in sorted(expected.items())]


def test_uc015_crm_and_erp_matched_into_golden_records(
    tmp_path: Path, pg: str, maria: str
) -> None:
    execute(pg, "create table crm_contacts (crm_id int, email text, name text, city text)",
            "insert into crm_contacts values (1, 'a@x.de', 'Ann', 'Berlin'),"
            " (2, 'b@x.de', 'Bob', null)")
    execute(maria, "create table erp_customers (erp_id int, email varchar(40), "
                   "name varchar(20), city varchar(20))",
            "insert into erp_customers values (7, 'b@x.de', 'Robert', 'Paris'),"
            " (8, 'c@x.de', 'Cid', 'Rome')")
    run(catalog(tmp_path, "uc015_master_data_sync"), "uc015_master_data_sync")
    assert rows(pg, "select email, name, city, in_crm, in_erp from master_customers "
                    "order by email") == [
        ("a@x.de", "Ann", "Berlin", True, False), ("b@x.de", "Bob", "Paris", True, True),
        ("c@x.de", "Cid", "Rome", False, True)]


# ----------------------------------------------------------------------------- APIs
USERS = make_users()


def test_uc016_bearer_api_users_appended(tmp_path: Path, pg: str, web: ApiServer) -> None:
    run(catalog(tmp_path, "uc016_rest_api_to_pg"), "uc016_rest_api_to_pg")
    assert rows(pg, 'select id, name, "address.city" from api_users order by id') == [
        (u["id"], u["name"], u["address"]["city"]) for u in USERS]


def test_uc017_every_page_loaded(tmp_path: Path, pg: str, web: ApiServer) -> None:
    run(catalog(tmp_path, "uc017_paginated_api"), "uc017_paginated_api")
    assert rows(pg, "select count(*), sum(id), sum(score) from users_paged") == [
        (len(USERS), sum(u["id"] for u in USERS), sum(u["score"] for u in USERS))]


def test_uc018_rate_limited_api_retried_after_429(tmp_path: Path, pg: str, web: ApiServer) -> None:
    run(catalog(tmp_path, "uc018_api_rate_limit"), "uc018_api_rate_limit")
    assert rows(pg, "select id from rate_limited_items order by id") == [
        (u["id"],) for u in USERS[:3]]
    assert sum(1 for m, p, _ in web.state.requests if p.startswith("/rate_limited")) == 2


def test_uc019_nested_objects_flattened(tmp_path: Path, web: ApiServer) -> None:
    folder = catalog(tmp_path, "uc019_json_flattening")
    run(folder, "uc019_json_flattening")
    got = lite(folder, 'select id, "address.city", "address.geo.lat", tags '
                       'from uc019_users_flat order by id')
    assert [(i, city, lat, json.loads(tags)) for i, city, lat, tags in got] == [
        (u["id"], u["address"]["city"], u["address"]["geo"]["lat"], u["tags"]) for u in USERS]


def test_uc020_oauth2_token_fetched_and_used(tmp_path: Path, pg: str, web: ApiServer) -> None:
    run(catalog(tmp_path, "uc020_oauth2_api"), "uc020_oauth2_api")
    assert rows(pg, "select count(*), sum(id) from oauth_users") == [
        (len(USERS), sum(u["id"] for u in USERS))]
    assert web.state.token_requests == 1


def test_uc024_one_row_per_profile_tag(tmp_path: Path, pg: str, web: ApiServer) -> None:
    run(catalog(tmp_path, "uc024_social_media_api"), "uc024_social_media_api")
    expected = [(u["id"], tag) for u in USERS for tag in (u["tags"] or [None])]
    assert rows(pg, "select id, tags from profile_tags order by id, tags") == sorted(
        expected, key=lambda r: (r[0], r[1] or ""))


def test_uc025_charges_upserted_from_offset_pages(tmp_path: Path, pg: str, web: ApiServer) -> None:
    run(catalog(tmp_path, "uc025_payment_gateway"), "uc025_payment_gateway")
    assert rows(pg, "select id, amount_cents from charges order by id") == [
        (u["id"], round(u["score"] * 100)) for u in USERS]


def test_uc026_only_changed_records_synced(tmp_path: Path, pg: str, web: ApiServer) -> None:
    run(catalog(tmp_path, "uc026_crm_api_sync"), "uc026_crm_api_sync")
    assert rows(pg, "select id from crm_contacts order by id") == [
        (u["id"],) for u in USERS if u["updated_at"] >= "2024-01-10T00:00:00"]


def test_uc027_opted_in_contacts_posted_in_batches(tmp_path: Path, pg: str, web: ApiServer) -> None:
    contacts = [(i, f"Person{i}@Example.com", i % 3 != 0) for i in range(1, 13)]
    execute(pg, "create table contacts (id int, email text, opted_in boolean)")
    insert(pg, "contacts", contacts)
    run(catalog(tmp_path, "uc027_marketing_api"), "uc027_marketing_api")
    assert sorted(r["email_address"] for r in web.state.records) == sorted(
        e.lower() for _, e, ok in contacts if ok)
    assert {r["status"] for r in web.state.records} == {"subscribed"}
    assert len([r for r in web.state.received if r["path"] == "/apikey/lists/members"]) == 2


def test_uc028_report_pages_summarised_per_city(tmp_path: Path, web: ApiServer) -> None:
    folder = catalog(tmp_path, "uc028_analytics_api")
    run(folder, "uc028_analytics_api")
    df = pd.json_normalize(USERS)
    expected = df.groupby("address.city").agg(n=("id", "count"), s=("score", "sum"))
    assert lite(folder, "select city, users, total_score from uc028_city_report "
                        "order by city") == [(c, r.n, r.s) for c, r in expected.iterrows()]


# ----------------------------------------------------------------------------- object stores
@pytest.fixture
def lake(monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """A fresh moto S3 bucket behind the catalog's ``lake`` connection."""
    store = make_store("s3")
    for name, key in {"NEXUS_UC_S3_BUCKET": "bucket", "NEXUS_UC_S3_ENDPOINT": "endpoint_url",
                      "NEXUS_UC_S3_ACCESS_KEY": "access_key",
                      "NEXUS_UC_S3_SECRET_KEY": "secret_key"}.items():
        monkeypatch.setenv(name, store.params[key])
    monkeypatch.setenv("AWS_DEFAULT_REGION", store.params["region"])
    yield store
    cleanup(store)


@pytest.mark.s3
def test_uc046_parquet_object_loaded(tmp_path: Path, pg: str, lake) -> None:
    df = pd.read_csv(DATA / "uc031_customers.csv")
    lake.put("data/customers.parquet", df.to_parquet(index=False))
    run(catalog(tmp_path, "uc046_s3_to_database"), "uc046_s3_to_database")
    assert rows(pg, "select count(*), sum(c_custkey), round(sum(c_acctbal)::numeric, 2) "
                    "from s3_customers") == [
        (len(df), int(df.c_custkey.sum()), Decimal(str(round(df.c_acctbal.sum(), 2))))]


@pytest.mark.s3
def test_uc047_every_csv_under_the_prefix_loaded(tmp_path: Path, pg: str, lake) -> None:
    for day in ("day1", "day2"):
        lake.put(f"data/2024/{day}.csv", (DATA / f"uc047_{day}.csv").read_bytes())
    lake.put("data/2024/readme.txt", b"not a csv")
    run(catalog(tmp_path, "uc047_s3_batch"), "uc047_s3_batch")
    frames = [pd.read_csv(DATA / f"uc047_{d}.csv") for d in ("day1", "day2")]
    got = rows(pg, "select _source_file, count(*), sum(reading) from sensor_readings "
                   "group by 1 order by 1")
    assert [(f.rsplit("/", 1)[1], n, s) for f, n, s in got] == [
        (f"{d}.csv", len(f), int(f.reading.sum())) for d, f in zip(("day1", "day2"), frames,
                                                                     strict=True)]


@pytest.fixture
def blob(monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """A fresh Azurite container behind the catalog's ``NEXUS_UC_AZURE_*`` variables."""
    store = make_store("azure_blob")
    for name, key in {"NEXUS_UC_AZURE_ACCOUNT": "account_name", "NEXUS_UC_AZURE_KEY": "account_key",
                      "NEXUS_UC_AZURE_URL": "account_url",
                      "NEXUS_UC_AZURE_CONTAINER": "container"}.items():
        monkeypatch.setenv(name, store.params[key])
    yield store
    cleanup(store)


@pytest.mark.azurite
def test_uc048_csv_blob_loaded(tmp_path: Path, blob) -> None:
    blob.put("customers/2024/data.csv", (DATA / "uc031_customers.csv").read_bytes())
    folder = catalog(tmp_path, "uc048_azure_blob")
    run(folder, "uc048_azure_blob")
    df = csv("uc031_customers.csv")
    assert lite(folder, "select c_custkey, c_name from uc048_customers order by c_custkey") == [
        (r.c_custkey, r.c_name) for r in df.itertuples()]


@pytest.mark.s3
@pytest.mark.azurite
def test_uc050_s3_objects_migrated_to_one_azure_parquet(tmp_path: Path, lake, blob) -> None:
    for day in ("day1", "day2"):
        lake.put(f"data/2024/{day}.csv", (DATA / f"uc047_{day}.csv").read_bytes())
    run(catalog(tmp_path, "uc050_s3_to_azure"), "uc050_s3_to_azure")
    migrated = pq.read_table(pa.BufferReader(blob.get("migrated/readings.parquet"))).to_pandas()
    expected = pd.concat([csv("uc047_day1.csv"), csv("uc047_day2.csv")])
    assert sorted(map(tuple, migrated[["event_id", "device", "reading"]].values.tolist())) == \
        sorted(map(tuple, expected.values.tolist()))
