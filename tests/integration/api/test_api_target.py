"""API targets against the real local test API: batches, idempotent retries, reports."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from nexus_dagster.connectors.base import WriteRequest
from nexus_dagster.connectors.rest_api import ApiConnector
from nexus_dagster.errors import LoadError
from nexus_dagster.relation import Relation
from tests.integration.api import server as srv

pytestmark = pytest.mark.api

FAST = {"allow_http": True, "backoff_seconds": 0.01, "max_retries": 3, "timeout_seconds": 5}


def rows(n: int = 23) -> Relation:
    table = pa.table({
        "id": pa.array(range(1, n + 1), pa.int64()),
        "amount": pa.array([Decimal(f"{i}.25") for i in range(1, n + 1)], pa.decimal128(12, 2)),
        "at": pa.array([dt.datetime(2024, 1, 1, tzinfo=dt.UTC)] * n, pa.timestamp("us", "UTC")),
        "note": pa.array(["Zoë" if i == 2 else None for i in range(1, n + 1)], pa.string()),
    })
    return Relation.from_table(table, batch_size=7)


def write(api, path: str, relation: Relation | None = None, **params: Any):
    conn = ApiConnector({**FAST, "api_endpoint": api.url + path, "request_batch_size": 10,
                         **params})
    try:
        return conn.write(relation or rows(), WriteRequest())
    finally:
        conn.close()


def test_batches_are_posted_as_json_arrays(api):
    result = write(api, "/bearer/sink", api_auth={"type": "bearer", "token": srv.TOKEN})
    assert result.rows_loaded == 23
    assert result.extra["rows_sent"] == 23 and result.extra["rows_failed"] == 0
    assert [len(r["body"]) for r in api.state.received] == [10, 10, 3]
    first = api.state.records[0]
    assert first == {"id": 1, "amount": 1.25, "at": "2024-01-01T00:00:00+00:00", "note": None}
    assert api.state.records[1]["note"] == "Zoë"
    keys = [r["idempotency_key"] for r in api.state.received]
    assert len(set(keys)) == 3 and all(keys)


def test_retried_batches_keep_their_idempotency_key(api):
    result = write(api, "/flaky_sink?key=t1")
    assert result.rows_loaded == 23 and result.extra["retries"] == 3
    attempts = Counter(r["idempotency_key"] for r in api.state.received)
    assert sorted(attempts.values()) == [2, 2, 2]  # every batch: a 503, then the same key again
    assert [r["id"] for r in api.state.records] == list(range(1, 24))


def test_one_request_per_record_with_url_template_and_put(api):
    result = write(api, "/sink/items/{id}", api_body="record", api_method="PUT")
    assert result.rows_loaded == 23
    assert [r["path"] for r in api.state.received][:2] == ["/sink/items/1", "/sink/items/2"]
    assert {r["method"] for r in api.state.received} == {"PUT"}


def test_body_key_wraps_the_array(api):
    write(api, "/sink", body_key="records")
    assert api.state.received[0]["body"]["records"][0]["id"] == 1
    assert len(api.state.records) == 23


def test_a_rejected_batch_fails_the_load_and_says_what_was_sent(api):
    with pytest.raises(LoadError, match=r"HTTP 422.*10 row\(s\) were sent"):
        write(api, "/reject_sink")


def test_allow_partial_reports_failed_rows(api):
    result = write(api, "/reject_sink", allow_partial=True)
    assert result.rows_loaded == 13
    assert result.extra["rows_failed"] == 10 and result.extra["requests_failed"] == 1
    assert "HTTP 422" in result.extra["first_error"]


def write_scoped(api, path: str, scope: str | None):
    conn = ApiConnector({**FAST, "api_endpoint": api.url + path, "request_batch_size": 10})
    try:
        return conn.write(rows(), WriteRequest(idempotency_scope=scope))
    finally:
        conn.close()


def test_a_later_run_of_the_same_rows_gets_new_keys_and_is_applied(api):
    """Two runs sending identical rows: an API honouring idempotency keys applies both (the
    keys are scoped by the run), where content-derived keys made it drop the second."""
    write_scoped(api, "/sink", "run-1")
    write_scoped(api, "/sink", "run-2")
    keys = [r["idempotency_key"] for r in api.state.received]
    assert len(keys) == 6 and len(set(keys)) == 6
    assert len(api.state.records) == 46


def test_a_re_execution_of_one_run_repeats_its_keys(api):
    """The same scope (a retry or a re-execution of the same root run) sends the same keys,
    so an API honouring them applies each batch once."""
    write_scoped(api, "/sink", "root-run")
    write_scoped(api, "/sink", "root-run")
    keys = Counter(r["idempotency_key"] for r in api.state.received)
    assert sorted(keys.values()) == [2, 2, 2]
    assert [r["id"] for r in api.state.records] == list(range(1, 24))
