"""Fixtures for the MongoDB (FerretDB) and OpenSearch tests: a fresh database / index prefix
per test on the servers started by ``scripts/services.py`` (``ferretdb``, ``opensearch``)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from nexus_dagster.factory import build_definitions
from nexus_dagster.spec.loader import load_project


def _service_env(var: str, service: str) -> str:
    value = os.environ.get(var)
    if value:
        return value
    msg = (f"{var} is not set: run `python scripts/services.py start --only {service}` and "
           "`. .services/env`, or the whole suite with `bash scripts/test.sh`")
    if os.environ.get("CI"):
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def mongo_uri() -> str:
    """``mongodb://`` URI of the FerretDB test server."""
    return _service_env("NEXUS_TEST_MONGODB_URI", "ferretdb")


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
    return _service_env("NEXUS_TEST_OPENSEARCH_URL", "opensearch")


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


def run_job(folder: Path, job: str, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """Run one job of the spec folder through Dagster (in process)."""
    defs = build_definitions(load_project(folder))
    return defs.resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=False)


def materializations(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    """Asset key -> metadata of each materialization of the run."""
    return {e.materialization.asset_key.to_user_string(): e.materialization.metadata
            for e in result.get_asset_materialization_events()}
