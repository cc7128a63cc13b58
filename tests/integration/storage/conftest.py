"""Fixtures for object storage and remote file tests: one fresh bucket/folder per test.

The servers (moto S3, Azurite, gcp-storage-emulator, OpenSSH sftp, pyftpdlib) are started by
``scripts/services.py`` (``bash scripts/test.sh``), which writes their addresses and test
credentials to ``.services/env``. Tests are marked per server (``s3``, ``azurite``, ``gcs``,
``sftp``, ``ftp``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support import STORE_MARKERS, STORES, Store, cleanup, make_store


@pytest.fixture(
    params=[pytest.param(k, marks=getattr(pytest.mark, STORE_MARKERS[k])) for k in STORES]
)
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """A fresh bucket/folder on each of the five servers in turn."""
    s = make_store(request.param)
    yield s
    cleanup(s)


@pytest.fixture
def store_factory() -> Iterator[Callable[[str], Store]]:
    """Make stores of given kinds (for cross-store jobs); cleaned up after the test."""
    made: list[Store] = []

    def make(kind: str) -> Store:
        s = make_store(kind)
        made.append(s)
        return s

    yield make
    for s in made:
        cleanup(s)
