"""Fixtures for the MongoDB (FerretDB), OpenSearch and Elasticsearch tests: client handles on the
test's own database / index prefix (``mongo_db``, ``index_prefix`` and
``elasticsearch_index_prefix`` are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import endpoint_events, run_job

__all__ = ["endpoint_events", "run_job"]


@pytest.fixture
def mongo(mongo_uri: str, mongo_db: str) -> Iterator:
    """A pymongo Database handle on the test's database (for seeding and checking)."""
    import pymongo

    client = pymongo.MongoClient(mongo_uri, serverSelectionTimeoutMS=5000, tz_aware=True)
    yield client[mongo_db]
    client.close()


@pytest.fixture
def opensearch(opensearch_url: str):
    """An opensearch-py client (for seeding and checking)."""
    from opensearchpy import OpenSearch

    client = OpenSearch([opensearch_url])
    yield client
    client.close()


@pytest.fixture
def elasticsearch(elasticsearch_url: str):
    """An elasticsearch-py client (for seeding and checking)."""
    from elasticsearch import Elasticsearch

    client = Elasticsearch(elasticsearch_url)
    yield client
    client.close()
