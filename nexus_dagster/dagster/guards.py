"""What a job's step checks before and after it moves data: the instance it keeps state in, the
locks it holds (one run of a job at a time, one writer per target), and whether its failure is
worth a retry.

* A job with an incremental source keeps its cursor in the Dagster instance. ``dagster job
  execute`` and ``dg launch`` without ``DAGSTER_HOME`` run on a temporary instance
  (``./.tmp_dagster_home_*``, deleted when the command exits): the cursor would be lost and the
  next run would load every row again, so such a run is refused before it reads anything. An
  in-memory instance (``DagsterInstance.ephemeral()``, or ``execute_in_process()`` without
  ``instance=``) keeps the cursor as long as that Python object lives: allowed, with a warning.
* The locks (:mod:`nexus_dagster.run.locks`) live in ``<instance folder>/nexus_locks`` (the
  system temp folder for an ephemeral instance) and in the target databases.
* A failure is retried with the job's retry policy only when
  :func:`nexus_dagster.failures.is_retriable` says so; any other one fails the step at once
  (``dg.Failure(allow_retries=False)``).

Example:
    >>> refuse_ephemeral(context.instance, job, window=None)  # doctest: +SKIP
    >>> raise step_failure(exc, "LoadError: ...")  # doctest: +SKIP
"""

from __future__ import annotations

import tempfile
import traceback
from pathlib import Path
from typing import Any

import dagster as dg

from nexus_dagster import secrets
from nexus_dagster.errors import NexusError
from nexus_dagster.failures import is_retriable
from nexus_dagster.spec.models import ETLJob

__all__ = [
    "FAILURE_KIND_KEY",
    "TEMPORARY_HOME_PREFIX",
    "RunError",
    "failed_step",
    "is_temporary",
    "lock_folder",
    "refuse_ephemeral",
    "step_failure",
]

#: folder name prefix of the instance ``dagster job execute`` / ``dg launch`` make when
#: DAGSTER_HOME is not set (Dagster's ``TMP_DAGSTER_HOME_PREFIX``)
TEMPORARY_HOME_PREFIX = ".tmp_dagster_home_"

#: metadata of a failed step: ``permanent`` (not retried) or ``transient`` (retried)
FAILURE_KIND_KEY = "nexus/failure_kind"


class RunError(NexusError):
    """A run failed; the message is the original error's, with secrets masked."""


def stateful_sources(job: ETLJob) -> list[str]:
    """Names of the job's sources whose cursor lives in the Dagster instance."""
    return [s.name for s in job.sources if s.incremental_column]


def is_temporary(instance: dg.DagsterInstance) -> bool:
    """True for the instance the Dagster CLIs make when DAGSTER_HOME is not set (deleted when
    the command exits)."""
    if instance.is_ephemeral:
        return False
    return Path(instance.root_directory).name.startswith(TEMPORARY_HOME_PREFIX)


def refuse_ephemeral(
    instance: dg.DagsterInstance, job: ETLJob, window: tuple[str, str] | None, log=None
) -> None:
    """Fail (not retried) when a run that needs its cursor runs on the CLI's temporary
    instance; warn on an in-memory one (see the module docstring).

    A partition run reads its window, not the cursor, and is allowed anywhere.
    """
    names = stateful_sources(job)
    if window is not None or not names:
        return
    if instance.is_ephemeral and log is not None:
        log.warning(
            f"job {job.key}: the cursor of {', '.join(names)} is kept in an in-memory Dagster "
            f"instance and lost with it; pass a persistent instance to keep it across processes"
        )
    if not is_temporary(instance):
        return
    raise dg.Failure(
        description=(
            f"job {job.key}: source(s) {', '.join(names)} are incremental and keep their cursor "
            f"in the Dagster instance, but DAGSTER_HOME is not set, so this run uses a temporary "
            f"instance that is deleted when the command exits: the next run would load every "
            f"row again, and append targets would get them twice. Set "
            f"DAGSTER_HOME to the project's instance folder (`export DAGSTER_HOME=$PWD/"
            f".dagster_home`, the one `nexus run` and `nexus ui` use; it needs the project's "
            f"dagster.yaml) and launch again, or run `nexus run {job.key}`"
        ),
        metadata={FAILURE_KIND_KEY: "permanent"},
        allow_retries=False,
    )


def lock_folder(instance: dg.DagsterInstance) -> Path:
    """Where the run's file locks live: ``<instance folder>/nexus_locks`` (shared by every
    process of the instance), or the system temp folder for an in-memory or temporary one."""
    if instance.is_ephemeral or is_temporary(instance):
        return Path(tempfile.gettempdir()) / "nexus-dagster-locks"
    return Path(instance.root_directory) / "nexus_locks"


def step_failure(exc: BaseException, message: str, attempt: int = 1,
                 max_retries: int = 0) -> Exception:
    """What the step raises for ``exc`` (``message`` is its masked text) on attempt ``attempt``
    (1-based) of a step allowed ``max_retries`` retries: a :class:`RunError`, which the job's
    retry policy retries, for a transient failure with retries left; a ``dg.Failure`` that is
    never retried for a permanent one, or for a transient one on the last attempt (so the run
    ends with the error itself, not only Dagster's "Exceeded max_retries")."""
    if is_retriable(exc):
        if attempt <= max_retries:
            return RunError(message)
        return dg.Failure(
            description=f"{message} (a transient error; attempt {attempt} of "
                        f"{max_retries + 1}: retries exhausted)",
            metadata={FAILURE_KIND_KEY: "transient"},
            allow_retries=False,
        )
    return dg.Failure(
        description=f"{message} (a permanent error: not retried)",
        metadata={FAILURE_KIND_KEY: "permanent"},
        allow_retries=False,
    )


def failed_step(context: Any, job: ETLJob, exc: BaseException) -> tuple[str, Exception]:
    """For a step of ``job`` that failed with ``exc``: its masked message (the masked traceback
    is logged) and what the step raises (:func:`step_failure` with the job's retries)."""
    message = secrets.mask(f"{type(exc).__name__}: {exc}")
    context.log.error(secrets.mask("".join(traceback.format_exception(exc))))
    max_retries = job.retries.max_retries if job.retries else 0
    return message, step_failure(exc, message, context.retry_number + 1, max_retries or 0)
