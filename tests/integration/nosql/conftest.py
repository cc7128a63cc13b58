"""Fixtures for the MongoDB (FerretDB) and OpenSearch tests: a fresh database / index prefix
per test on the servers started by ``scripts/services.py`` (``ferretdb``, ``opensearch``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support import materializations, run_job, service_env

__all__ = ["materializations", "run_job"]


@pytest.fixture(scope="session")
def mongo_uri() -> str:
    """``mongodb://`` URI of the FerretDB test server."""
    return service_env("NEXUS_TEST_MONGODB_URI", "ferretdb")


@pytest.fixture
def mongo_db(mongo_uri: str) -> Iterator[str]:
    """A unique database name for this test, dropped afterwards."""
    import pymongo

    name = f"t_{uuid.uuid4().hex[:10]}"
    yield name
    client = pymongo.MongoClient(mongo_uri, serverSelectionTimeoutMS=5000)
    client.drop_database(name)
    client.close()


@pytest.fixture
def mongo(mongo_uri: str, mongo_db: str) -> Iterator:
    """A pymongo Database handle on the test's database (for seeding and checking)."""
    import pymongo

    client = pymongo.MongoClient(mongo_uri, serverSelectionTimeoutMS=5000, tz_aware=True)
    yield client[mongo_db]
    client.close()


@pytest.fixture(scope="session")
def opensearch_url() -> str:
    """``http://127.0.0.1:PORT`` of the OpenSearch test node."""
    return service_env("NEXUS_TEST_OPENSEARCH_URL", "opensearch")


@pytest.fixture
def index_prefix(opensearch_url: str) -> Iterator[str]:
    """A unique index-name prefix for this test; every index under it is deleted afterwards."""
    from opensearchpy import OpenSearch

    prefix = f"t_{uuid.uuid4().hex[:10]}"
    yield prefix
    client = OpenSearch([opensearch_url])
    client.indices.delete(index=f"{prefix}*", ignore_unavailable=True)
    client.close()


@pytest.fixture
def opensearch(opensearch_url: str):
    """An opensearch-py client (for seeding and checking)."""
    from opensearchpy import OpenSearch

    client = OpenSearch([opensearch_url])
    yield client
    client.close()


