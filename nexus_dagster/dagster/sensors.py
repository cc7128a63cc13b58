"""New-file sensors: a Dagster run for each new or changed file under a file source's path.

Opt in per job with ``sensor: {new_files: true, interval_seconds: 60}`` (``source:`` picks the
source when the job has several file-like ones). Each tick lists the source's ``file_path`` (a
file, a glob or a prefix) on its store (local disk, S3, Azure Blob, GCS, SFTP, FTP) and yields
one ``RunRequest`` per file whose version (ETag/generation/mtime and size) was not seen yet:

* ``run_key`` = ``<file>@<version>``, so Dagster never runs the same file version twice;
* the sensor cursor remembers every file's last version, so a tick only reports what changed;
* the run's tags carry the file (:data:`SOURCE_TAG`, :data:`FILE_TAG`); the ETL step reads that
  one file instead of the whole ``file_path``.

Example:
    >>> # job_specs/invoices.yaml
    >>> # sensor: {new_files: true, interval_seconds: 60}
    >>> # sources: [{name: inbox, source_type: s3, connection: lake, file_path: "in/*.csv"}]
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import dagster as dg

from nexus_dagster import secrets
from nexus_dagster.dagster.resources import endpoint_opener, endpoint_resource_key
from nexus_dagster.errors import NexusError, SpecError
from nexus_dagster.spec.loader import JobSpec

if TYPE_CHECKING:
    from nexus_dagster.connectors.file import FileConnector

__all__ = ["FILE_TAG", "SOURCE_TAG", "list_files", "new_file_sensor", "source_files_from_tags"]

#: run tag naming the source a sensor run reads one file for
SOURCE_TAG = "nexus/source"
#: run tag holding that file (in a form the source's connector resolves)
FILE_TAG = "nexus/source_file"


def source_files_from_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """``{source name: file}`` for a run started by a new-file sensor, else ``{}``."""
    if tags.get(SOURCE_TAG) and tags.get(FILE_TAG):
        return {tags[SOURCE_TAG]: tags[FILE_TAG]}
    return {}


def list_files(connector: FileConnector, pattern: str) -> dict[str, str]:
    """Every file a path, glob or prefix names on the connector's store -> its version."""
    # the file connectors (fsspec, the format readers) load when a sensor ticks, not with the
    # definitions
    from nexus_dagster.connectors.file import has_glob, is_temp_file
    from nexus_dagster.connectors.remote import file_version

    fs = connector.filesystem()
    resolved = connector.resolve(pattern)
    if has_glob(resolved):
        found = fs.glob(resolved, detail=True)
    elif fs.isdir(resolved.rstrip("/") or "/"):
        found = fs.find(resolved.rstrip("/") or "/", detail=True)
    elif fs.exists(resolved):
        found = {resolved: fs.info(resolved)}
    else:
        found = {}
    return {
        path: file_version(info)
        for path, info in sorted(found.items())
        if info.get("type") == "file" and not is_temp_file(path)
    }


def _pick_source(spec: JobSpec):
    job = spec.job
    wanted = job.sensor.source if job.sensor else None
    candidates = [s for s in job.sources if s.file_path]
    if wanted:
        candidates = [s for s in candidates if s.name == wanted]
    if not candidates:
        where = f"source {wanted!r} with a file_path" if wanted else "a source with a file_path"
        raise SpecError(f"job {job.key}: sensor.new_files needs {where}")
    return candidates[0]


def new_file_sensor(
    spec: JobSpec, job_def: Any, spec_resources: Mapping[str, Any] | None = None
) -> dg.SensorDefinition:
    """The new-file sensor of a job whose spec has ``sensor: {new_files: true}``;
    ``spec_resources`` are the job's generated resources (see
    :func:`~nexus_dagster.dagster.resources.endpoint_opener`)."""
    job = spec.job
    source = _pick_source(spec)
    settings = job.sensor

    def evaluate(context: dg.SensorEvaluationContext) -> Iterator[dg.RunRequest | dg.SkipReason]:
        seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        connector = endpoint_opener(job, spec.root, context.resources, spec_resources)(source)
        try:
            pattern = connector.resolve_path(source.file_path, spec.root)
            files = list_files(connector, str(pattern))
            new = {p: v for p, v in files.items() if seen.get(p) != v}
            if not new:
                yield dg.SkipReason(f"no new or changed file under {source.file_path}")
                return
            user_path = getattr(connector, "user_path", lambda p: p)
            for path, version in new.items():
                shown = connector.location(path)
                yield dg.RunRequest(
                    run_key=f"{shown}@{version}",
                    tags={SOURCE_TAG: source.name, FILE_TAG: user_path(path)},
                )
            context.update_cursor(json.dumps({**seen, **new}, sort_keys=True))
        except NexusError as exc:
            raise type(exc)(secrets.mask(str(exc))) from None
        finally:
            connector.close()

    return dg.SensorDefinition(
        name=f"{job.key}_new_files",
        evaluation_fn=evaluate,
        job=job_def,
        minimum_interval_seconds=settings.interval_seconds,
        required_resource_keys={endpoint_resource_key(job, source)},
        description=f"Runs {job.key} for each new or changed file under {source.file_path}",
        default_status=(
            dg.DefaultSensorStatus.RUNNING if job.enabled else dg.DefaultSensorStatus.STOPPED
        ),
    )
