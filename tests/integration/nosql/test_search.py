"""Search connector against the real OpenSearch and Elasticsearch test nodes.

Every server test runs twice (``server`` fixture): through the opensearch-py client against the
OpenSearch 2.19 node (marker ``opensearch``) and through the elasticsearch-py 8.x client against
the Elasticsearch 8.19 node (marker ``elasticsearch``), both started by scripts/services.py.
"""

from __future__ import annotations

import datetime as dt
import gc
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest

from nexus_dagster.connectors.base import Cursor, ReadRequest, WriteRequest
from nexus_dagster.connectors.registry import connector_class
from nexus_dagster.connectors.search import SearchConnector
from nexus_dagster.errors import ConnectorError, LoadError, RetriableError, SpecError
from nexus_dagster.relation import Relation
from tests.integration.nosql.conftest import endpoint_events, run_job

UTC = dt.UTC


@dataclass(frozen=True)
class Server:
    """One search test node: the connection/endpoint ``type`` naming its client, where it
    listens, the test's index prefix on it, and the server's own client (seeding, checking)."""

    type: str
    host: str
    port: int
    prefix: str
    client: Any
    #: the error type a document whose value does not fit the mapping fails with
    parse_error: str


@pytest.fixture(params=[
    pytest.param("opensearch", marks=pytest.mark.opensearch),
    pytest.param("elasticsearch", marks=pytest.mark.elasticsearch),
])
def server(request: pytest.FixtureRequest) -> Server:
    name = request.param
    host, port = request.getfixturevalue(f"{name}_url").rsplit("/", 1)[1].split(":")
    prefix = request.getfixturevalue(
        "index_prefix" if name == "opensearch" else "elasticsearch_index_prefix")
    return Server(name, host, int(port), prefix, request.getfixturevalue(name),
                  "mapper_parsing" if name == "opensearch" else "document_parsing")


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
def conn(server: Server) -> SearchConnector:
    connector = SearchConnector({"type": server.type, "host": server.host, "port": server.port})
    yield connector
    connector.close()


def load(conn: SearchConnector, index: str, table: pa.Table, **kw) -> object:
    request = WriteRequest(table=index, write_mode="upsert", key_columns=("order_id",), **kw)
    return conn.write(Relation.from_table(table), request)


def test_registry_names_and_asset_kinds():
    assert issubclass(connector_class("opensearch"), SearchConnector)
    assert connector_class("opensearch")({"host": "127.0.0.1"}).engine_name == "opensearch"
    assert connector_class("elasticsearch") is SearchConnector
    assert SearchConnector({"host": "127.0.0.1"}).engine_name == "elasticsearch"
    assert SearchConnector.asset_kinds("elasticsearch", {"type": "opensearch"}) == {"opensearch"}
    assert connector_class("opensearch").asset_kinds("opensearch", {}) == {"opensearch"}
    assert SearchConnector.asset_kinds("elasticsearch", {}) == {"elasticsearch"}


def test_connection_answers_with_the_client_of_its_type(conn, server):
    assert conn.engine_name == server.type
    assert conn.test_connection()
    assert conn.engine.client.info()["version"]["number"]


def test_round_trip_with_scroll_nested_and_dates(conn, server):
    index = f"{server.prefix}_orders"
    result = load(conn, index, orders())
    assert (result.rows_loaded, result.rows_inserted, result.rows_updated) == (7, 7, 0)
    assert result.extra["failed"] == 0
    stored = server.client.get(index=index, id="2")["_source"]
    assert stored["customer"] == {"name": "Zoë 1", "city": "東京"}  # dotted columns folded

    # no sort: the scroll API (OpenSearch), search_after by _shard_doc in a PIT (Elasticsearch)
    relation = conn.read(ReadRequest(table=index, batch_size=3))
    assert relation.schema.field("updated_at").type == pa.timestamp("us", tz="UTC")
    batches = list(relation)
    assert [b.num_rows for b in batches] == [3, 3, 1]
    got = pa.Table.from_batches(batches).sort_by("order_id")
    assert got.column("_id").to_pylist() == [str(i) for i in range(1, 8)]
    for name in orders().schema.names:
        assert got.column(name).to_pylist() == orders().column(name).to_pylist(), name


def test_search_after_with_point_in_time_and_query_dsl(conn, server):
    index = f"{server.prefix}_orders"
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


def test_no_search_context_left_open_after_a_read(conn, server):
    index = f"{server.prefix}_orders"
    load(conn, index, orders(9))
    relation = conn.read(ReadRequest(table=index, batch_size=2,
                                     options={"sort": [{"order_id": "asc"}]}))
    assert pa.Table.from_batches(list(relation)).num_rows == 9
    # a point in time or a scroll holds a search context on the index until it is closed
    stats = server.client.indices.stats(index=index, metric="search")
    assert stats["_all"]["total"]["search"]["open_contexts"] == 0
    unsorted = conn.read(ReadRequest(table=index, batch_size=2))  # the other paging path
    assert pa.Table.from_batches(list(unsorted)).num_rows == 9
    stats = server.client.indices.stats(index=index, metric="search")
    assert stats["_all"]["total"]["search"]["open_contexts"] == 0


def test_read_left_half_way_then_closed_raises_nothing_later(conn, server, monkeypatch):
    index = f"{server.prefix}_orders"
    load(conn, index, orders(9))
    unraisable: list = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    batches = iter(conn.read(ReadRequest(table=index, batch_size=2,
                                         options={"sort": [{"order_id": "asc"}]})))
    assert next(batches).num_rows == 2  # a point in time is open now
    conn.close()  # what a run does at its end, failed or not
    batches = None
    gc.collect()  # the half-read generator closes its point in time now, with no client left
    assert unraisable == []


def test_incremental_range_filter(conn, server):
    index = f"{server.prefix}_orders"
    load(conn, index, orders())
    assert SearchConnector.supports_incremental
    first = conn.read(ReadRequest(table=index, cursor=Cursor("updated_at", "2024-01-05", True)))
    assert sorted(first.to_table().column("order_id").to_pylist()) == [5, 6, 7]
    later = conn.read(ReadRequest(
        table=index, cursor=Cursor("updated_at", dt.datetime(2024, 1, 6, tzinfo=UTC))))
    assert later.to_table().column("order_id").to_pylist() == [7]


def test_upsert_counts_created_and_updated(conn, server):
    index = f"{server.prefix}_orders"
    load(conn, index, orders(3))
    changed = orders(4).slice(2)  # ids 3 (exists) and 4 (new)
    result = load(conn, index, changed)
    assert (result.rows_inserted, result.rows_updated) == (1, 1)
    assert server.client.count(index=index)["count"] == 4


def test_per_document_errors_are_reported_not_swallowed(conn, server):
    index = f"{server.prefix}_orders"
    load(conn, index, orders(2))  # maps updated_at as a date
    bad = pa.table({"order_id": [10, 11, 12],
                    "updated_at": ["2024-02-01T00:00:00+00:00", "not a date", "also bad"]})
    with pytest.raises(LoadError, match=rf"2 of 3 documents failed.*_id=11.*{server.parse_error}"):
        load(conn, index, bad)
    result = load(conn, index, bad, options={"max_errors": 5})
    assert result.rows_loaded == 1 and result.extra["failed"] == 2
    assert [e["_id"] for e in result.extra["errors"]] == ["11", "12"]
    assert all(server.parse_error in e["error"] for e in result.extra["errors"])


def test_mappings_option_creates_the_index_with_them(conn, server):
    index = f"{server.prefix}_mapped"
    mappings = {"properties": {"order_id": {"type": "keyword"}}}
    load(conn, index, orders(2), options={"mappings": mappings})
    stored = server.client.indices.get_mapping(index=index)[index]["mappings"]
    assert stored["properties"]["order_id"] == {"type": "keyword"}


def test_append_without_id_and_unsupported_overwrite(conn, server):
    index = f"{server.prefix}_log"
    data = pa.table({"msg": ["a", "b"]})
    result = conn.write(Relation.from_table(data), WriteRequest(table=index))
    assert result.rows_inserted == 2 and server.client.count(index=index)["count"] == 2
    with pytest.raises(SpecError, match="overwrite"):
        conn.write(Relation.from_table(data), WriteRequest(table=index, write_mode="overwrite"))


@pytest.mark.parametrize("type_name", ["opensearch", "elasticsearch"])
def test_server_down_and_secrets_masked(type_name):
    down = SearchConnector({"type": type_name, "host": "127.0.0.1", "port": 1,
                            "username": "etl", "password": "pw-search-789", "timeout": 2})
    assert down.engine_name == type_name
    assert down.test_connection() is False
    with pytest.raises(RetriableError) as caught:
        down.read(ReadRequest(table="t_down"))
    assert "pw-search-789" not in str(caught.value) and "127.0.0.1:1" in str(caught.value)
    with pytest.raises(SpecError, match=r"connection_params\.hots: .*Extra inputs"):
        SearchConnector({"type": type_name, "hots": "x"})


@pytest.mark.opensearch
def test_elasticsearch_client_path_refuses_an_opensearch_server(opensearch_url, index_prefix):
    host, port = opensearch_url.rsplit("/", 1)[1].split(":")
    es = SearchConnector({"engine": "elasticsearch", "host": host, "port": int(port),
                          "api_key": "key-abc-123"})
    assert SearchConnector.asset_kinds("opensearch", {"engine": "elasticsearch"}) == {
        "elasticsearch"
    }
    assert es.test_connection() is False
    # the elasticsearch client checks the X-Elastic-Product header OpenSearch does not send
    # (UnsupportedProductError): a clear ConnectorError, no secret in it
    with pytest.raises(ConnectorError, match=r"elasticsearch http://127\.0\.0\.1:\d+ failed") \
            as caught:
        es.read(ReadRequest(table=f"{index_prefix}_x"))
    assert "key-abc-123" not in str(caught.value)


JOB = """\
name: search_sync
sources:
  - name: orders
    source_type: {type}
    connection_params: {{type: {type}, host: {host}, port: {port}}}
    table: {src}
    incremental_column: updated_at
    incremental_value: "2024-01-03T00:00:00+00:00"
    batch_size: 2
    options: {{sort: [{{order_id: asc}}]}}
targets:
  - name: orders_copy
    target_type: {type}
    connection_params: {{type: {type}, host: {host}, port: {port}}}
    table: {dst}
    write_mode: upsert
    key_columns: [order_id]
"""


def test_dagster_job_incremental(tmp_path: Path, conn, server):
    src, dst = f"{server.prefix}_src", f"{server.prefix}_dst"
    folder = tmp_path / "job_specs"
    folder.mkdir()
    (folder / "search_sync.yaml").write_text(textwrap.dedent(JOB.format(
        type=server.type, host=server.host, port=server.port, src=src, dst=dst)))
    load(conn, src, orders(5))
    instance = dg.DagsterInstance.ephemeral()
    result = run_job(folder, "search_sync", instance)
    assert result.success
    assert server.client.count(index=dst)["count"] == 3  # 3, 4, 5
    assert endpoint_events(result)["search_sync/orders_copy"]["dagster/row_count"].value == 3

    load(conn, src, orders(7).slice(5))  # 6 and 7 are new
    result = run_job(folder, "search_sync", instance)
    assert result.success
    assert endpoint_events(result)["search_sync/orders_copy"]["nexus/rows_extracted"].value == 2
    assert server.client.count(index=dst)["count"] == 5
    copied = server.client.get(index=dst, id="7")["_source"]
    assert copied["customer"]["city"] == "東京" and copied["updated_at"].startswith("2024-01-07")
