"""The use-case catalog (examples/use_cases), cases 51-100: each spec runs end to end through
Dagster on a copy of examples/ against files, SQLite, PostgreSQL and moto S3, and its result
is checked against the same input computed here with pandas."""

from __future__ import annotations

import io
import math
import shutil
import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from cryptography.fernet import Fernet

from tests.integration.use_cases.helpers import execute, insert, rows, run
from tests.support import Store, cleanup, make_store

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
DATA = EXAMPLES / "use_cases" / "data"


@pytest.fixture
def catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of examples/ (runs write under it, never into the repo); returns its spec
    folder."""
    shutil.copytree(EXAMPLES, tmp_path / "examples", ignore=shutil.ignore_patterns("output"))
    monkeypatch.setenv("NEXUS_UC_PII_SALT", "catalog-test-salt")
    return tmp_path / "examples" / "use_cases"


@pytest.fixture
def pg(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh PostgreSQL database behind the catalog's ``pg`` connection."""
    monkeypatch.setenv("NEXUS_UC_PG_URL", pg_url)
    return pg_url


@pytest.fixture
def lake(monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """A fresh moto S3 bucket behind the catalog's ``lake`` connection."""
    store = make_store("s3")
    monkeypatch.setenv("NEXUS_UC_S3_BUCKET", store.params["bucket"])
    monkeypatch.setenv("NEXUS_UC_S3_ENDPOINT", store.params["endpoint_url"])
    monkeypatch.setenv("NEXUS_UC_S3_ACCESS_KEY", store.params["access_key"])
    monkeypatch.setenv("NEXUS_UC_S3_SECRET_KEY", store.params["secret_key"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", store.params["region"])
    yield store
    cleanup(store)


def data(name: str, **kwargs) -> pd.DataFrame:
    """An input file of the catalog as pandas reads it."""
    if name.endswith(".jsonl"):
        return pd.read_json(DATA / name, lines=True, **kwargs)
    return pd.read_csv(DATA / name, **kwargs)


def lite(catalog: Path, query: str) -> pd.DataFrame:
    """A query on the catalog's ``lite`` SQLite database (output/uc.db)."""
    with sqlite3.connect(catalog.parent / "output" / "uc.db") as con:
        return pd.read_sql_query(query, con)


def output(catalog: Path, name: str) -> Path:
    return catalog.parent / "output" / name


# ----------------------------------------------------------------------- transformations 61-75
def test_uc061_daily_sales_and_moving_averages(catalog: Path) -> None:
    run(catalog, "uc061_time_series")
    src = data("uc061_orders.csv", parse_dates=["date"])
    daily = src.groupby("date").agg(sales=("sales", "sum"), orders=("order_id", "count"),
                                    customers=("customer_id", "nunique")).reset_index()
    daily["sales_ma7"] = daily["sales"].rolling(7).mean()
    daily["sales_wow"] = daily["sales"] / daily["sales"].shift(7) - 1
    got = pd.read_csv(output(catalog, "uc061_daily_sales.csv"))
    assert len(got) == 40 and got["sales_ma30"].notna().sum() == 11
    assert got["orders"].tolist() == daily["orders"].tolist()
    assert got["customers"].tolist() == daily["customers"].tolist()
    np.testing.assert_allclose(got["sales"], daily["sales"])
    np.testing.assert_allclose(got["sales_ma7"], daily["sales_ma7"], equal_nan=True)
    np.testing.assert_allclose(got["sales_wow"], daily["sales_wow"], equal_nan=True)


def test_uc062_rfm_scores_and_segments(catalog: Path) -> None:
    run(catalog, "uc062_rfm_segmentation")
    src = data("uc062_orders.csv", parse_dates=["order_date"])
    rfm = src.groupby("customer_id").agg(last=("order_date", "max"),
                                         frequency=("order_id", "count"),
                                         monetary=("amount", "sum")).reset_index()
    rfm["recency"] = (pd.Timestamp("2024-07-01") - rfm["last"]).dt.days

    def ntile(order: pd.Series) -> pd.Series:  # 10 customers in 5 tiles: 2 per tile
        return order.rank(method="first").astype(int).sub(1) // 2 + 1

    r = ntile(-rfm["recency"])
    f = ntile(rfm["frequency"] + rfm["customer_id"] / 100)
    m = ntile(rfm["monetary"])
    got = lite(catalog, "select * from uc062_rfm order by customer_id")
    assert got["recency"].tolist() == rfm["recency"].tolist()
    assert got["r_score"].tolist() == r.tolist()
    assert got["f_score"].tolist() == f.tolist()
    assert got["m_score"].tolist() == m.tolist()
    assert got["rfm_score"].tolist() == [f"{a}{b}{c}" for a, b, c in zip(r, f, m, strict=True)]
    segments = [
        "Champions" if a >= 4 and b >= 4 and c >= 4 else "Loyal Customers" if a >= 3 and b >= 3
        else "Potential Loyalists" if a >= 4 else "At Risk" if b >= 4 else "Lost"
        for a, b, c in zip(r, f, m, strict=True)]
    assert got["segment"].tolist() == segments


def test_uc063_anomalies_are_the_outliers_pandas_finds(catalog: Path) -> None:
    run(catalog, "uc063_anomaly_detection")
    src = data("uc063_transactions.csv")
    z = (src["amount"] - src["amount"].mean()).abs() / src["amount"].std()
    q1, q3 = src["amount"].quantile(0.25), src["amount"].quantile(0.75)
    outlier = (src["amount"] < q1 - 1.5 * (q3 - q1)) | (src["amount"] > q3 + 1.5 * (q3 - q1))
    ma = src["amount"].rolling(10).mean()
    spike = ((src["amount"] - ma).abs() / ma) > 1
    expected = src[(z > 3) | outlier | spike.fillna(False)]["txn_id"].tolist()
    scored = pq.read_table(output(catalog, "uc063_scored.parquet")).to_pandas()
    np.testing.assert_allclose(scored["z_score"], z)
    assert scored["is_outlier"].tolist() == outlier.tolist()
    got = lite(catalog, "select txn_id from uc063_anomalies order by txn_id")
    assert got["txn_id"].tolist() == expected and 18 in expected


def test_uc064_keywords_and_sentiment(catalog: Path) -> None:
    run(catalog, "uc064_text_mining")
    got = pd.read_json(output(catalog, "uc064_review_terms.jsonl"), lines=True)
    assert got["clean_text"].tolist()[0] == "great pen the best i have used"
    assert got["sentiment_score"].tolist() == [2, -3, 3, 0, 3, -4]
    assert got["keywords"].tolist()[5] == "bad, worst, purchase"


def test_uc065_haversine_distance_categories(catalog: Path) -> None:
    run(catalog, "uc065_geospatial")
    src = data("uc065_stores.csv")
    lat1, lon1 = math.radians(40.7128), math.radians(-74.0060)
    lat2, lon2 = np.radians(src["latitude"]), np.radians(src["longitude"])
    a = (np.sin((lat2 - lat1) / 2) ** 2
         + math.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2)
    km = 2 * 6371 * np.arcsin(np.sqrt(a))
    labels = pd.cut(km, bins=[0, 50, 200, 500, 100000],
                    labels=["Local", "Regional", "National", "International"])
    got = lite(catalog, "select * from uc065_stores order by store_id")
    np.testing.assert_allclose(got["distance_from_hq"], km.round(3), atol=1e-3)
    assert got["distance_category"].tolist() == list(labels)


def test_uc067_minmax_and_zscore(catalog: Path) -> None:
    run(catalog, "uc067_normalization")
    src = data("uc067_customers.csv")
    got = pd.read_csv(output(catalog, "uc067_scaled.csv"))
    spent = src["total_spent"]
    np.testing.assert_allclose(got["total_spent_minmax"],
                               ((spent - spent.min()) / (spent.max() - spent.min())).round(6))
    np.testing.assert_allclose(got["orders_z"], ((src["orders"] - src["orders"].mean())
                                                 / src["orders"].std()).round(6))


def test_uc068_imputes_segment_median_and_mean(catalog: Path) -> None:
    run(catalog, "uc068_imputation")
    src = data("uc068_customers.csv")
    age = src["age"].fillna(src.groupby("segment")["age"].transform("median"))
    income = src["income"].fillna(round(src["income"].mean(), 2))
    got = lite(catalog, "select * from uc068_customers order by customer_id")
    np.testing.assert_allclose(got["age"], age)
    np.testing.assert_allclose(got["income"], income)
    assert got["age_imputed"].sum() == src["age"].isna().sum() == 3
    assert got["income_imputed"].sum() == src["income"].isna().sum() == 2


def test_uc069_one_hot_and_label_codes(catalog: Path) -> None:
    run(catalog, "uc069_categorical_encoding")
    src = data("uc069_customers.csv")
    got = pd.read_csv(output(catalog, "uc069_encoded.csv"))
    expected = pd.get_dummies(src["segment"], prefix="segment", dtype=int)
    for column in expected.columns:
        assert got[column].tolist() == expected[column].tolist()
    assert got["segment_label"].tolist() == src["segment"].astype("category").cat.codes.tolist()


def test_uc072_fixed_bins_and_income_quartiles(catalog: Path) -> None:
    run(catalog, "uc072_binning")
    src = data("uc072_customers.csv")
    got = lite(catalog, "select * from uc072_binned order by customer_id")
    bins = pd.cut(src["total_spent"], [-np.inf, 100, 250, 500, np.inf], right=False,
                  labels=["0-100", "100-250", "250-500", "500+"])
    assert got["spend_bin"].tolist() == list(bins)
    ranked = src.sort_values(["income", "customer_id"], na_position="last")
    tiles = pd.Series(np.arange(len(ranked)) // 5 + 1, index=ranked.index)
    assert got["income_quartile"].tolist() == tiles.sort_index().tolist()


def test_uc073_principal_components(catalog: Path) -> None:
    run(catalog, "uc073_pca")
    x = data("uc073_customers.csv")[["orders", "total_spent"]].to_numpy(float)
    x = (x - x.mean(axis=0)) / x.std(axis=0, ddof=1)
    vectors = np.linalg.eigh(np.cov(x, rowvar=False))[1][:, ::-1]
    got = pd.read_csv(output(catalog, "uc073_components.csv"))
    for i in range(2):
        axis = vectors[:, i] * np.sign(vectors[np.argmax(np.abs(vectors[:, i])), i])
        np.testing.assert_allclose(got[f"pc{i + 1}"], x @ axis, atol=1e-5)


def test_uc074_every_order_under_every_scenario(catalog: Path) -> None:
    run(catalog, "uc074_data_augmentation")
    cross = data("uc074_orders.csv").merge(data("uc074_scenarios.csv"), how="cross")
    got = pd.read_csv(output(catalog, "uc074_augmented.csv"))
    assert len(got) == 24
    price = (cross["unit_price"] * cross["price_factor"]).round(2)
    qty = (cross["quantity"] * cross["demand_factor"]).round(0)
    np.testing.assert_allclose(got["unit_price"], price)
    np.testing.assert_allclose(got["revenue"], (price * qty).round(2))


def test_uc075_business_logic_on_open_orders(catalog: Path) -> None:
    run(catalog, "uc075_business_rules")
    src = data("uc075_orders.csv")
    src = src[src["o_orderstatus"].isin(["O", "P"])].copy()
    expedite = src["o_orderpriority"].str[:2].isin(["1-", "2-"])
    fee = np.where(src["o_totalprice"] >= 2000, 0, np.where(expedite, 25, 9.5))
    got = lite(catalog, "select * from uc075_orders order by o_orderkey")
    assert got["o_orderkey"].tolist() == src["o_orderkey"].tolist()
    np.testing.assert_allclose(got["total_due"], src["o_totalprice"] + fee)


# ----------------------------------------------------------------------- streaming-like 80-85
def test_uc080_out_of_range_readings_are_quarantined(catalog: Path) -> None:
    run(catalog, "uc080_iot_sensors")
    src = data("uc080_readings.jsonl")
    bad = src[(src["temperature"] < -40) | (src["temperature"] > 85)]
    good = lite(catalog, "select count(*) n, sum(temperature) t from uc080_readings")
    assert good["n"][0] == len(src) - len(bad) == 34
    assert good["t"][0] == pytest.approx(src.drop(bad.index)["temperature"].sum())
    rejects = lite(catalog, "select temperature, _reject_reason from uc080_rejects")
    assert sorted(rejects["temperature"]) == sorted(bad["temperature"])
    assert all(r.startswith("temperature_range") for r in rejects["_reject_reason"])


def test_uc081_fixed_width_log_counts(catalog: Path) -> None:
    run(catalog, "uc081_log_aggregation")
    lines = (DATA / "uc081_app.log").read_text().splitlines()
    src = pd.DataFrame({"hour": [x[:13] for x in lines],
                        "service": [x[27:35].strip() for x in lines],
                        "level": [x[21:26].strip() for x in lines]})
    expected = src.groupby(["hour", "service", "level"]).size().reset_index(name="lines")
    got = lite(catalog, "select * from uc081_log_counts order by hour, service, level")
    assert got.to_dict("records") == expected.to_dict("records")


def test_uc083_balances_folded_from_events(catalog: Path, pg: str) -> None:
    run(catalog, "uc083_event_sourcing")
    src = data("uc083_events.jsonl")
    src["delta"] = np.where(src["event_type"] == "deposit", src["amount"], -src["amount"])
    expected = src.groupby("account_id").agg(balance=("delta", "sum"), events=("event_id", "count"))
    got = rows(pg, "select account_id, balance, events from uc083_balances order by account_id")
    assert [(a, round(b, 2), e) for a, b, e in got] == [
        (a, round(r.balance, 2), r.events) for a, r in expected.iterrows()]


def test_uc084_micro_batches_load_only_new_rows(catalog: Path, pg: str) -> None:
    import dagster as dg

    from tests.support import run_job

    execute(pg, "create table uc084_clicks (id int primary key, page text)")
    insert(pg, "uc084_clicks", [(i, f"/p{i % 3}") for i in range(1, 701)])
    instance = dg.DagsterInstance.ephemeral()
    assert run_job(catalog, "uc084_micro_batch", instance).success
    insert(pg, "uc084_clicks", [(i, "/new") for i in range(701, 751)])
    assert run_job(catalog, "uc084_micro_batch", instance).success
    assert rows(pg, "select count(*), count(distinct id), sum(id) from uc084_clicks_copy") == [
        (750, 750, sum(range(1, 751)))]


# ----------------------------------------------------------------------- quality 86-100
def test_uc086_profile_per_column(catalog: Path) -> None:
    run(catalog, "uc086_data_profiling")
    src = data("uc086_customers.csv")
    got = pd.read_json(output(catalog, "uc086_profile.json")).set_index("column")
    assert got.index.tolist() == src.columns.tolist()
    assert got["nulls"].to_dict() == src.isnull().sum().to_dict()
    assert got["distinct"].to_dict() == src.nunique().to_dict()
    assert got.loc["total_spent", "mean"] == pytest.approx(src["total_spent"].mean())
    assert got.loc["income", "std"] == pytest.approx(src["income"].std())


def test_uc087_pii_masked_and_dropped(catalog: Path, pg: str) -> None:
    run(catalog, "uc087_pii_masking")
    got = rows(pg, "select customer_id, email_masked, phone_masked, ssn_masked "
                   "from uc087_customers order by customer_id")
    assert got == [
        (1, "a***@example.com", "***-***-3344", "***-**-6789"),
        (2, "b***@example.org", "***-***-1200", "***-**-4321"),
        (3, None, "***-***-9999", None),
        (4, "D***@Example.com", None, "***-**-3333"),
    ]
    columns = [r[0] for r in rows(pg, "select column_name from information_schema.columns "
                                      "where table_name = 'uc087_customers'")]
    assert not {"email", "phone", "ssn"} & set(columns)


def test_uc090_duplicates_across_sources(catalog: Path) -> None:
    run(catalog, "uc090_duplicate_detection")
    src = pd.concat([data("uc090_crm.csv").assign(source_system="crm"),
                     data("uc090_shop.csv").assign(source_system="shop")])
    src["email_key"] = src["email"].str.strip().str.lower()
    src["email_rows"] = src.groupby("email_key")["customer_id"].transform("count")
    got = lite(catalog, "select source_system, customer_id, email_rows, is_duplicate, "
                        "first_customer_id from uc090_duplicates")
    assert got["email_rows"].tolist() == src["email_rows"].tolist()
    assert got["is_duplicate"].sum() == (src["email_rows"] > 1).sum() == 6
    assert got.set_index("customer_id")["first_customer_id"][4] == 1


def test_uc091_reference_semi_and_anti_join(catalog: Path) -> None:
    run(catalog, "uc091_reference_validation")
    orders, countries = data("uc091_orders.csv"), data("uc091_countries.csv")
    keys = set(zip(countries["code"], countries["currency"], strict=True))
    ok = [k in keys for k in zip(orders["country_code"], orders["currency"], strict=True)]
    valid = lite(catalog, "select order_id from uc091_valid_orders order by order_id")
    invalid = lite(catalog, "select order_id from uc091_exceptions order by order_id")
    assert valid["order_id"].tolist() == orders[ok]["order_id"].tolist()
    assert invalid["order_id"].tolist() == orders[[not x for x in ok]]["order_id"].tolist()


def test_uc092_rule_breakers_quarantined_with_reasons(catalog: Path) -> None:
    run(catalog, "uc092_business_rule_enforcement")
    good = lite(catalog, "select order_id, net_amount from uc092_orders order by order_id")
    assert good.values.tolist() == [[1, 10.0], [2, 89.1], [6, 9.5]]
    bad = lite(catalog, "select order_id, _reject_reason from uc092_violations order by order_id")
    assert bad["order_id"].tolist() == [3, 4, 5]
    assert [r.split(":")[0] for r in bad["_reject_reason"]] == [
        "positive_quantity", "max_discount", "ships_after_order"]


def test_uc093_reconciliation_statuses(catalog: Path) -> None:
    run(catalog, "uc093_reconciliation")
    ledger = data("uc093_ledger.csv").groupby("account")["amount"].sum()
    bank = data("uc093_bank.csv").groupby("account")["amount"].sum()
    got = lite(catalog, "select account, difference, status from uc093_reconciliation "
                        "order by account").set_index("account")
    both = ledger.index.union(bank.index)
    assert got.index.tolist() == both.tolist()
    diff = ledger.reindex(both, fill_value=0) - bank.reindex(both, fill_value=0)
    np.testing.assert_allclose(got["difference"], diff.round(2))
    assert got["status"].to_dict() == {"A1": "matched", "A2": "mismatch", "A3": "matched",
                                       "A4": "missing_in_bank", "A5": "missing_in_ledger"}


def test_uc094_audit_trail_keeps_versions(catalog: Path, pg: str) -> None:
    execute(pg, "create table uc094_customers (customer_id int primary key, name text, "
                "city text, segment text)",
            "insert into uc094_customers values (1, 'Ann', 'Boston', 'retail'), "
            "(2, 'Bob', 'Denver', 'online'), (3, 'Cid', 'Austin', 'retail')")
    import dagster as dg

    from tests.support import run_job

    instance = dg.DagsterInstance.ephemeral()
    assert run_job(catalog, "uc094_audit_trail", instance).success
    execute(pg, "update uc094_customers set city = 'Chicago' where customer_id = 1",
            "delete from uc094_customers where customer_id = 3")
    assert run_job(catalog, "uc094_audit_trail", instance).success
    got = rows(pg, "select customer_id, city, is_current, valid_to is null "
                   "from uc094_customer_history order by customer_id, valid_from")
    assert got == [(1, "Boston", False, False), (1, "Chicago", True, True),
                   (2, "Denver", True, True), (3, "Austin", False, False)]


def test_uc095_retention_deletes_old_events(catalog: Path, pg: str) -> None:
    execute(pg, "create table uc095_events (event_id int primary key, event_date date, kind text)",
            "insert into uc095_events values (1, '2023-12-31', 'a'), (2, '2024-01-01', 'b'), "
            "(3, '2024-03-05', 'c')",
            "create table uc095_events_dw (event_id int primary key, event_date date, kind text)",
            "insert into uc095_events_dw values (10, '2022-06-01', 'old'), "
            "(11, '2024-02-02', 'kept')")
    run(catalog, "uc095_retention")
    assert rows(pg, "select event_id from uc095_events_dw order by event_id") == [
        (2,), (3,), (11,)]


def test_uc096_erased_customers_deleted_from_mirror(catalog: Path, pg: str) -> None:
    execute(pg, "create table uc096_customers (customer_id int primary key, email text)",
            "insert into uc096_customers select g, 'c' || g || '@example.com' "
            "from generate_series(1, 6) g",
            "create table uc096_erasure_requests (customer_id int, requested_at date)",
            "insert into uc096_erasure_requests values (2, '2024-05-01'), (5, '2024-05-02')",
            "create table uc096_customers_mirror (customer_id int primary key, email text)",
            "insert into uc096_customers_mirror select g, 'c' || g || '@example.com' "
            "from generate_series(1, 6) g")
    run(catalog, "uc096_gdpr_erasure")
    assert rows(pg, "select customer_id from uc096_customers_mirror order by 1") == [
        (1,), (3,), (4,), (6,)]


def test_uc097_dictionary_lists_every_column(catalog: Path) -> None:
    run(catalog, "uc097_data_dictionary")
    src = data("uc097_customers.csv")
    got = pd.read_csv(output(catalog, "uc097_data_dictionary.csv"))
    assert got["column_name"].tolist() == src.columns.tolist()
    assert got["nullable"].tolist() == src.isnull().any().tolist()


def test_uc099_quarantine_splits_signups(catalog: Path, pg: str) -> None:
    run(catalog, "uc099_error_quarantine")
    assert rows(pg, "select signup_id from uc099_signups order by 1") == [(1,), (7,)]
    got = rows(pg, "select signup_id, _reject_reason from uc099_signups_quarantine order by 1")
    assert [(i, r.split(":")[0]) for i, r in got] == [
        (2, "email_format"), (3, "adult_age"), (4, "known_country"), (5, "email_present"),
        (6, "known_plan")]


def test_uc100_scorecard_shares(catalog: Path) -> None:
    run(catalog, "uc100_quality_scorecard")
    src = data("uc100_customers.csv", dtype={"phone": str})
    email_valid = src["email"].fillna("").str.match(r"^[^@]+@[^@]+\.[a-z]+$")
    age_valid = src["age"].between(0, 120)
    expected = {"rows": 8, "email_completeness": src["email"].notna().mean(),
                "email_validity": email_valid.mean(), "age_validity": age_valid.mean(),
                "phone_completeness": src["phone"].notna().mean(), "uniqueness": 1.0}
    got = lite(catalog, "select * from uc100_scorecard").iloc[0]
    for key, value in expected.items():
        assert got[key] == pytest.approx(value), key
    assert got["overall_score"] == pytest.approx(round(sum(list(expected.values())[1:]) / 5, 4))


# ----------------------------------------------------------------------- cloud 51-60
def test_uc051_new_files_upserted_and_archived(catalog: Path, pg: str, lake: Store) -> None:
    for name in ("uc051_orders_1.csv", "uc051_orders_2.csv"):
        lake.put(f"inbox/orders/{name}", (DATA / name).read_bytes())
    run(catalog, "uc051_s3_event_triggered")
    src = pd.concat([data("uc051_orders_1.csv"), data("uc051_orders_2.csv")])
    assert rows(pg, "select count(*), sum(o_totalprice) from uc051_orders")[0] == (
        21, Decimal(str(round(src["o_totalprice"].sum(), 2))))
    assert lake.listing() == ["archive/orders/uc051_orders_1.csv",
                              "archive/orders/uc051_orders_2.csv"]


def test_uc052_lake_orders_into_warehouse(catalog: Path, pg: str, lake: Store) -> None:
    lake.put("raw/orders/uc052_orders.csv", (DATA / "uc052_orders.csv").read_bytes())
    run(catalog, "uc052_lake_to_warehouse")
    src = data("uc052_orders.csv")
    expected = src.groupby(["o_orderdate", "o_orderstatus"])["o_totalprice"].sum()
    got = rows(pg, "select o_orderdate::text, o_orderstatus, revenue from uc052_daily_revenue "
                   "order by 1, 2")
    assert [(d, s, float(r)) for d, s, r in got] == [
        (d, s, pytest.approx(v)) for (d, s), v in expected.items()]
    assert rows(pg, "select count(*) from uc052_fact_orders") == [(40,)]


def test_uc058_lake_object_is_fernet_encrypted(catalog: Path, lake: Store,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    key = Fernet.generate_key()
    monkeypatch.setenv("MASTER_ENCRYPTION_KEY", key.decode())
    run(catalog, "uc058_encryption_at_rest")
    stored = lake.get("secure/payroll.csv.enc")
    assert b"Ann Lee" not in stored
    got = pd.read_csv(io.BytesIO(Fernet(key).decrypt(stored)))
    pd.testing.assert_frame_equal(got, data("uc058_payroll.csv"))


def test_uc059_compressed_copies_hold_every_row(catalog: Path, lake: Store) -> None:
    run(catalog, "uc059_compression")
    src = data("uc059_lineitem.csv")
    parquet = pq.read_table(io.BytesIO(lake.get("curated/lineitem.parquet"))).to_pandas()
    gzip = pd.read_csv(io.BytesIO(lake.get("curated/lineitem.csv.gz")), compression="gzip")
    for got in (parquet, gzip):
        assert len(got) == 120
        assert got["l_extendedprice"].astype(float).sum() == pytest.approx(
            src["l_extendedprice"].sum())
    plain = (DATA / "uc059_lineitem.csv").stat().st_size
    assert len(lake.get("curated/lineitem.csv.gz")) < plain / 2


def test_uc060_cloud_products_synced_on_premises(catalog: Path, pg: str, lake: Store) -> None:
    execute(pg, "create table uc060_products (sku text primary key, name text, "
                "price numeric(10,2), active boolean)",
            "insert into uc060_products values ('SKU-001', 'pen', 1.20, true), "
            "('SKU-002', 'ink', 7.25, true), ('SKU-003', 'old', 2.00, true), "
            "('SKU-004', 'pad', 3.10, true)")
    lake.put("published/products.csv", (DATA / "uc060_products.csv").read_bytes())
    run(catalog, "uc060_hybrid_sync")
    assert rows(pg, "select sku, price, active from uc060_products order by sku") == [
        ("SKU-001", Decimal("1.50"), True), ("SKU-002", Decimal("7.25"), True),
        ("SKU-004", Decimal("3.10"), True), ("SKU-005", Decimal("0.40"), False)]
