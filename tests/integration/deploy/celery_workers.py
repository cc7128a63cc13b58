"""Celery step workers as production starts them (deploy/celery/worker.sh), for the deploy tests
and the Celery benchmark row: each in its own working directory with its own DAGSTER_HOME (a
copy of deploy/dagster.yaml) and its own copy of the specs, sharing only PostgreSQL (the
instance), Redis (broker and results) and the object store with the run."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from tests.integration.deploy.postgres_instance import DEPLOY_YAML, REPO
from tests.process_groups import BIN, stop_group

WORKER_SH = REPO / "deploy" / "celery" / "worker.sh"
BROKER_DB = 13  # Redis databases of the broker and the results: emptied before and after
BACKEND_DB = 14


def celery_env(password: str, port: int) -> dict[str, str]:
    """NEXUS_CELERY_BROKER / NEXUS_CELERY_BACKEND for the Redis test server."""
    base = f"redis://:{password}@127.0.0.1:{port}"
    return {"NEXUS_CELERY_BROKER": f"{base}/{BROKER_DB}",
            "NEXUS_CELERY_BACKEND": f"{base}/{BACKEND_DB}"}


def empty_queues(password: str, port: int) -> None:
    """Drop every message and result left in the broker's and the backend's databases (a killed
    worker's unfinished task must not reach the next test's workers)."""
    for db in (BROKER_DB, BACKEND_DB):
        client = redis.Redis(host="127.0.0.1", port=port, password=password, db=db)
        client.flushdb()
        client.close()


@dataclass
class Worker:
    """One running worker: ``name`` is its Celery node name without ``@host``."""

    name: str
    process: subprocess.Popen
    home: Path
    log: Path

    def pids(self) -> list[int]:
        """The worker's live processes (its process group, zombies left out): ``celery
        worker`` and its pool child."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, IndexError):
                # /proc/<pid>/stat: "pid (comm) state ppid pgrp ..."; comm may hold spaces
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if fields[0] != "Z" and int(fields[2]) == self.process.pid:
                    found.append(int(entry.name))
        return sorted(found)

    def kill(self, timeout: float = 20) -> None:
        """SIGKILL to the worker's process group (the worker and its children); returns once
        none of them is left."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout)
        deadline = time.monotonic() + timeout
        while self.pids():
            assert time.monotonic() < deadline, f"worker {self.name} survived SIGKILL"
            time.sleep(0.1)


def _wait_ready(worker: Worker, deadline: float) -> None:
    while "ready." not in worker.log.read_text(errors="replace"):
        assert worker.process.poll() is None, worker.log.read_text()[-3000:]
        assert time.monotonic() < deadline, worker.log.read_text()[-3000:]
        time.sleep(0.3)


@contextlib.contextmanager
def celery_workers(
    root: Path, env: dict[str, str], specs: Path | None = None,
    names: tuple[str, ...] = ("w1", "w2"), timeout: float = 120,
) -> Iterator[list[Worker]]:
    """Start one worker per name with deploy/celery/worker.sh (concurrency 1) under
    ``root/<name>``: cwd there, ``DAGSTER_HOME=root/<name>/dagster_home`` holding
    deploy/dagster.yaml, and, when ``specs`` is given, ``NEXUS_JOB_SPECS`` pointing at the
    worker's own copy of that folder. ``env`` holds the instance's DAGSTER_PG_* values, the
    NEXUS_CELERY_* URLs and the secrets the specs name. Waits until every worker is ready;
    on exit every worker's process group is stopped (SIGTERM, then SIGKILL)."""
    workers: list[Worker] = []
    try:
        for name in names:
            cwd = root / name
            home = cwd / "dagster_home"
            home.mkdir(parents=True)
            shutil.copyfile(DEPLOY_YAML, home / "dagster.yaml")
            worker_env = {**env, "DAGSTER_HOME": str(home), "NEXUS_WORKER_NAME": name,
                          "NEXUS_WORKER_CONCURRENCY": "1",
                          "PATH": f"{BIN}{os.pathsep}{env.get('PATH', os.defpath)}"}
            if specs is not None:
                shutil.copytree(specs, cwd / "job_specs")
                worker_env["NEXUS_JOB_SPECS"] = str(cwd / "job_specs")
            log = cwd / "worker.log"
            with log.open("w") as out:
                process = subprocess.Popen(
                    ["bash", str(WORKER_SH)], cwd=cwd, env=worker_env, stdout=out,
                    stderr=subprocess.STDOUT, start_new_session=True)
            workers.append(Worker(name, process, home, log))
        deadline = time.monotonic() + timeout
        for worker in workers:
            _wait_ready(worker, deadline)
        yield workers
    finally:
        for worker in workers:
            stop_group(worker.process, signal.SIGTERM)
