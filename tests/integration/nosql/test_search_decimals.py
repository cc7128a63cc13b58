"""Search targets index decimals as exact JSON numbers (OpenSearch and Elasticsearch): the stored
``_source`` keeps their digits and the index maps them as numbers, so range queries work."""

from __future__ import annotations

import json
import urllib.request
from decimal import Decimal

import pyarrow as pa
import pytest

from nexus_dagster.connectors.base import WriteRequest
from nexus_dagster.connectors.search import SearchConnector
from nexus_dagster.relation import Relation

MONEY = pa.table({
    "id": pa.array([1, 2], pa.int64()),
    "amount": pa.array([Decimal("900.10"), Decimal("12345678901234567.89")],
                       pa.decimal128(21, 2)),
})


@pytest.mark.parametrize("type_name", [
    pytest.param("opensearch", marks=pytest.mark.opensearch),
    pytest.param("elasticsearch", marks=pytest.mark.elasticsearch),
])
def test_search_target_indexes_decimals_as_exact_numbers(
    type_name: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(f"{type_name}_url")
    prefix = request.getfixturevalue(
        "index_prefix" if type_name == "opensearch" else "elasticsearch_index_prefix")
    index = f"{prefix}_money"
    conn = SearchConnector({"type": type_name, "url": url})
    try:
        conn.write(Relation.from_table(MONEY),
                   WriteRequest(table=index, write_mode="upsert", key_columns=("id",)))
        mapping = conn.engine.client.indices.get_mapping(index=index)
        properties = dict(mapping)[index]["mappings"]["properties"]
        paid = conn.engine.search({"query": {"range": {"amount": {"gte": 1000}}}}, index=index)
    finally:
        conn.close()
    with urllib.request.urlopen(f"{url}/{index}/_doc/2", timeout=10) as response:
        raw = response.read().decode()
    assert '"_source":{"id":2,"amount":12345678901234567.89}' in raw
    source = json.loads(raw, parse_float=Decimal)["_source"]
    assert source["amount"] == Decimal("12345678901234567.89")
    assert properties["amount"]["type"] in ("float", "double")
    assert [hit["_id"] for hit in paid["hits"]["hits"]] == ["2"]
