"""Row rules on real PostgreSQL: good rows to PostgreSQL, rejected rows (with reason and time)
to a Parquet file or a PostgreSQL table in the same run; an ``action: fail`` rule and a failing
quarantine target leave every target as it was; the rules' asset check results are in the
Dagster instance."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from nexus_dagster.connectors.database import DatabaseConnector
from nexus_dagster.dagster.factory import build_definitions
from nexus_dagster.spec.loader import load_project
from tests.integration.database.helpers import execute as sql
from tests.integration.database.helpers import fetch, scalar
from tests.support import endpoint_events, run_job

pytestmark = pytest.mark.postgres

ROWS = [  # id, status, amount, email
    (1, "paid", 10.5, "ann@example.com"),
    (2, "paid", -3.0, "bob@example.com"),     # amount below 0
    (3, "refunded", 7.0, "cy@example.com"),   # status not accepted
    (4, None, 1.0, "di@example.com"),         # status null: passes accepted_values
    (5, "open", 2.0, "not-an-email"),         # email regex
    (6, "open", -1.0, "eve"),                 # amount and email
    (7, "paid", 99.0, "fay@example.com"),
]
RULES = [
    {"column": "amount", "check": "range", "min": 0},
    {"column": "status", "check": "accepted_values", "values": ["paid", "open"]},
    {"column": "email", "check": "regex", "pattern": "[^@]+@[^@]+"},
]


def _orders(db: DatabaseConnector) -> None:
    sql(db, "CREATE TABLE orders (id INTEGER PRIMARY KEY, status TEXT, amount NUMERIC(10,2), "
            "email TEXT)",
        *[f"INSERT INTO orders VALUES ({i}, {'NULL' if s is None else repr(s)}, {a}, '{e}')"
          for i, s, a, e in ROWS])


def _expected(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """pandas' answer: the good rows, and the reason text of every rejected row."""
    amount = frame.amount < 0
    status = frame.status.notna() & ~frame.status.isin(["paid", "open"])
    email = frame.email.notna() & ~frame.email.str.fullmatch(r"[^@]+@[^@]+").astype(bool)
    texts = [(amount, "amount_range: amount >= 0"),
             (status, "status_accepted_values: status in ['paid', 'open']"),
             (email, "email_regex: email matches '[^@]+@[^@]+'")]
    bad = amount | status | email
    reasons = pd.Series(["; ".join(t for flag, t in texts if flag[i]) for i in frame.index],
                        index=frame.index)
    return frame[~bad], reasons[bad]


def _frame() -> pd.DataFrame:
    return pd.DataFrame(ROWS, columns=["id", "status", "amount", "email"])


def _project(tmp_path: Path, job: dict) -> Path:
    folder = tmp_path / "job_specs"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{job['name']}.yaml").write_text(yaml.safe_dump(job, sort_keys=False))
    return folder


def _job(pg: DatabaseConnector, rejects: dict, rules: list[dict] | None = None) -> dict:
    return {
        "name": "orders_gate",
        "sources": [{"name": "orders", "source_type": "database",
                     "connection_params": dict(pg.params), "table": "orders"}],
        "targets": [
            {"name": "clean", "target_type": "database", "connection_params": dict(pg.params),
             "table": "orders_clean"},
            rejects,
        ],
        "rules": rules if rules is not None else RULES,
        "quarantine_target": "rejects",
    }


def _checksum(pg: DatabaseConnector, table: str) -> str:
    return scalar(pg, f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
                      f"FROM {table} AS t")


def _latest_checks(instance: dg.DagsterInstance, asset: dg.AssetKey,
                   names: list[str]) -> dict[str, dg.AssetCheckEvaluation]:  # fmt: skip
    """check name -> its latest evaluation, read back from the instance's event log."""
    keys = [dg.AssetCheckKey(asset, name) for name in names]
    records = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    return {key.name: record.event.dagster_event.event_specific_data
            for key, record in records.items() if record.event is not None}


def _clean_key(result: dg.ExecuteInProcessResult) -> dg.AssetKey:
    return next(e.materialization.asset_key for e in result.get_asset_materialization_events()
                if e.materialization.metadata["nexus/target"].value == "clean")


def test_good_rows_to_postgres_and_rejects_with_reasons_to_parquet(pg, tmp_path) -> None:
    _orders(pg)
    rejects = {"name": "rejects", "target_type": "file", "file_path": "rejects/orders.parquet",
               "file_format": "parquet"}
    folder = _project(tmp_path, _job(pg, rejects))
    before = dt.datetime.now(dt.UTC)
    with dg.instance_for_test() as instance:
        result = run_job(folder, "orders_gate", instance)
        assert result.success
        good, reasons = _expected(_frame())
        assert fetch(pg, "SELECT id FROM orders_clean ORDER BY id") == [(i,) for i in good.id]
        rejected = pq.read_table(tmp_path / "rejects/orders.parquet").to_pandas()
        assert list(rejected.id) == list(_frame().id[reasons.index])
        assert list(rejected._reject_reason) == list(reasons)
        assert (rejected._rejected_at >= pd.Timestamp(before)).all()
        assert str(rejected._rejected_at.dt.tz) == "UTC"

        events = endpoint_events(result)
        clean = events["orders_gate/clean"]
        assert clean["nexus/rules_rows_checked"].value == 7
        assert clean["nexus/rules_rows_passed"].value == len(good)
        assert clean["nexus/rows_quarantined"].value == len(reasons)
        assert clean["nexus/rule_failures"].value == {
            "amount_range": 2, "status_accepted_values": 1, "email_regex": 2}
        assert events["orders_gate/rejects"]["dagster/row_count"].value == len(reasons)

        checks = _latest_checks(instance, _clean_key(result),
                                ["amount_range", "status_accepted_values", "email_regex"])
        assert {n: (c.passed, c.severity) for n, c in checks.items()} == {
            "amount_range": (False, dg.AssetCheckSeverity.WARN),
            "status_accepted_values": (False, dg.AssetCheckSeverity.WARN),
            "email_regex": (False, dg.AssetCheckSeverity.WARN),
        }
        assert checks["amount_range"].metadata["nexus/rows_quarantined"].value == 2


def test_rejects_to_a_postgres_table_and_passing_rule_check_passes(pg, tmp_path) -> None:
    _orders(pg)
    rejects = {"name": "rejects", "target_type": "database",
               "connection_params": dict(pg.params), "table": "orders_rejects"}
    rules = [*RULES, {"column": "id", "check": "not_null", "name": "id_present"}]
    folder = _project(tmp_path, _job(pg, rejects, rules))
    with dg.instance_for_test() as instance:
        result = run_job(folder, "orders_gate", instance)
        assert result.success
        good, reasons = _expected(_frame())
        assert fetch(pg, "SELECT id FROM orders_clean ORDER BY id") == [(i,) for i in good.id]
        rows = fetch(pg, "SELECT id, _reject_reason FROM orders_rejects ORDER BY id")
        assert rows == list(zip(_frame().id[reasons.index], reasons, strict=True))
        column_type = scalar(pg, "SELECT data_type FROM information_schema.columns WHERE "
                                 "table_name = 'orders_rejects' AND column_name = '_rejected_at'")
        assert column_type == "timestamp with time zone"
        check = _latest_checks(instance, _clean_key(result), ["id_present"])["id_present"]
        assert check.passed
        assert check.metadata["nexus/rows_checked"].value == 7
        assert check.metadata["nexus/rows_broken"].value == 0


def test_fail_rule_stops_the_run_before_any_target_changes(pg, tmp_path) -> None:
    _orders(pg)
    sql(pg, "CREATE TABLE orders_clean (id INTEGER, status TEXT, amount NUMERIC(10,2), "
            "email TEXT)", "INSERT INTO orders_clean VALUES (100, 'old', 1, 'x@y.z')")
    rejects = {"name": "rejects", "target_type": "file", "file_path": "rejects/orders.parquet",
               "file_format": "parquet"}
    rules = [RULES[1], {"column": "amount", "check": "range", "min": 0, "action": "fail"}]
    folder = _project(tmp_path, _job(pg, rejects, rules))
    (tmp_path / "rejects").mkdir()
    (tmp_path / "rejects/orders.parquet").write_bytes(b"previous run's rejects")
    clean_before = _checksum(pg, "orders_clean")
    with dg.instance_for_test() as instance:
        result = run_job(folder, "orders_gate", instance)
        assert not result.success
        message = str(result.get_step_failure_events()[0].step_failure_data.error.message)
        assert "rule 'amount_range'" in message
        assert "2 of 7 rows break it" in message
        assert "-3.0" in message and "-1.0" in message
        assert _checksum(pg, "orders_clean") == clean_before
        assert (tmp_path / "rejects/orders.parquet").read_bytes() == b"previous run's rejects"
        assert not result.get_asset_materialization_events()
        defs = build_definitions(load_project(folder))
        key = next(k for k in defs.resolve_asset_graph().get_all_asset_keys()
                   if k.path[-1] == "orders_clean")
        checks = _latest_checks(instance, key, ["amount_range", "status_accepted_values"])
        assert (checks["amount_range"].passed, checks["amount_range"].severity) == (
            False, dg.AssetCheckSeverity.ERROR)
        assert checks["amount_range"].metadata["nexus/rows_broken"].value == 2
        assert checks["status_accepted_values"].severity == dg.AssetCheckSeverity.WARN


def test_failing_quarantine_target_fails_the_run_before_other_targets(pg, tmp_path) -> None:
    _orders(pg)
    sql(pg, "CREATE TABLE orders_clean (id INTEGER, status TEXT, amount NUMERIC(10,2), "
            "email TEXT)", "INSERT INTO orders_clean VALUES (100, 'old', 1, 'x@y.z')",
        # the rejects table refuses every row: a real load failure of the quarantine target
        "CREATE TABLE orders_rejects (id INTEGER, status TEXT, amount NUMERIC(10,2), "
        "email TEXT, _reject_reason TEXT, _rejected_at TIMESTAMPTZ, "
        "reviewed_by TEXT NOT NULL)")
    rejects = {"name": "rejects", "target_type": "database",
               "connection_params": dict(pg.params), "table": "orders_rejects"}
    folder = _project(tmp_path, _job(pg, rejects))  # spec order: clean, then rejects
    clean_before = _checksum(pg, "orders_clean")
    with dg.instance_for_test() as instance:
        result = run_job(folder, "orders_gate", instance)
        assert not result.success
        message = str(result.get_step_failure_events()[0].step_failure_data.error.message)
        assert "reviewed_by" in message
        assert _checksum(pg, "orders_clean") == clean_before
        assert scalar(pg, "SELECT count(*) FROM orders_rejects") == 0
        assert not result.get_asset_materialization_events()


def test_a_postgres_to_postgres_job_with_rules_takes_the_general_plan(pg, tmp_path) -> None:
    _orders(pg)
    job = _job(pg, {})
    job["targets"] = job["targets"][:1]
    job["rules"] = [{"column": "id", "check": "not_null", "action": "fail"}]
    del job["quarantine_target"]
    with dg.instance_for_test() as instance:
        result = run_job(_project(tmp_path, job), "orders_gate", instance)
        assert result.success
        clean = endpoint_events(result)["orders_gate/clean"]
        assert clean["nexus/plan"].value == "general"  # the COPY pipe declined the job
        assert clean["nexus/rules_rows_passed"].value == len(ROWS)
        assert clean["nexus/rows_quarantined"].value == 0
        assert scalar(pg, "SELECT count(*) FROM orders_clean") == len(ROWS)
