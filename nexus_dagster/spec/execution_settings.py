"""The job-level ``execution`` block: how many Dagster steps a job runs as, and on which executor.

Example (YAML)::

    execution:
      steps: per_source          # one (default) | per_source: one extraction step per source,
                                 # staged as Parquet, then one load step
      executor: multiprocess     # in_process | multiprocess | celery (default: in_process for
                                 # steps: one, multiprocess for per_source)
      max_concurrent: 4          # multiprocess only: how many steps run at once
      staging: s3_staging        # a named file/s3/azure/gcs connection, or a folder
                                 # (default: <project root>/.nexus/staging)
      staging_path: nexus-staging   # prefix inside the staging connection
      celery: {broker: "${NEXUS_CELERY_BROKER}", backend: "${NEXUS_CELERY_BACKEND}"}
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: the staging folder under the project root when ``staging`` is not given
DEFAULT_STAGING_FOLDER = ".nexus/staging"
DEFAULT_STAGING_PATH = "nexus-staging"
#: where the Celery broker and result backend come from when ``celery`` does not say
DEFAULT_CELERY_BROKER = "${NEXUS_CELERY_BROKER}"
DEFAULT_CELERY_BACKEND = "${NEXUS_CELERY_BACKEND}"


class CelerySettings(BaseModel):
    """Where the Celery executor's broker and result backend are.

    Attributes:
        broker: the broker URL (``redis://host:6379/0``); ``${ENV}`` references are resolved at
            run time and masked. Default: ``${NEXUS_CELERY_BROKER}``.
        backend: the result backend URL. Default: ``${NEXUS_CELERY_BACKEND}``.
    """

    model_config = ConfigDict(extra="forbid")

    broker: str = Field(DEFAULT_CELERY_BROKER, min_length=1)
    backend: str = Field(DEFAULT_CELERY_BACKEND, min_length=1)


class Execution(BaseModel):
    """How a job runs in Dagster: as one step, or split into one extraction step per source
    plus one load step, on an in-process, multiprocess or Celery executor.

    Attributes:
        steps: ``one`` (default): extract, transform and load in one step. ``per_source``: one
            step per source writes its rows as Parquet to the staging area, then one step
            transforms and loads them (the sources are read concurrently, on several cores or
            machines).
        executor: ``in_process``, ``multiprocess`` or ``celery``; default ``in_process`` for
            ``steps: one``, ``multiprocess`` for ``steps: per_source``.
        max_concurrent: how many steps the multiprocess executor runs at once (default: the
            CPUs).
        staging: where ``per_source`` stages the extracted rows: the name of a ``file``,
            ``s3``, ``azure_blob`` or ``gcs`` connection, or a folder (relative: from the
            project root). Default ``.nexus/staging`` under the project root, which serves one
            machine; steps on several machines need an object store.
        staging_path: the prefix inside the staging connection (default ``nexus-staging``).
        celery: the Celery broker and backend (``executor: celery`` only).

    Example:
        >>> Execution(steps="per_source").executor_name()
        'multiprocess'
    """

    model_config = ConfigDict(extra="forbid")

    steps: Literal["one", "per_source"] = "one"
    executor: Literal["in_process", "multiprocess", "celery"] | None = None
    max_concurrent: int | None = Field(None, ge=1, le=1024)
    staging: str | None = Field(None, min_length=1)
    staging_path: str = Field(DEFAULT_STAGING_PATH, min_length=1)
    celery: CelerySettings | None = None

    @field_validator("staging_path")
    @classmethod
    def _relative_prefix(cls, value: str) -> str:
        parts = value.strip("/").split("/")
        if value.startswith("/") or any(part in ("", ".", "..") for part in parts):
            raise ValueError(
                f"staging_path {value!r} must be a relative prefix without empty, '.' or '..' "
                "parts; write e.g. nexus-staging or team/nexus-staging"
            )
        return value.strip("/")

    @model_validator(mode="after")
    def _consistent(self) -> Execution:
        executor = self.executor_name()
        if self.steps == "one" and executor == "multiprocess":
            raise ValueError(
                "executor: multiprocess runs a steps: one job as a single step in a second "
                "process, which parallelizes nothing; set steps: per_source to run the sources "
                "concurrently (or parallel: true for engine threads in one step)"
            )
        if self.max_concurrent is not None and executor != "multiprocess":
            raise ValueError(
                f"max_concurrent applies to the multiprocess executor, not {executor}; remove "
                "it or set executor: multiprocess"
            )
        if self.celery is not None and executor != "celery":
            raise ValueError(
                f"celery settings apply to executor: celery, not {executor}; remove them or "
                "set executor: celery"
            )
        if self.steps == "one" and ("staging" in self.model_fields_set
                                    or "staging_path" in self.model_fields_set):
            raise ValueError(
                "staging and staging_path apply to steps: per_source (a steps: one job stages "
                "nothing); remove them or set steps: per_source"
            )
        return self

    def executor_name(self) -> str:
        """The executor used: ``executor``, or the default for ``steps``."""
        if self.executor is not None:
            return self.executor
        return "multiprocess" if self.steps == "per_source" else "in_process"

    def celery_settings(self) -> CelerySettings:
        """The ``celery`` block, or its defaults (broker and backend from the environment)."""
        return self.celery if self.celery is not None else CelerySettings()
