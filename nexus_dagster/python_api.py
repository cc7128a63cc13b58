"""The Nexus Python API on Dagster: ETLManager, ETLMetrics, ETLStatus, SecurityManager,
ConnectorFactory.

Jobs made in Python are the same model as YAML specs: ``create_job`` saves them as specs under
``<workspace_dir>/jobs/`` (open them in the UI with ``NEXUS_JOB_SPECS=<workspace_dir>/jobs
nexus ui``), and ``execute_job`` runs them through Dagster with a Dagster instance rooted in
``<workspace_dir>/.dagster``, so run history survives the process.

Example:
    >>> from nexus_dagster import (ETLManager, ETLJob, DataSource, DataTarget, SourceType,
    ...                            TargetType)
    >>> manager = ETLManager(workspace_dir="./etl_workspace")
    >>> job = ETLJob(
    ...     name="Export Users",
    ...     sources=[DataSource(name="users", source_type=SourceType.DATABASE,
    ...                         connection_params={"type": "sqlite", "database": "app.db"},
    ...                         table="users")],
    ...     targets=[DataTarget(name="csv_export", target_type=TargetType.FILE,
    ...                         file_path="./output/users.csv", file_format="csv")],
    ... )
    >>> job_id = manager.create_job(job)
    >>> metrics = manager.execute_job(job_id)
    >>> print(metrics.status.value, metrics.rows_loaded)
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from nexus_dagster import secrets
from nexus_dagster.connectors.base import Connector
from nexus_dagster.errors import NexusError, SpecError
from nexus_dagster.run.endpoints import endpoint_params_unresolved, open_connector
from nexus_dagster.spec.connections import endpoint_role, endpoint_type
from nexus_dagster.spec.loader import JobSpec, Project, load_project
from nexus_dagster.spec.models import DataSource, DataTarget, ETLJob
from nexus_dagster.spec.validate import check_job

_DAGSTER_YAML = "telemetry:\n  enabled: false\n"


class _SpecDumper(yaml.SafeDumper):
    """Writes specs as a person would: multi-line text (custom code, queries) as blocks."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_SpecDumper.add_representer(str, _str_representer)


class ETLStatus(StrEnum):
    """The state of a run (``metrics.status.value`` gives the text)."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass
class ETLMetrics:
    """What one run did, read from the Dagster instance."""

    job_id: str
    run_id: str
    status: ETLStatus
    start_time: dt.datetime | None = None
    end_time: dt.datetime | None = None
    duration: float = 0.0
    rows_extracted: int = 0
    rows_transformed: int = 0
    rows_loaded: int = 0
    rows_failed: int = 0
    errors: list[str] = field(default_factory=list)


class SecurityManager:
    """Encrypts and decrypts values with Fernet.

    ``master_key`` is a Fernet key (``nexus keygen``) or any passphrase (a key is derived from
    it); without one, ``$MASTER_ENCRYPTION_KEY`` is used. Several keys separated by commas
    decrypt old tokens during a rotation; the first encrypts.

    Example:
        >>> security = SecurityManager(master_key="your-secure-key")
        >>> token = security.encrypt("my-password")
        >>> security.decrypt(token)
        'my-password'
    """

    def __init__(self, master_key: str | None = None):
        self.master_key = master_key or os.environ.get(secrets.MASTER_KEY_ENV)
        if self.master_key:
            for key in self.master_key.split(","):
                secrets.register_secret(key.strip())

    @property
    def available(self) -> bool:
        """True when a key is configured."""
        return bool(self.master_key)

    def encrypt(self, value: str) -> str:
        """``enc:<token>``, usable as a value in specs and connection_params."""
        return secrets.encrypt_value(value, keys=self._keys())

    def decrypt(self, token: str) -> str:
        """The plaintext of ``enc:<token>`` (or a bare token); a wrong key is a SpecError."""
        token = token.removeprefix(secrets.ENC_PREFIX)
        return secrets.decrypt_token(token, keys=self._keys())

    def encrypt_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """Encrypt every sensitive value (password, secret, token, key...) not yet protected."""
        out: dict[str, Any] = {}
        for key, value in params.items():
            if isinstance(value, dict):
                out[key] = self.encrypt_params(value)
            elif (
                isinstance(value, str)
                and secrets.is_sensitive(str(key))
                and not value.startswith(secrets.ENC_PREFIX)
                and "${" not in value
            ):
                out[key] = self.encrypt(value)
            else:
                out[key] = value
        return out

    def _keys(self) -> str:
        if not self.master_key:
            raise SpecError(
                "encryption needs a master key: SecurityManager(master_key=...) or "
                f"${secrets.MASTER_KEY_ENV} (create one with `nexus keygen`)"
            )
        return self.master_key


class ConnectorFactory:
    """Connectors for sources and targets of the Python API (e.g. for health checks).

    Example:
        >>> connector = ConnectorFactory.create_source_connector(source, SecurityManager())
        >>> connector.test_connection()
        True
    """

    @staticmethod
    def create_source_connector(
        source: DataSource, security: SecurityManager | None = None
    ) -> Connector:
        """The connector of a source, its params resolved (``${ENV}``, ``enc:``)."""
        return _connector(source, security)

    @staticmethod
    def create_target_connector(
        target: DataTarget, security: SecurityManager | None = None
    ) -> Connector:
        """The connector of a target, its params resolved (``${ENV}``, ``enc:``)."""
        return _connector(target, security)


def _connector(endpoint: DataSource | DataTarget, security) -> Connector:
    if endpoint.connection:
        raise SpecError(
            f"{endpoint.name}: named connections live in connections.yaml; "
            "give connection_params in Python"
        )
    keys = security.master_key if security else None
    with secrets.master_keys(keys):
        return open_connector(
            endpoint_type(endpoint), endpoint_params_unresolved(endpoint, {}), root=Path.cwd(),
            role=endpoint_role(endpoint), where=endpoint.name,
        )  # fmt: skip


class ETLManager:
    """Create, store, run and inspect jobs; runs go through Dagster.

    Args:
        workspace_dir: where job specs (``jobs/``) and the Dagster instance (``.dagster/``)
            live.
        security: the SecurityManager used for ``encrypted=True`` endpoints (default: one
            built from ``$MASTER_ENCRYPTION_KEY``).
    """

    def __init__(
        self, workspace_dir: str | os.PathLike = "./etl_workspace",
        security: SecurityManager | None = None,
    ):
        self.workspace_dir = Path(workspace_dir).resolve()
        self.jobs_dir = self.workspace_dir / "jobs"
        self.dagster_home = self.workspace_dir / ".dagster"
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.dagster_home.mkdir(parents=True, exist_ok=True)
        config = self.dagster_home / "dagster.yaml"
        if not config.exists():
            config.write_text(_DAGSTER_YAML)
        self.security = security or SecurityManager()

    # ---------------------------------------------------------------- job registry
    def create_job(self, job: ETLJob) -> str:
        """Validate and save a job; returns its job_id.

        Raises:
            SpecError: the job is invalid, uses a type that is not supported yet, or its name
                is taken by another job.
        """
        job = self._prepared(job)
        if self._find(job.job_id) is not None:
            raise SpecError(f"a job with job_id {job.job_id!r} exists; use update_job")
        for other in self.list_jobs():
            if other.key == job.key:
                raise SpecError(
                    f"job name {job.name!r} is taken by job {other.job_id} "
                    f"(both become Dagster job {job.key!r}); choose another name"
                )
        self._save(job)
        return job.job_id

    def update_job(self, job: ETLJob) -> None:
        """Replace a saved job (matched by job_id)."""
        job = self._prepared(job)
        path = self._find(job.job_id)
        if path is None:
            raise SpecError(f"no job with job_id {job.job_id!r}; use create_job")
        path.unlink()
        self._save(job)

    def delete_job(self, job_id: str) -> None:
        """Delete a saved job; its run history stays in the Dagster instance."""
        path = self._find(job_id)
        if path is None:
            raise SpecError(f"no job with job_id {job_id!r}")
        path.unlink()

    def get_job(self, job_id: str) -> ETLJob:
        """The saved job (sensitive values of encrypted endpoints stay encrypted)."""
        path = self._find(job_id)
        if path is None:
            raise SpecError(f"no job with job_id {job_id!r}")
        return ETLJob.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))

    def list_jobs(self) -> list[ETLJob]:
        """Every saved job, by name."""
        jobs = [
            ETLJob.model_validate(yaml.safe_load(p.read_text(encoding="utf-8")))
            for p in sorted(self.jobs_dir.glob("*.yaml"))
        ]
        return sorted(jobs, key=lambda j: j.name)

    # ---------------------------------------------------------------- running
    def execute_job(self, job_id: str) -> ETLMetrics:
        """Run a job through Dagster now and return its metrics.

        A failed run returns ``ETLStatus.FAILED`` with the (masked) error text; it does not
        raise. An unknown job_id raises SpecError.
        """
        from nexus_dagster.dagster import execution

        spec = self._job_spec(job_id)
        project = Project(jobs=[spec], connections={}, root=self.workspace_dir)
        job_id = spec.job.job_id or job_id
        with secrets.master_keys(self.security.master_key):
            report = execution.execute_job(project, spec.job.key, dagster_home=self.dagster_home,
                                           tags={"nexus/job_id": job_id})
        return _metrics(job_id, report)

    def get_job_metrics(self, job_id: str, limit: int = 10) -> list[ETLMetrics]:
        """Run history of a job from the Dagster instance, newest first."""
        from nexus_dagster.dagster import execution

        job = self.get_job(job_id)
        reports = execution.run_history(self.dagster_home, job.key, limit)
        return [_metrics(job.job_id or job_id, report) for report in reports]

    # ---------------------------------------------------------------- helpers
    def _prepared(self, job: ETLJob) -> ETLJob:
        """Give the job an id, absolute file paths, encrypted secrets; check it."""
        data = job.model_dump(mode="json", exclude_unset=True)
        data["job_id"] = job.job_id or str(uuid.uuid4())
        for kind in ("sources", "targets"):
            for endpoint in data[kind]:
                path = endpoint.get("file_path")
                if path and "://" not in path and not Path(path).is_absolute():
                    endpoint["file_path"] = str(Path(path).resolve())
                params = endpoint.get("connection_params") or {}
                database = params.get("database")
                if (
                    str(params.get("type", "")).startswith("sqlite")
                    and isinstance(database, str)
                    and database not in ("", ":memory:")
                    and not Path(database).is_absolute()
                ):
                    params["database"] = str(Path(database).resolve())
                if endpoint.get("encrypted") and params:
                    endpoint["connection_params"] = self.security.encrypt_params(params)
        prepared = ETLJob.model_validate(data)
        spec = JobSpec(job=prepared, file=None, root=self.workspace_dir)
        problems = check_job(spec, {})
        if problems:
            raise SpecError(problems)
        return prepared

    def _save(self, job: ETLJob) -> None:
        data = job.model_dump(mode="json", exclude_defaults=True)
        data = {"name": job.name, "job_id": job.job_id, **data}
        path = self.jobs_dir / f"{job.key}.yaml"
        temp = path.with_suffix(".yaml.tmp")
        temp.write_text(
            yaml.dump(data, Dumper=_SpecDumper, sort_keys=False, allow_unicode=True),
            encoding="utf-8",
        )
        os.replace(temp, path)

    def _find(self, job_id: str | None) -> Path | None:
        if not job_id:
            return None
        for path in self.jobs_dir.glob("*.yaml"):
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            if data.get("job_id") == job_id:
                return path
        return None

    def _job_spec(self, job_id: str) -> JobSpec:
        path = self._find(job_id)
        if path is None:
            raise SpecError(f"no job with job_id {job_id!r}")
        project = load_project(path)
        return project.jobs[0]


def _metrics(job_id: str, report: Any) -> ETLMetrics:
    """ETLMetrics of a run report (:class:`nexus_dagster.dagster.execution.RunReport`)."""
    shared = {f.name: getattr(report, f.name) for f in fields(ETLMetrics)
              if f.name not in ("job_id", "status", "errors") and hasattr(report, f.name)}
    return ETLMetrics(job_id=job_id, status=ETLStatus(report.status),
                      errors=list(report.errors), **shared)


__all__ = [
    "ConnectorFactory",
    "ETLManager",
    "ETLMetrics",
    "ETLStatus",
    "NexusError",
    "SecurityManager",
]
