"""Project check of ``sensor: {new_files: true}``: it needs a file-like source with a file_path.

Called from :func:`nexus_dagster.spec.validate.check_job`, so ``nexus validate`` reports the
problem with file:line instead of the Dagster definitions failing to build.
"""

from __future__ import annotations

from nexus_dagster.connectors.registry import connector_class
from nexus_dagster.errors import SpecError, SpecProblem, UnsupportedError
from nexus_dagster.spec.validate_operations import problem_at

__all__ = ["sensor_problems"]


def sensor_problems(spec) -> list[SpecProblem]:
    """Problems of a job's new-file sensor (the source it watches)."""
    job = spec.job
    sensor = job.sensor
    if sensor is None or not sensor.new_files:
        return []
    names = [s.name for s in job.sources]
    if sensor.source is not None and sensor.source not in names:
        return [problem_at(
            spec, ("sensor", "source"), f"sensor.source {sensor.source!r} is not a source of "
            "this job", f"use one of: {', '.join(names)}",
        )]
    candidates = [s for s in job.sources if sensor.source in (None, s.name)]
    watched = [s for s in candidates if s.file_path]
    if not watched:
        which = f"source {sensor.source!r}" if sensor.source else "no source"
        return [problem_at(
            spec, ("sensor", "source") if sensor.source else ("sensor",),
            f"sensor.new_files watches a source's file_path, but {which} has one",
            "add file_path (a file, glob or prefix) to the source, or remove the sensor",
        )]
    from nexus_dagster.connectors.file import FileConnector  # fsspec and the readers: lazily

    source = watched[0]
    kind = source.source_type
    try:
        cls = connector_class(kind)
    except (UnsupportedError, SpecError, ImportError):
        return []  # reported by the endpoint checks
    if not issubclass(cls, FileConnector):
        index = job.sources.index(source)
        return [problem_at(
            spec, ("sources", index, "source_type"),
            f"sensor.new_files lists files, but source {source.name!r} is {kind!r}",
            "watch a file, s3, azure_blob, gcs, sftp or ftp source, or remove the sensor",
        )]
    return []
