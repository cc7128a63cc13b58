"""Fixtures shared by integration folders: a base_dir per test and a file connector confined to
it (files/, formats/; a folder's own ``conn`` fixture, as in nosql/, wins), the Kafka broker and
a fresh topic (streams/, crash/)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from nexus_dagster.connectors.file import FileConnector
from tests.support import drop_topics, kafka_bootstrap


@pytest.fixture
def base(tmp_path: Path) -> Path:
    """The connector's base_dir (a fresh directory inside tmp_path)."""
    root = tmp_path / "base"
    root.mkdir()
    return root


@pytest.fixture
def conn(base: Path) -> FileConnector:
    """A file connector confined to ``base``."""
    return FileConnector({"base_dir": str(base)})


@pytest.fixture(scope="module")
def bootstrap() -> str:
    """host:port of the Kafka test broker, once it serves metadata (streams/, crash/)."""
    return kafka_bootstrap()


@pytest.fixture
def topic(bootstrap: str) -> Iterator[str]:
    """A fresh Kafka topic name (created by the first write); it and ``<name>_b`` are deleted
    afterwards."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    yield name
    drop_topics(bootstrap, name, f"{name}_b")
