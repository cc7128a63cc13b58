"""One run of a job at a time, and one writer per target, whatever launched the run.

A run takes its locks before it reads its cursors and lets go only after the new cursors are
recorded, so two runs never interleave cursor read -> load -> commit -> cursor write:

* ``job <key>``: a file lock in the Dagster instance's folder (every launch method on one
  instance: ``dagster job execute``, ``dg launch``, the daemon, ``execute_in_process``, the
  Python API);
* ``target ...`` for each target: a PostgreSQL advisory lock or a MariaDB/MySQL ``GET_LOCK``
  in the target database itself, keyed by the table's qualified name (so it also holds across
  machines and instances, and for two jobs writing one table); any other target (files,
  objects, SQLite, other systems) gets a file lock next to the job lock, keyed by where the
  target lives.

Locks are taken in the order of their names (no two runs can wait for each other), polled
until ``NEXUS_LOCK_TIMEOUT`` seconds (default 3600) have passed, then the run fails with
:class:`~nexus_dagster.errors.RunLockError` naming the lock. The operating system or the
database server drops a lock when its process or session dies, so a killed run never leaves
one behind.

Example:
    >>> with hold(run_locks(spec, opener, Path(".dagster_home/nexus_locks")),
    ...           holder="run 1234"):  # doctest: +SKIP
    ...     ...  # read cursors, load, record the new cursors
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa

from nexus_dagster import secrets
from nexus_dagster.connectors.base import Connector
from nexus_dagster.connectors.database import DatabaseConnector
from nexus_dagster.errors import RunLockError
from nexus_dagster.spec.models import DataSource, DataTarget

__all__ = ["DEFAULT_TIMEOUT", "TIMEOUT_ENV", "DatabaseLock", "FileLock", "Lock", "NamedLock",
           "hold", "lock_timeout", "run_locks"]

TIMEOUT_ENV = "NEXUS_LOCK_TIMEOUT"
DEFAULT_TIMEOUT = 3600.0
_POLL_SECONDS = 0.25


class Lock(Protocol):
    """A lock that can be tried without waiting."""

    def try_acquire(self, holder: str) -> bool: ...

    def holder(self) -> str | None: ...

    def release(self) -> None: ...


class FileLock:
    """An exclusive ``flock`` on a file; the holder's description is written into it."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def try_acquire(self, holder: str) -> bool:
        """Take the lock if it is free."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder.encode(), 0)
        self._fd = fd
        return True

    def holder(self) -> str | None:
        """Who holds the lock, as its holder wrote it (None when unknown)."""
        try:
            return self.path.read_text().strip() or None
        except OSError:
            return None

    def release(self) -> None:
        """Let go (closing the file drops the lock)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None


class DatabaseLock:
    """A session lock in a PostgreSQL (``pg_try_advisory_lock``) or MySQL/MariaDB
    (``GET_LOCK``) database, held on a connection of its own."""

    def __init__(self, connector: DatabaseConnector, name: str):
        self.connector = connector
        digest = hashlib.sha256(name.encode()).digest()
        self.pg_key = int.from_bytes(digest[:8], "big", signed=True)
        self.mysql_name = "nexus:" + digest.hex()[:40]
        self._connection: sa.Connection | None = None

    def try_acquire(self, holder: str) -> bool:
        """Take the lock if it is free (a connection is opened on first use)."""
        if self._connection is None:
            self._connection = self.connector.engine.connect()
        if self.connector.backend == "postgresql":
            statement = sa.text("SELECT pg_try_advisory_lock(:key)").bindparams(key=self.pg_key)
        else:
            statement = sa.text("SELECT GET_LOCK(:name, 0)").bindparams(name=self.mysql_name)
        taken = bool(self._connection.execute(statement).scalar())
        self._connection.commit()
        return taken

    def holder(self) -> str | None:
        """Unknown: the database knows only the session that holds it."""
        return None

    def release(self) -> None:
        """Let go and close the lock's connection (ending the session drops it too)."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        with contextlib.suppress(Exception):
            if self.connector.backend == "postgresql":
                connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"),
                                   {"key": self.pg_key})
            else:
                connection.execute(sa.text("SELECT RELEASE_LOCK(:name)"),
                                   {"name": self.mysql_name})
        with contextlib.suppress(Exception):
            connection.close()


@dataclass
class NamedLock:
    """A lock and what it guards (used in messages and for the order locks are taken in)."""

    name: str
    lock: Lock
    #: the connector the lock was made from, closed after the lock is released
    connector: Connector | None = None


def _slug(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def run_locks(
    spec: Any, opener: Callable[[DataSource | DataTarget], Connector], folder: Path
) -> list[NamedLock]:
    """The locks a run of ``spec`` holds: its job's, then one per target (see the module
    docstring). ``opener`` makes the targets' connectors; ``folder`` holds the file locks."""
    job = spec.job
    locks = [NamedLock(f"job {job.key}", FileLock(folder / f"job-{job.key}.lock"))]
    for target in job.targets:
        connector = opener(target)
        if isinstance(connector, DatabaseConnector) and connector.backend in (
            "postgresql", "mysql"
        ) and target.table:  # fmt: skip
            where = connector.qualified_name(target.table)
            locks.append(NamedLock(f"target table {where}",
                                   DatabaseLock(connector, f"nexus target {where}"), connector))
            continue
        path = target.table or connector.resolve_path(target.file_path, spec.root) or ""
        where = f"{target.target_type} {connector.describe()} {path}"
        connector.close()
        locks.append(NamedLock(f"target {secrets.mask(where)}",
                               FileLock(folder / f"target-{_slug(where)}.lock")))
    return locks


def lock_timeout() -> float:
    """Seconds a run waits for a lock: ``$NEXUS_LOCK_TIMEOUT`` or 3600."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    try:
        return float(raw) if raw else DEFAULT_TIMEOUT
    except ValueError:
        raise RunLockError(
            f"{TIMEOUT_ENV}={raw!r} is not a number of seconds; set it to e.g. 600"
        ) from None


@contextmanager
def hold(
    locks: Sequence[NamedLock], *, holder: str, timeout: float | None = None, log: Any = None
) -> Iterator[None]:
    """Take every lock (in name order, waiting up to ``timeout`` seconds in all), run the
    block, let go of every lock.

    Raises:
        RunLockError: a lock was still held by another run when the time was up.
    """
    limit = lock_timeout() if timeout is None else timeout
    deadline = time.monotonic() + limit
    taken: list[NamedLock] = []
    try:
        for named in sorted(locks, key=lambda n: n.name):
            waited = False
            while not named.lock.try_acquire(holder):
                other = named.lock.holder()
                by = f" by {other}" if other else ""
                if time.monotonic() >= deadline:
                    raise RunLockError(
                        f"{named.name} is still held{by} after {limit:g} s: another run of this "
                        f"job, or of another job writing the same target, is loading; this run "
                        f"read and wrote nothing. Run again when it has finished, or wait longer "
                        f"with {TIMEOUT_ENV}=<seconds>"
                    )
                if not waited and log is not None:
                    log.info(f"waiting for {named.name}, held{by} (at most {limit:g} s, "
                             f"{TIMEOUT_ENV})")
                waited = True
                time.sleep(_POLL_SECONDS)
            taken.append(named)
        yield
    finally:
        for named in reversed(taken):
            named.lock.release()
        for named in locks:
            if named.connector is not None:
                with contextlib.suppress(Exception):
                    named.connector.close()
