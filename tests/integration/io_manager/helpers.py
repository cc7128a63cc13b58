"""Helpers of the NexusIOManager tests: a fresh place to store assets on one system
(PostgreSQL, MariaDB, SQLite, a local Parquet folder, an S3 bucket on moto) with the IO manager
on it and a direct read-back through the connector, and what a run reported."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest
from sqlalchemy.engine import make_url

from nexus_dagster import NexusIOManager
from nexus_dagster.connectors.base import ReadRequest
from nexus_dagster.run.endpoints import open_connector
from tests.support import make_store

#: the environment variable holding the test databases' password (given as ``${...}``)
PASSWORD_ENV = "NEXUS_IO_TEST_DB_PASSWORD"


@dataclass
class Backend:
    """A fresh place on one system and the NexusIOManager storing assets there."""

    name: str
    type_name: str
    params: dict[str, Any]
    #: the database name (databases) or the URI prefix of the stored files
    where: str
    secret: str | None = None
    closers: list[Any] = field(default_factory=list)

    @property
    def stores_files(self) -> bool:
        return self.type_name != "database"

    def io_manager(self, **overrides: Any) -> NexusIOManager:
        return NexusIOManager(connection_params=self.params, **overrides)

    def read(self, name: str) -> pa.Table:
        """The stored table (or the file ``<name>.parquet``), read through the connector."""
        connector = open_connector(self.type_name, self.params, root=Path.cwd(), role="source",
                                   where="test")
        try:
            request = (ReadRequest(path=f"{name}.parquet") if self.stores_files
                       else ReadRequest(table=name))
            return connector.read(request).to_table()
        finally:
            connector.close()

    def files(self) -> list[str]:
        """Every file in the folder or bucket (file backends), relative to it."""
        connector = open_connector(self.type_name, self.params, root=Path.cwd(), role="source",
                                   where="test")
        try:
            root = connector.root().rstrip("/")
            return sorted(p[len(root) + 1:] for p in connector.filesystem().find(root))
        finally:
            connector.close()

    def table_name(self, name: str) -> str:
        """The ``dagster/table_name`` expected for asset ``name``."""
        if self.name == "postgresql":
            return f"{self.where}.public.{name}"
        if self.name == "mariadb":
            return f"{self.where}.{name}"
        if self.name == "sqlite":
            return f"main.{name}"
        return f"{self.where}/{name}.parquet"


def _server_database(
    url: str, name: str, dialect: str, monkeypatch: pytest.MonkeyPatch
) -> Backend:
    parsed = make_url(url)
    monkeypatch.setenv(PASSWORD_ENV, parsed.password or "")
    params = {"type": dialect, "host": parsed.host, "port": parsed.port,
              "user": parsed.username, "password": f"${{{PASSWORD_ENV}}}",
              "database": parsed.database}
    return Backend(name, "database", params, str(parsed.database), secret=parsed.password)


def make_backend(name: str, request: pytest.FixtureRequest, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Backend:
    if name == "postgresql":
        return _server_database(request.getfixturevalue("pg_url"), name, "postgresql",
                                monkeypatch)
    if name == "mariadb":
        return _server_database(request.getfixturevalue("mariadb_url"), name, "mariadb",
                                monkeypatch)
    if name == "sqlite":
        return Backend(name, "database", {"type": "sqlite", "database": str(tmp_path / "wh.db")},
                       str(tmp_path / "wh.db"))
    if name == "parquet":
        lake = tmp_path / "lake"
        return Backend(name, "file", {"type": "file", "base_dir": str(lake)}, lake.as_uri())
    store = make_store("s3")
    backend = Backend(name, "s3", {"type": "s3", **store.params}, f"s3://{store.params['bucket']}")
    backend.closers.append(store)
    return backend


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    """The error of the run's failed step as the UI shows it (with its causes)."""
    return "\n".join(event.step_failure_data.error.to_string()
                     for event in result.get_step_failure_events())


def metadata_of(result: dg.ExecuteInProcessResult, key: str) -> dict[str, Any]:
    """The plain metadata values of the materialization of asset ``key``."""
    (event,) = [e for e in result.get_asset_materialization_events()
                if e.materialization.asset_key.to_user_string() == key]
    return {k: v.value for k, v in event.materialization.metadata.items()}
