"""Fixtures for object storage and remote file tests: one fresh bucket/folder per test.

The servers (moto S3, Azurite, gcp-storage-emulator, OpenSSH sftp, pyftpdlib) are started by
``scripts/services.py`` (``bash scripts/test.sh``), which writes their addresses and test
credentials to ``.services/env``. Tests are marked per server (``s3``, ``azurite``, ``gcs``,
``sftp``, ``ftp``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from nexus_dagster.connectors.registry import connector_class
from nexus_dagster.connectors.remote import RemoteFileConnector
from tests.support import service_env

os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

STORES = ("s3", "azure_blob", "gcs", "sftp", "ftp")
MARKERS = {"s3": "s3", "azure_blob": "azurite", "gcs": "gcs", "sftp": "sftp", "ftp": "ftp"}
#: the environment variable each server's fixture needs
NEEDS = {
    "s3": "NEXUS_TEST_S3_ENDPOINT",
    "azure_blob": "NEXUS_TEST_AZURE_ACCOUNT_URL",
    "gcs": "NEXUS_TEST_GCS_ENDPOINT",
    "sftp": "NEXUS_TEST_SFTP_PORT",
    "ftp": "NEXUS_TEST_FTP_PORT",
}


def base_params(kind: str, name: str) -> dict[str, Any]:
    """Connection params of the test server for ``kind``, in a bucket/folder called ``name``."""
    service_env(NEEDS[kind])
    if kind == "s3":
        return {"bucket": name, "access_key": service_env("NEXUS_TEST_S3_ACCESS_KEY"),
                "secret_key": service_env("NEXUS_TEST_S3_SECRET_KEY"), "region": "eu-central-1",
                "endpoint_url": service_env("NEXUS_TEST_S3_ENDPOINT")}
    if kind == "azure_blob":
        return {"container": name, "account_name": service_env("NEXUS_TEST_AZURE_ACCOUNT_NAME"),
                "account_key": service_env("NEXUS_TEST_AZURE_ACCOUNT_KEY"),
                "account_url": service_env("NEXUS_TEST_AZURE_ACCOUNT_URL")}
    if kind == "gcs":
        return {"bucket": name, "project_id": "nexus-test",
                "endpoint": service_env("NEXUS_TEST_GCS_ENDPOINT")}
    if kind == "sftp":
        return {"host": "127.0.0.1", "port": int(service_env("NEXUS_TEST_SFTP_PORT")),
                "username": service_env("NEXUS_TEST_SFTP_USER"),
                "password": service_env("NEXUS_TEST_SFTP_PASSWORD"),
                "known_hosts": service_env("NEXUS_TEST_SFTP_KNOWN_HOSTS"),
                "base_dir": f"{service_env('NEXUS_TEST_SFTP_HOME')}/{name}"}
    return {"host": "127.0.0.1", "port": int(service_env("NEXUS_TEST_FTP_PORT")),
            "username": service_env("NEXUS_TEST_FTP_USER"),
            "password": service_env("NEXUS_TEST_FTP_PASSWORD"),
            "base_dir": f"/{name}"}


@dataclass
class Store:
    """A fresh bucket (object stores) or folder (SFTP/FTP) on one test server."""

    kind: str
    params: dict[str, Any]
    opened: list[RemoteFileConnector] = field(default_factory=list)

    def connector(self, **overrides: Any) -> RemoteFileConnector:
        conn = connector_class(self.kind)({**self.params, **overrides})
        self.opened.append(conn)
        return conn

    def put(self, path: str, data: bytes) -> None:
        """Upload raw bytes to ``path`` (relative to the bucket/folder)."""
        conn = self.connector()
        full = conn.resolve(path)
        conn.filesystem().makedirs(full.rsplit("/", 1)[0], exist_ok=True)
        conn.filesystem().pipe_file(full, data)

    def get(self, path: str) -> bytes:
        conn = self.connector()
        return conn.filesystem().cat_file(conn.resolve(path))

    def listing(self, path: str = "") -> list[str]:
        """Every file under ``path``, relative to the bucket/folder."""
        conn = self.connector()
        root = conn.root().rstrip("/")
        found = conn.filesystem().find(conn.resolve(path) if path else root)
        return sorted(p[len(root) + 1:] if p.startswith(root) else p for p in found)


def make_store(kind: str) -> Store:
    name = f"t{uuid.uuid4().hex[:12]}"
    store = Store(kind, base_params(kind, name))
    conn = store.connector()
    fs = conn.filesystem()
    if conn.object_store:
        fs.mkdir(name)
    else:
        fs.makedirs(conn.root(), exist_ok=True)
    return store


def cleanup(store: Store) -> None:
    for conn in store.opened:
        try:
            if conn is store.opened[0] and conn._fs is not None:
                fs = conn._fs
                if conn.object_store:
                    fs.rm(conn.bucket(), recursive=True)
                else:
                    fs.rm(conn.root(), recursive=True)
        except Exception:  # best effort: the servers are throwaway
            pass
        conn.close()


@pytest.fixture(params=[pytest.param(k, marks=getattr(pytest.mark, MARKERS[k])) for k in STORES])
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
