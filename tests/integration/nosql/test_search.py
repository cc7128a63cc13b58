"""Search connector against the OpenSearch test node (opensearch-py client path).

The Elasticsearch client path is exercised only as far as a real OpenSearch server lets it
(client construction, auth options, error wrapping): the ``elasticsearch`` client refuses any
server that is not Elasticsearch.
"""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from nexus_dagster.connectors.base import Cursor, ReadRequest, WriteRequest
from nexus_dagster.connectors.registry import connector_class
from nexus_dagster.connectors.search import SearchConnector
from nexus_dagster.errors import ConnectorError, LoadError, RetriableError, SpecError
from nexus_dagster.relation import Relation
from tests.integration.nosql.conftest import endpoint_events, run_job

pytestmark = pytest.mark.opensearch

UTC = dt.UTC


def orders(n: int = 7) -> pa.Table:
    return pa.table({
        "order_id": pa.array(range(1, n + 1), pa.int64()),
        "customer.name": [f"Zoë {i}" if i % 3 else None for i in range(n)],
        "customer.city": ["東京"] * n,
        "amount": pa.array([i * 1.5 for i in range(n)], pa.float64()),
        "updated_at": pa.array([dt.datetime(2024, 1, 1 + i, tzinfo=UTC) for i in range(n)],
                               pa.timestamp("us", tz="UTC")),
    })


@pytest.fixture
def conn(opensearch_url: str) -> SearchConnector:
    host, port = opensearch_url.rsplit("/", 1)[1].split(":")
    connector = SearchConnector({"type": "opensearch", "host": host, "port": int(port)})
    yield connector
    connector.close()


def load(conn: SearchConnector, index: str, table: pa.Table, **kw) -> object:
    request = WriteRequest(table=index, write_mode="upsert", key_columns=("order_id",), **kw)
    return conn.write(Relation.from_table(table), request)


def test_registry_and_connection(conn):
    assert issubclass(connector_class("opensearch"), SearchConnector)
    assert connector_class("opensearch")({"host": "127.0.0.1"}).engine_name == "opensearch"
    assert connector_class("elasticsearch") is SearchConnector
    assert conn.test_connection()
    assert SearchConnector.asset_kinds("elasticsearch", {"type": "opensearch"}) == {"opensearch"}
    assert connector_class("opensearch").asset_kinds("opensearch", {}) == {"opensearch"}
    assert SearchConnector.asset_kinds("elasticsearch", {}) == {"elasticsearch"}


def test_round_trip_with_scroll_nested_and_dates(conn, index_prefix, opensearch):
    index = f"{index_prefix}_orders"
    result = load(conn, index, orders())
    assert (result.rows_loaded, result.rows_inserted, result.rows_updated) == (7, 7, 0)
    assert result.extra["failed"] == 0
    stored = opensearch.get(index=index, id="2")["_source"]
    assert stored["customer"] == {"name": "Zoë 1", "city": "東京"}  # dotted columns folded

    relation = conn.read(ReadRequest(table=index, batch_size=3))  # no sort: the scroll API
    assert relation.schema.field("updated_at").type == pa.timestamp("us", tz="UTC")
    batches = list(relation)
    assert [b.num_rows for b in batches] == [3, 3, 1]
    got = pa.Table.from_batches(batches).sort_by("order_id")
    assert got.column("_id").to_pylist() == [str(i) for i in range(1, 8)]
    for name in orders().schema.names:
        assert got.column(name).to_pylist() == orders().column(name).to_pylist(), name


def test_search_after_with_point_in_time_and_query_dsl(conn, index_prefix):
    index = f"{index_prefix}_orders"
    load(conn, index, orders(25))
    relation = conn.read(ReadRequest(
        table=index, batch_size=4,
        options={"sort": [{"order_id": "asc"}], "query": {"range": {"amount": {"gte": 15}}}},
    ))
    batches = list(relation)
    assert all(b.num_rows <= 4 for b in batches)
    ids = pa.Table.from_batches(batches).column("order_id").to_pylist()
    assert ids == list(range(11, 26))  # amount = (id - 1) * 1.5 >= 15, in sort order

    by_query = conn.read(ReadRequest(table=index, query='{"term": {"order_id": 3}}'))
    assert by_query.to_table().column("order_id").to_pylist() == [3]
    with pytest.raises(SpecError, match="JSON"):
        conn.read(ReadRequest(table=index, query="not json"))


def test_incremental_range_filter(conn, index_prefix):
    index = f"{index_prefix}_orders"
    load(conn, index, orders())
    assert SearchConnector.supports_incremental
    first = conn.read(ReadRequest(table=index, cursor=Cursor("updated_at", "2024-01-05", True)))
    assert sorted(first.to_table().column("order_id").to_pylist()) == [5, 6, 7]
    later = conn.read(ReadRequest(
        table=index, cursor=Cursor("updated_at", dt.datetime(2024, 1, 6, tzinfo=UTC))))
    assert later.to_table().column("order_id").to_pylist() == [7]


def test_upsert_counts_created_and_updated(conn, index_prefix, opensearch):
    index = f"{index_prefix}_orders"
    load(conn, index, orders(3))
    changed = orders(4).slice(2)  # ids 3 (exists) and 4 (new)
    result = load(conn, index, changed)
    assert (result.rows_inserted, result.rows_updated) == (1, 1)
    assert opensearch.count(index=index)["count"] == 4


def test_per_document_errors_are_reported_not_swallowed(conn, index_prefix):
    index = f"{index_prefix}_orders"
    load(conn, index, orders(2))  # maps updated_at as a date
    bad = pa.table({"order_id": [10, 11, 12],
                    "updated_at": ["2024-02-01T00:00:00+00:00", "not a date", "also bad"]})
    with pytest.raises(LoadError, match=r"2 of 3 documents failed.*_id=11.*mapper_parsing"):
        load(conn, index, bad)
    result = load(conn, index, bad, options={"max_errors": 5})
    assert result.rows_loaded == 1 and result.extra["failed"] == 2
    assert [e["_id"] for e in result.extra["errors"]] == ["11", "12"]
    assert all("mapper_parsing" in e["error"] for e in result.extra["errors"])


def test_append_without_id_and_unsupported_overwrite(conn, index_prefix, opensearch):
    index = f"{index_prefix}_log"
    data = pa.table({"msg": ["a", "b"]})
    result = conn.write(Relation.from_table(data), WriteRequest(table=index))
    assert result.rows_inserted == 2 and opensearch.count(index=index)["count"] == 2
    with pytest.raises(SpecError, match="overwrite"):
        conn.write(Relation.from_table(data), WriteRequest(table=index, write_mode="overwrite"))


def test_server_down_and_secrets_masked(index_prefix):
    down = SearchConnector({"type": "opensearch", "host": "127.0.0.1", "port": 1,
                            "username": "etl", "password": "pw-search-789", "timeout": 2})
    assert down.test_connection() is False
    with pytest.raises(RetriableError) as caught:
        down.read(ReadRequest(table=f"{index_prefix}_x"))
    assert "pw-search-789" not in str(caught.value) and "127.0.0.1:1" in str(caught.value)
    with pytest.raises(SpecError, match=r"connection_params\.hots: .*Extra inputs"):
        SearchConnector({"type": "opensearch", "hots": "x"})


def test_elasticsearch_client_path_refuses_an_opensearch_server(opensearch_url, index_prefix):
    host, port = opensearch_url.rsplit("/", 1)[1].split(":")
    es = SearchConnector({"engine": "elasticsearch", "host": host, "port": int(port),
                          "api_key": "key-abc-123"})
    assert SearchConnector.asset_kinds("opensearch", {"engine": "elasticsearch"}) == {
        "elasticsearch"
    }
    assert es.test_connection() is False
    # elasticsearch 9.x sends its compatibility media type, which OpenSearch answers with 406
    # (8.x raises UnsupportedProductError): either way a clear ConnectorError, no secret in it
    with pytest.raises(ConnectorError, match=r"elasticsearch http://127\.0\.0\.1:\d+ failed") \
            as caught:
        es.read(ReadRequest(table=f"{index_prefix}_x"))
    assert "key-abc-123" not in str(caught.value)


JOB = """\
name: search_sync
sources:
  - name: orders
    source_type: opensearch
    connection_params: {{type: opensearch, host: {host}, port: {port}}}
    table: {src}
    incremental_column: updated_at
    incremental_value: "2024-01-03T00:00:00+00:00"
    batch_size: 2
    options: {{sort: [{{order_id: asc}}]}}
targets:
  - name: orders_copy
    target_type: opensearch
    connection_params: {{type: opensearch, host: {host}, port: {port}}}
    table: {dst}
    write_mode: upsert
    key_columns: [order_id]
"""


def test_dagster_job_incremental(tmp_path: Path, conn, opensearch_url, index_prefix, opensearch):
    host, port = opensearch_url.rsplit("/", 1)[1].split(":")
    src, dst = f"{index_prefix}_src", f"{index_prefix}_dst"
    folder = tmp_path / "job_specs"
    folder.mkdir()
    (folder / "search_sync.yaml").write_text(textwrap.dedent(
        JOB.format(host=host, port=port, src=src, dst=dst)))
    load(conn, src, orders(5))
    instance = dg.DagsterInstance.ephemeral()
    result = run_job(folder, "search_sync", instance)
    assert result.success
    assert opensearch.count(index=dst)["count"] == 3  # 3, 4, 5
    assert endpoint_events(result)["search_sync/orders_copy"]["dagster/row_count"].value == 3

    load(conn, src, orders(7).slice(5))  # 6 and 7 are new
    result = run_job(folder, "search_sync", instance)
    assert result.success
    assert endpoint_events(result)["search_sync/orders_copy"]["nexus/rows_extracted"].value == 2
    assert opensearch.count(index=dst)["count"] == 5
    copied = opensearch.get(index=dst, id="7")["_source"]
    assert copied["customer"]["city"] == "東京" and copied["updated_at"].startswith("2024-01-07")
