"""API sources against the real local test API: pagination, auth, failures, odd payloads."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pytest

from nexus_dagster.connectors.base import Cursor, ReadRequest
from nexus_dagster.connectors.rest_api import ApiConnector
from nexus_dagster.errors import ConnectorError, DataError, RetriableError, SpecError
from nexus_dagster.secrets import mask
from tests.integration.api import server as srv

pytestmark = pytest.mark.api

FAST = {"allow_http": True, "backoff_seconds": 0.01, "max_retries": 3, "timeout_seconds": 5}


def connector(api, path: str, **params: Any) -> ApiConnector:
    return ApiConnector({**FAST, "api_endpoint": api.url + path, **params})


class Read:
    """A table read from the API, with the relation's stats (pages, retries, ...)."""

    def __init__(self, table: pa.Table, stats: dict[str, Any]):
        self.table, self.stats = table, stats

    def __getattr__(self, name: str) -> Any:
        return getattr(self.table, name)


def read(api, path: str, request: ReadRequest | None = None, **params: Any) -> Read:
    conn = connector(api, path, **params)
    try:
        relation = conn.read(request or ReadRequest(batch_size=10))
        return Read(relation.to_table(), relation.stats)
    finally:
        conn.close()


PAGINATIONS = {
    "page": ("/users/page", {"type": "page", "page_size_param": "per_page", "page_size": 10,
                             "total_pages_path": "meta.total_pages"}),
    "page_until_empty": ("/users/page", {"type": "page"}),
    "offset": ("/users/offset", {"type": "offset", "limit": 10, "total_path": "total"}),
    "cursor": ("/users/cursor", {"type": "cursor", "cursor_path": "meta.next_cursor"}),
    "next_url": ("/users/next", {"type": "next_url", "next_url_path": "links.next"}),
    "link_header": ("/users/link", {"type": "link_header"}),
}


@pytest.mark.parametrize("style", list(PAGINATIONS))
def test_every_pagination_style_reads_every_record_once(api, style):
    path, pagination = PAGINATIONS[style]
    table = read(api, path, api_pagination=pagination)
    assert table.column("id").to_pylist() == list(range(1, 24))
    assert table.column("address.city").to_pylist()[:2] == ["city1", "city2"]
    assert table.column("address.geo.lat").type == pa.float64()
    assert table.column("tags").to_pylist()[:3] == ['["a"]', '["a","b"]', "[]"]
    assert table.column("name").to_pylist()[2] == "Zoë ünïcode"
    assert table.stats["pages"] >= 3


def test_top_level_list_and_auto_detected_records(api):
    assert read(api, "/users").num_rows == 23
    assert read(api, "/users/wrapped").num_rows == 23  # "results"
    assert read(api, "/users/nested", records_path="response.data.items").num_rows == 23


def test_max_pages_caps_the_extraction(api):
    table = read(api, "/users/page", max_pages=2,
                 api_pagination={"type": "page", "page_size_param": "per_page", "page_size": 5})
    assert table.column("id").to_pylist() == list(range(1, 11))


def test_flatten_depth_and_explode(api):
    shallow = read(api, "/users", flatten_depth=0)
    assert json.loads(shallow.column("address").to_pylist()[0])["city"] == "city1"
    exploded = read(api, "/users", explode="tags")
    users = srv.make_users()
    assert exploded.num_rows == sum(max(1, len(u["tags"])) for u in users)
    first = [r for r in exploded.to_pylist() if r["id"] == 2]
    assert [r["tags"] for r in first] == ["a", "b"]
    assert [r["tags"] for r in exploded.to_pylist() if r["id"] == 3] == [None]


AUTHS = {
    "bearer": ("/bearer/users/page", {"type": "bearer", "token": srv.TOKEN}),
    "api_key_header": ("/apikey/users/page", {"type": "api_key", "key": srv.API_KEY}),
    "api_key_query": ("/apikey/users/page", {"type": "api_key", "key": srv.API_KEY,
                                             "name": "api_key", "location": "query"}),
    "basic": ("/basic/users/page", {"type": "basic", "username": srv.BASIC[0],
                                    "password": srv.BASIC[1]}),
}


@pytest.mark.parametrize("style", list(AUTHS))
def test_every_auth_style(api, style):
    path, auth = AUTHS[style]
    table = read(api, path, api_auth=auth, api_pagination={"type": "page"})
    assert table.num_rows == 23


def oauth(api) -> dict[str, Any]:
    return {"type": "oauth2_client_credentials", "url": api.url + "/token",
            "client_id": srv.CLIENT_ID, "client_secret": srv.CLIENT_SECRET}


def test_oauth2_token_fetched_once_and_refreshed_after_401(api):
    conn = connector(api, "/oauth/users/page", api_auth=oauth(api),
                     api_pagination={"type": "page"})
    try:
        assert conn.read(ReadRequest()).to_table().num_rows == 23
        assert api.state.token_requests == 1  # one token for all 4 pages
        api.state.tokens.clear()  # the API revokes every token
        assert conn.read(ReadRequest()).to_table().num_rows == 23
        assert api.state.token_requests == 2
    finally:
        conn.close()


def test_oauth2_token_refreshed_before_expiry(api):
    api.state.token_lifetime = 1  # expires within the safety margin: a new token per request
    table = read(api, "/oauth/users/page", api_auth=oauth(api), api_pagination={"type": "page"})
    assert table.num_rows == 23
    assert api.state.token_requests == 4


def test_oauth2_wrong_secret_is_a_clear_error_without_the_secret(api):
    bad = {**oauth(api), "client_secret": "wrong-secret-value"}
    with pytest.raises(ConnectorError) as info:
        read(api, "/oauth/users", api_auth=bad)
    assert "token" in str(info.value) and "wrong-secret-value" not in mask(info.value)


def test_wrong_credentials_name_url_and_status_but_no_secret(api):
    with pytest.raises(ConnectorError) as info:
        read(api, "/bearer/users", api_headers={"Authorization": "Bearer not-the-token-123"})
    text = mask(str(info.value))
    assert "HTTP 401" in text and "/bearer/users" in text and "api_auth" in text
    assert "not-the-token-123" not in text
    with pytest.raises(ConnectorError) as info:
        read(api, "/apikey/missing", api_params={"access_token": "query-secret-987"},
             api_auth={"type": "api_key", "key": srv.API_KEY, "name": "api_key",
                       "location": "query"})
    text = str(info.value)
    assert "HTTP 404" in text and "access_token=***" in text
    assert srv.API_KEY not in text and "query-secret-987" not in text


def test_429_with_retry_after_is_honoured(api):
    table = read(api, "/rate_limited?key=a")
    assert table.num_rows == 3
    assert table.stats["retries"] == 1 and api.state.counts["429a"] == 2


def test_intermittent_500s_are_retried(api):
    table = read(api, "/flaky?key=b&fail=2", requests_per_second=100)
    assert table.num_rows == 4 and table.stats["retries"] == 2


def test_persistent_failure_names_url_status_and_attempts(api):
    with pytest.raises(RetriableError) as info:
        read(api, "/flaky?key=c&fail=9", max_retries=2)
    assert "/flaky" in str(info.value) and "HTTP 500" in str(info.value)
    assert "3 attempt(s)" in str(info.value)
    with pytest.raises(RetriableError, match="HTTP 503"):
        read(api, "/always500", max_retries=1)


def test_slow_response_times_out(api):
    with pytest.raises(RetriableError, match="timed out"):
        read(api, "/slow?delay=1.5", timeout_seconds=0.3, max_retries=1)


@pytest.mark.parametrize(("path", "message"), [
    ("/html", "HTML page"),
    ("/truncated", "truncated JSON"),
    ("/malformed", "malformed JSON"),
])
def test_payloads_that_are_not_json(api, path, message):
    with pytest.raises(DataError, match=message) as info:
        read(api, path)
    assert path in str(info.value)


def test_changed_type_between_pages_is_a_clear_error_with_a_fix(api):
    with pytest.raises(DataError, match=r"'amount'.*column_types"):
        read(api, "/changed_type", api_pagination={"type": "page"})
    with pytest.raises(DataError, match=r"'amount'.*column_types"):  # pages in separate chunks
        read(api, "/changed_type", ReadRequest(batch_size=1), api_pagination={"type": "page"})
    table = read(api, "/changed_type",
                 ReadRequest(options={"column_types": {"amount": "string"}}),
                 api_pagination={"type": "page"})
    assert table.column("amount").to_pylist() == ["10", "ten"]


def test_records_path_missing_on_a_later_page(api):
    with pytest.raises(DataError, match=r"records_path 'data.items'.*keys: records"):
        read(api, "/changed_path", records_path="data.items", api_pagination={"type": "page"})


def test_a_failing_page_loads_nothing_unless_allow_partial(api):
    pagination = {"type": "page", "page_size": 5}
    with pytest.raises(RetriableError, match="HTTP 500"):
        read(api, "/pages_fail", max_retries=1, api_pagination=pagination)
    table = read(api, "/pages_fail", max_retries=1, allow_partial=True,
                 api_pagination=pagination)
    assert table.column("id").to_pylist() == list(range(1, 11))
    assert table.stats["partial"] is True


def test_a_pagination_loop_is_stopped(api):
    with pytest.raises(DataError, match="same next page"):
        read(api, "/loop", api_pagination={"type": "cursor"})


def test_incremental_param_filled_from_the_cursor(api):
    cursor = Cursor("updated_at", "2024-01-20T10:00:00", inclusive=False)
    table = read(api, "/events", ReadRequest(cursor=cursor), incremental_param="updated_since")
    assert table.column("id").to_pylist() == [19, 20, 21, 22, 23]  # API filter is inclusive
    assert "updated_since=2024-01-20T10%3A00%3A00" in api.state.requests[-1][1]


def test_empty_result_keeps_the_last_schema(api):
    cursor = Cursor("updated_at", "2030-01-01", inclusive=False)
    state = {"columns": {"id": "int64", "name": "string", "updated_at": "string"}}
    conn = connector(api, "/events", incremental_param="updated_since")
    relation = conn.read(ReadRequest(cursor=cursor, state=state))
    assert relation.schema.names == ["id", "name", "updated_at"]
    assert relation.to_table().num_rows == 0
    conn.close()


def test_plain_http_needs_allow_http(api):
    conn = ApiConnector({"api_endpoint": api.url + "/users"})
    with pytest.raises(SpecError, match="allow_http"):
        conn.read(ReadRequest())
