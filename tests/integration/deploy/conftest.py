"""Fixtures of the deploy tests: a DAGSTER_HOME made from deploy/dagster.yaml whose storage is a
fresh database on the test PostgreSQL server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.deploy.postgres_instance import instance_env, make_home, storage_database


@pytest.fixture
def pg_home(
    tmp_path: Path, postgres_admin_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, dict[str, str]]]:
    """(DAGSTER_HOME, full environment for child processes) of a PostgreSQL-backed instance
    (its queue limit, 4 runs; dequeue every second); this process's environment points at it too."""
    with storage_database(postgres_admin_url) as storage_url:
        values = instance_env(storage_url)
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        home = make_home(tmp_path / "dagster_home")
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        yield home, {**os.environ}
