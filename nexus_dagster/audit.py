"""The audit log: one JSON line per run start, per committed load and per run end.

Each line says who ran what, when, where the data went and how many rows moved; it never holds
a credential (connections are named, not shown, and every line passes through
:func:`nexus_dagster.secrets.mask`). Lines are appended with ``O_APPEND`` and fsynced, one
``write()`` each, so concurrent runs never interleave and a crash loses at most the line being
written.

Where: ``$NEXUS_AUDIT_LOG``, else ``<project root>/.dagster_home/audit.jsonl`` (the project root
is the folder holding ``job_specs/``). A sink that cannot be written fails the run, so records
are never dropped silently; ``NEXUS_AUDIT_REQUIRED=0`` turns that into a warning.

Example:
    >>> trail = AuditTrail(spec, run_id="abc")        # doctest: +SKIP
    >>> trail.started(); trail.loaded(event); trail.ended("success")   # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from nexus_dagster import secrets
from nexus_dagster.errors import NexusError

AUDIT_LOG_ENV = "NEXUS_AUDIT_LOG"
AUDIT_REQUIRED_ENV = "NEXUS_AUDIT_REQUIRED"
DEFAULT_FILE = Path(".dagster_home") / "audit.jsonl"

__all__ = [
    "AUDIT_LOG_ENV",
    "AUDIT_REQUIRED_ENV",
    "AuditError",
    "AuditTrail",
    "append_record",
    "audit_path",
]


class AuditError(NexusError):
    """The audit log could not be written (and ``NEXUS_AUDIT_REQUIRED`` is not ``0``)."""


def audit_required() -> bool:
    """False when the deployment accepts losing audit lines (``NEXUS_AUDIT_REQUIRED=0``)."""
    return os.environ.get(AUDIT_REQUIRED_ENV, "1").strip().lower() not in ("0", "false", "no")


def audit_path(root: Path | str | None = None) -> Path:
    """Where audit lines go: ``$NEXUS_AUDIT_LOG``, else ``<root>/.dagster_home/audit.jsonl``."""
    configured = os.environ.get(AUDIT_LOG_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path(root or Path.cwd()) / DEFAULT_FILE


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line to ``path`` (created 0600), in one ``write()``, then fsync.

    Raises:
        OSError: the file cannot be opened or written.
    """
    line = secrets.mask(json.dumps(record, default=str, sort_keys=True)) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        data = line.encode()
        written = os.write(fd, data)
        if written != len(data):
            raise OSError(f"short write to {path} ({written} of {len(data)} bytes)")
        os.fsync(fd)
    finally:
        os.close(fd)


def _who() -> dict[str, str]:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return {"user": user, "host": socket.gethostname()}


def _endpoint(endpoint: Any) -> dict[str, Any]:
    """Name, type and table/file of a source or target: never its connection params."""
    kind = getattr(endpoint, "source_type", None) or getattr(endpoint, "target_type", None)
    info: dict[str, Any] = {"name": endpoint.name, "type": getattr(kind, "value", kind)}
    for key in ("connection", "table", "file_path"):
        value = getattr(endpoint, key, None)
        if value:
            info[key] = value
    return info


class AuditTrail:
    """The audit lines of one run (and the Dagster metadata that mirrors them).

    Args:
        spec: the :class:`~nexus_dagster.spec.loader.JobSpec` being run.
        run_id: the Dagster run id.
        log: a logger-like object (``info``/``warning``): each committed load and the run's
            end get one readable line there (rows and time); the JSON records go to the audit
            file only (and the materializations' metadata), not into the log.
        path: the audit file (default :func:`audit_path` of the spec's project root).
    """

    def __init__(self, spec: Any, run_id: str | None, *, log: Any = None,
                 path: Path | None = None):
        self.spec = spec
        self.run_id = run_id
        self.log = log
        self.path = path or audit_path(spec.root)
        self.rows_loaded = 0
        self.targets_loaded = 0
        self._started = self._last = time.perf_counter()

    def _base(self, event: str) -> dict[str, Any]:
        job = self.spec.job
        return {
            "time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            "event": event,
            "job": job.key,
            "run_id": self.run_id,
            "spec_hash": self.spec.spec_hash,
            **_who(),
        }

    def write(self, record: dict[str, Any]) -> dict[str, Any]:
        """Append ``record``; on failure raise :class:`AuditError` (or warn when not required)."""
        try:
            append_record(self.path, record)
        except OSError as exc:
            message = secrets.mask(f"audit log {self.path} cannot be written: {exc}")
            if audit_required():
                raise AuditError(
                    f"{message} (fix: make it writable, point {AUDIT_LOG_ENV} elsewhere, or set "
                    f"{AUDIT_REQUIRED_ENV}=0 to run without it)"
                ) from None
            if self.log is not None:
                self.log.warning(message)
            return record
        return record

    def _say(self, line: str) -> None:
        """One readable line in the run's log (the record itself stays in the audit file and
        the materialization's ``nexus/audit`` metadata)."""
        if self.log is not None:
            self.log.info(secrets.mask(line))

    def _lap(self) -> float:
        """Seconds since the run started or the previous load committed."""
        now = time.perf_counter()
        lap, self._last = now - self._last, now
        return lap

    def started(self) -> dict[str, Any]:
        """The run-start line: sources and targets by name."""
        job = self.spec.job
        self._started = self._last = time.perf_counter()
        return self.write({
            **self._base("run_start"),
            "status": "started",
            "sources": [_endpoint(s) for s in job.sources],
            "targets": [_endpoint(t) for t in job.targets],
        })

    def loaded(self, event: Any) -> dict[str, Any]:
        """The line of one committed load (a :class:`~nexus_dagster.runner.TargetLoaded`)."""
        result = event.result
        self.rows_loaded += result.rows_loaded
        self.targets_loaded += 1
        record = self.write({
            **self._base("load"),
            "status": "committed",
            "sources": [s.name for s in self.spec.job.sources],
            "target": _endpoint(event.target),
            "write_mode": event.target.write_mode.value,
            "rows_extracted": event.rows_extracted,
            "rows_transformed": event.rows_transformed,
            "rows": result.rows_loaded,
        })
        self._say(f"loaded {event.target.name}: {result.rows_loaded} rows "
                  f"({event.target.write_mode.value}; {event.rows_extracted} extracted, "
                  f"{event.rows_transformed} after the transformations) in {self._lap():.2f} s")
        return record

    def ended(self, status: str, error: BaseException | str | None = None) -> dict[str, Any]:
        """The run-end line: ``success`` or ``failure`` (with the masked error)."""
        record = {**self._base("run_end"), "status": status, "rows": self.rows_loaded}
        if error is not None:
            record["error"] = secrets.mask(error)[:2000]
        record = self.write(record)
        if error is None:
            self._say(f"run {status}: {self.rows_loaded} rows loaded into {self.targets_loaded} "
                      f"target(s) in {time.perf_counter() - self._started:.2f} s")
        return record

    def ended_after_error(self, error: BaseException | str) -> None:
        """The run-end line of a failed run; an audit failure here only warns (the run's own
        error is the one to report)."""
        try:
            self.ended("failure", error)
        except AuditError as exc:
            if self.log is not None:
                self.log.warning(str(exc))
