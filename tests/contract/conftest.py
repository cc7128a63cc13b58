"""The ``endpoint`` fixture: the entry a contract case runs for, made fresh and cleaned up."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.contract.endpoints import Endpoint, Entry


@pytest.fixture
def endpoint(entry: Entry, request: pytest.FixtureRequest) -> Iterator[Endpoint]:
    """A fresh place on the entry's system (its factory's), closed and removed afterwards."""
    made = entry.make(request)
    yield made
    made.close()
