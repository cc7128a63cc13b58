"""Helpers shared by the test folders: service settings, fresh places on the test servers
(buckets and folders, Kafka topics, Redis keys) and running spec jobs through Dagster."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from nexus_dagster.connectors.registry import connector_class
from nexus_dagster.connectors.remote import RemoteFileConnector
from nexus_dagster.dagster.factory import build_definitions
from nexus_dagster.spec.loader import load_project

os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

README = Path(__file__).resolve().parents[1] / "README.md"


def service_env(var: str, services: str = "") -> str:
    """A setting written by ``scripts/services.py start``; skips when unset (fails in CI)."""
    value = os.environ.get(var)
    if value:
        return value
    only = f" --only {services}" if services else ""
    msg = (f"{var} is not set: the test servers are not running. Run the suite with "
           f"`bash scripts/test.sh` (it starts them), or "
           f"`python3 scripts/services.py start{only} && . .services/env` first.")
    if os.environ.get("CI"):
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


def run_readme_example(marker: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the README's first ```python block after ``<!-- marker`` in a fresh interpreter in
    ``cwd``; fails the test (with its output) unless it exits 0."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"<!-- {marker}")
    code = re.search(r"```python\n(.*?)```", text[start:], re.S).group(1)
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


def write_job(tmp_path: Path, job: dict[str, Any]) -> Path:
    """The spec folder ``tmp_path/job_specs`` with ``job`` (a spec as a dict) written to
    ``<name>.yaml``; returns the folder."""
    folder = tmp_path / "job_specs"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{job['name']}.yaml").write_text(yaml.safe_dump(job, sort_keys=False))
    return folder


def run_job(folder: Path, job: str, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """Run one job of a spec folder through Dagster (in process), not raising on failure."""
    defs = build_definitions(load_project(folder))
    return defs.resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=False)


def materializations(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    """Asset key -> metadata of each materialization of the run (see :func:`endpoint_events`
    for the spec's names)."""
    return {e.materialization.asset_key.to_user_string(): e.materialization.metadata
            for e in result.get_asset_materialization_events()}


# ----------------------------------------------------------------------------- object stores
#: the object stores and remote filesystems with a test server
STORES = ("s3", "azure_blob", "gcs", "sftp", "ftp")
#: the pytest marker of each store's server
STORE_MARKERS = {"s3": "s3", "azure_blob": "azurite", "gcs": "gcs", "sftp": "sftp", "ftp": "ftp"}
#: the environment variable each server's params need
STORE_NEEDS = {
    "s3": "NEXUS_TEST_S3_ENDPOINT",
    "azure_blob": "NEXUS_TEST_AZURE_ACCOUNT_URL",
    "gcs": "NEXUS_TEST_GCS_ENDPOINT",
    "sftp": "NEXUS_TEST_SFTP_PORT",
    "ftp": "NEXUS_TEST_FTP_PORT",
}


def store_params(kind: str, name: str) -> dict[str, Any]:
    """Connection params of the test server for ``kind``, in a bucket/folder called ``name``."""
    service_env(STORE_NEEDS[kind])
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
    """A new, empty bucket/folder with a unique name on the ``kind`` test server."""
    name = f"t{uuid.uuid4().hex[:12]}"
    store = Store(kind, store_params(kind, name))
    conn = store.connector()
    fs = conn.filesystem()
    if conn.object_store:
        fs.mkdir(name)
    else:
        fs.makedirs(conn.root(), exist_ok=True)
    return store


def cleanup(store: Store) -> None:
    """Delete the store's bucket/folder (best effort) and close every connector it opened."""
    for conn in store.opened:
        if conn is store.opened[0]:
            with contextlib.suppress(Exception):  # best effort: the servers are throwaway
                fs = conn.filesystem()
                fs.rm(conn.bucket() if conn.object_store else conn.root(), recursive=True)
        conn.close()


# ----------------------------------------------------------------------------- streams
_KAFKA_WARM: set[str] = set()


def kafka_bootstrap() -> str:
    """host:port of the Kafka test broker, once it serves metadata, group offsets and
    transactions.

    A new broker creates its offsets and transaction-state topics on their first use, which a
    slow machine may take longer for than a connector's 10 s timeout: the first test to use the
    broker would fail for that. This waits for both once per process (up to 60 s each)."""
    servers = service_env("NEXUS_TEST_KAFKA_BOOTSTRAP", "kafka")
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient

    AdminClient({"bootstrap.servers": servers}).list_topics(timeout=60)
    if servers not in _KAFKA_WARM:
        producer = Producer({"bootstrap.servers": servers,
                             "transactional.id": f"nexus-tests-warm-up-{os.getpid()}"})
        producer.init_transactions(60)
        producer.begin_transaction()
        producer.produce("nexus_tests_warm_up", b"{}")
        producer.commit_transaction(60)
        consumer = Consumer({"bootstrap.servers": servers, "group.id": "nexus-tests-warm-up",
                             "enable.auto.commit": False})
        try:
            consumer.committed([TopicPartition("nexus_tests_warm_up", 0)], timeout=60)
        finally:
            consumer.close()
        _KAFKA_WARM.add(servers)
    return servers


def drop_topics(bootstrap: str, *names: str) -> None:
    """Delete Kafka topics (those never created are ignored)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.delete_topics(list(names)).values():
        with contextlib.suppress(Exception):  # the topic was never created
            future.result(10)


def produce_messages(bootstrap: str, topic: str, values: list, partitions: int = 1) -> None:
    """Raw Kafka messages (JSON-encoded unless bytes), keys k0, k1, ..., message i in
    partition ``i % partitions``; creates the topic with ``partitions`` when it is missing."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    if topic not in admin.list_topics(timeout=10).topics:
        admin.create_topics([NewTopic(topic, num_partitions=partitions)])[topic].result(10)
    producer = Producer({"bootstrap.servers": bootstrap})
    for i, value in enumerate(values):
        data = value if isinstance(value, bytes) else json.dumps(value).encode()
        producer.produce(topic, value=data, key=f"k{i}".encode(), partition=i % partitions)
    assert producer.flush(10) == 0


def redis_params() -> dict[str, Any]:
    """Connection params of the Redis test server (password protected)."""
    return {"host": "127.0.0.1", "port": int(service_env("NEXUS_TEST_REDIS_PORT", "redis")),
            "password": service_env("NEXUS_TEST_REDIS_PASSWORD", "redis")}


def drop_redis_keys(client: Any, prefix: str) -> None:
    """Delete every key starting with ``prefix`` (SCAN, never KEYS)."""
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        client.delete(key)


def endpoint_events(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    """``"<job>/<target or source>"`` -> metadata of the run's target materializations and
    source observations (asset keys are where the data lives; these names are the spec's)."""
    found: dict[str, dict] = {}
    events = [e.materialization for e in result.get_asset_materialization_events()]
    events += [e.asset_observation_data.asset_observation
               for e in result.get_asset_observation_events()]
    for event in events:
        meta = event.metadata
        name = meta.get("nexus/target") or meta.get("nexus/source")
        if name is not None and "nexus/job" in meta:
            found[f"{meta['nexus/job'].value}/{name.value}"] = meta
    return found


def last_endpoint_metadata(instance: dg.DagsterInstance, job: str, endpoint: str) -> dict:
    """Metadata of the newest target materialization or source observation of ``job``'s
    ``endpoint`` (a target or source name) in the instance; {} when there is none."""
    kinds = {dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.ASSET_OBSERVATION}
    for record in instance.get_run_records(dg.RunsFilter(job_name=job)):
        for entry in reversed(instance.all_logs(record.dagster_run.run_id, of_type=kinds)):
            event = entry.dagster_event
            data = (event.step_materialization_data.materialization
                    if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION
                    else event.asset_observation_data.asset_observation)
            meta = data.metadata
            name = meta.get("nexus/target") or meta.get("nexus/source")
            if name is not None and name.value == endpoint and meta.get("nexus/job") is not None \
                    and meta["nexus/job"].value == job:
                return dict(meta)
    return {}
