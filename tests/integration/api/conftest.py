"""Fixtures: the local test API (started once per session, state reset per test)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.api.server import ApiServer


@pytest.fixture(scope="session")
def _api_server() -> Iterator[ApiServer]:
    server = ApiServer().start()
    yield server
    server.stop()


@pytest.fixture
def api(_api_server: ApiServer) -> ApiServer:
    """The test API on http://127.0.0.1:<port>, with fresh counters and sinks."""
    _api_server.reset()
    return _api_server
