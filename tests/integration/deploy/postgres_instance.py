"""A Dagster instance made from deploy/dagster.yaml on the test PostgreSQL server, the daemon
over it, and what the deploy tests read back from it (run records, how many ran at once)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from tests.process_groups import BIN, stop_group

REPO = Path(__file__).resolve().parents[3]
DEPLOY_YAML = REPO / "deploy" / "dagster.yaml"


@contextlib.contextmanager
def storage_database(admin_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for Dagster's storage, dropped afterwards; yields its URL."""
    name = f"dagster_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def instance_env(storage_url: str, dequeue_seconds: int = 1) -> dict[str, str]:
    """The environment deploy/dagster.yaml reads (see its header) for ``storage_url``."""
    url = make_url(storage_url)
    return {
        "DAGSTER_PG_HOST": url.host or "127.0.0.1",
        "DAGSTER_PG_PORT": str(url.port or 5432),
        "DAGSTER_PG_USER": url.username or "",
        "DAGSTER_PG_PASSWORD": url.password or "",
        "DAGSTER_PG_DB": url.database or "",
        "DAGSTER_DEQUEUE_INTERVAL_SECONDS": str(dequeue_seconds),
    }


def make_home(home: Path) -> Path:
    """``home`` with deploy/dagster.yaml as is; the instance (its PostgreSQL schema) is created
    once here, before several processes would race to create it. Needs :func:`instance_env`
    in ``os.environ``."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DEPLOY_YAML, home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    return home


GRPC_WORKSPACE = """\
load_from:
  - grpc_server: {{host: 127.0.0.1, port: {port}, location_name: nexus}}
"""


@contextlib.contextmanager
def code_server(
    cwd: Path, env: dict[str, str], port: int, log: Path, timeout: float = 180
) -> Iterator[Path]:
    """The code location as production runs it (deploy/Dockerfile's command, on 127.0.0.1):
    ``dagster code-server start -m nexus_dagster.definitions``; waits until it serves the
    location, writes ``cwd/workspace.yaml`` pointing at it and yields that file. Runs the
    daemon launches are started by this server, with its environment."""
    from dagster._grpc.client import DagsterGrpcClient

    with log.open("w") as out:
        process = subprocess.Popen(
            [str(BIN / "dagster"), "code-server", "start", "-h", "127.0.0.1", "-p", str(port),
             "-m", "nexus_dagster.definitions", "-d", str(cwd)],
            cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            client = DagsterGrpcClient(port=port, host="127.0.0.1")
            deadline = time.monotonic() + timeout
            while True:
                assert process.poll() is None, log.read_text()[-3000:]
                try:
                    client.list_repositories()
                    break
                except Exception:  # not listening, or still loading the definitions
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
            workspace = cwd / "workspace.yaml"
            workspace.write_text(GRPC_WORKSPACE.format(port=port))
            yield workspace
        finally:
            stop_group(process)


def most_at_once(records: Iterable[dg.RunRecord]) -> int:
    """The largest number of runs that were in progress (started, not yet ended) at one time,
    from the run records' start and end times."""
    edges = []
    for record in records:
        if record.start_time is None:
            continue
        edges.append((record.start_time, 1))
        edges.append((record.end_time or float("inf"), -1))
    running = peak = 0
    for _, step in sorted(edges, key=lambda edge: (edge[0], edge[1])):  # ends before starts
        running += step
        peak = max(peak, running)
    return peak
