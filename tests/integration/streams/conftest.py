"""Fixtures of the Redis tests: a connector to the test server and a key prefix of one test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from nexus_dagster.connectors.redis import RedisConnector
from tests.support import drop_redis_keys, redis_params


@pytest.fixture
def redis_conn() -> Iterator[RedisConnector]:
    """A connector to the test server (password protected), closed afterwards."""
    connector = RedisConnector(redis_params())
    yield connector
    connector.close()


@pytest.fixture
def prefix(redis_conn: RedisConnector) -> Iterator[str]:
    """A unique key prefix; its keys are deleted afterwards (with SCAN)."""
    name = f"t{uuid.uuid4().hex[:10]}"
    yield name
    drop_redis_keys(redis_conn.client, name)
