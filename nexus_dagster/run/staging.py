"""Staged extractions of a job split into steps (``execution: {steps: per_source}``).

Each source's extraction step reads the source as the one-step run does (the stored cursor,
pushed down to the connector or applied with
:func:`~nexus_dagster.run.cursors.filter_cursor`; a partition's window; a sensor's file) and
writes the rows as one Parquet file through the staging connection's own connector (file, S3,
Azure Blob or GCS), under ``<staging_path>/<job>/<root run id>/<source>/``; a small JSON manifest
written last marks the extraction complete (rows, the cursor and state it started from, the
connector state it ended with, the schema). The load step reads the staged files instead of
the sources (:attr:`~nexus_dagster.run.plan.RunContext.staged`), refuses them when another run
committed the source since (:func:`check_fresh`), and removes the run's prefix after success;
after a failure the files stay, so a re-execution from the failure reuses them.

Example:
    >>> area = open_staging(spec, project.connections, scope=root_run_id)  # doctest: +SKIP
    >>> extract_source(context, spec.job.sources[0], area)  # doctest: +SKIP
    >>> staged = area.staged(spec.job.sources)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from nexus_dagster import secrets
from nexus_dagster.connectors.base import Connector, ReadRequest, WriteRequest
from nexus_dagster.errors import NexusError
from nexus_dagster.relation import Relation
from nexus_dagster.run.endpoints import open_connector
from nexus_dagster.run.plan import RunContext
from nexus_dagster.run.source_reads import cursor_filtered, run_read_request
from nexus_dagster.spec.execution_settings import DEFAULT_STAGING_FOLDER, Execution
from nexus_dagster.spec.models import DataSource

__all__ = [
    "MANIFEST",
    "StagedSource",
    "StagingArea",
    "StaleExtractionError",
    "check_fresh",
    "extract_source",
    "open_staging",
]

MANIFEST = "manifest.json"
DATA_FILE = "data.parquet"


class StaleExtractionError(NexusError):
    """Another run committed a source after this run's extraction of it started: loading the
    staged rows would load them twice or skip some. Re-run the job."""


@dataclass
class StagedSource:
    """One source's staged extraction: its rows, and what the extraction started from."""

    relation: Relation
    manifest: dict[str, Any]

    @property
    def stored_cursor(self) -> dict[str, Any] | None:
        """The cursor the job had stored when this extraction read the source."""
        return self.manifest.get("stored_cursor")

    @property
    def stored_state(self) -> dict[str, Any] | None:
        """The connector state the job had stored when this extraction read the source."""
        return self.manifest.get("stored_state")


class StagingArea:
    """The staging prefix of one run of one job on the staging connector.

    Attributes:
        connector: the staging connection's file-like connector (file, s3, azure_blob, gcs).
        prefix: ``<staging_path>/<job>/<scope>``, relative to the connector's base.
    """

    def __init__(self, connector: Connector, prefix: str):
        self.connector = connector
        self.prefix = prefix

    def folder(self, source: str) -> str:
        """The prefix of one source's staged files."""
        return posixpath.join(self.prefix, source)

    def data_path(self, source: str) -> str:
        """The Parquet file of one source's rows."""
        return posixpath.join(self.folder(source), DATA_FILE)

    def location(self) -> str:
        """Where the run's staged files are, for messages (no secret)."""
        return self.connector.location(self.connector.resolve(self.prefix))

    def write_manifest(self, source: str, manifest: Mapping[str, Any]) -> None:
        """Write a source's manifest (the last file of its extraction)."""
        fs = self.connector.filesystem()
        path = self.connector.resolve(posixpath.join(self.folder(source), MANIFEST))
        fs.makedirs(posixpath.dirname(path), exist_ok=True)
        with fs.open(path, "wb") as handle:
            handle.write(json.dumps(manifest, sort_keys=True).encode())

    def manifest(self, source: str) -> dict[str, Any] | None:
        """A source's manifest, or None when its extraction did not complete."""
        fs = self.connector.filesystem()
        path = self.connector.resolve(posixpath.join(self.folder(source), MANIFEST))
        fs.invalidate_cache()
        try:
            return json.loads(fs.cat_file(path))
        except FileNotFoundError:
            return None

    def clear(self, source: str | None = None) -> None:
        """Delete one source's staged files (the manifest first), or the whole run prefix."""
        fs = self.connector.filesystem()
        fs.invalidate_cache()
        if source is not None:
            manifest = self.connector.resolve(posixpath.join(self.folder(source), MANIFEST))
            if fs.exists(manifest):
                fs.rm(manifest)
        path = self.connector.resolve(self.folder(source) if source else self.prefix)
        if fs.exists(path):
            fs.rm(path, recursive=True)
        fs.invalidate_cache()

    def staged(self, sources: Iterable[DataSource]) -> dict[str, StagedSource]:
        """The staged extraction of every source.

        Raises:
            NexusError: a source has no complete extraction (no manifest).
        """
        found: dict[str, StagedSource] = {}
        for source in sources:
            manifest = self.manifest(source.name)
            if manifest is None:
                raise NexusError(
                    f"source {source.name!r} has no staged extraction in {self.location()} "
                    f"(its extraction step did not finish); re-run the job"
                )
            relation = self.connector.read(ReadRequest(path=self.data_path(source.name),
                                                       file_format="parquet",
                                                       batch_size=source.batch_size))
            stats: dict[str, object] = {}
            if manifest.get("state") is not None:
                stats["state"] = manifest["state"]
            found[source.name] = StagedSource(
                Relation(relation.schema, relation.open, f"source {source.name}", stats),
                manifest,
            )
        return found

    def close(self) -> None:
        """Close the staging connector."""
        self.connector.close()


def open_staging(spec: Any, connections: Mapping[str, Any], scope: str) -> StagingArea:
    """The staging area of one run (``scope``: the root run id, shared by re-executions) of
    ``spec``'s job: the named connection of ``execution.staging``, else a folder (relative:
    from the project root; default ``.nexus/staging``)."""
    job = spec.job
    execution = job.execution or Execution()
    name = execution.staging
    if name is not None and name in connections:
        connection = connections[name]
        kind, params = connection.type, dict(connection.params)
    else:
        kind, params = "file", {"base_dir": name or DEFAULT_STAGING_FOLDER}
    connector = open_connector(kind, params, root=spec.root, role="target",
                               where=f"{job.key}.execution.staging")
    return StagingArea(connector, posixpath.join(execution.staging_path, job.key, scope))


def extract_source(context: RunContext, source: DataSource, area: StagingArea) -> dict[str, Any]:
    """Read one source as the one-step run would and stage its rows; returns the manifest.

    A repeated extraction (a retried or re-executed step) replaces the source's staged files.
    """
    log, window = context.log, context.window
    stored = context.stored_cursors.get(source.name)
    stored_state = context.stored_states.get(source.name)
    connector = context.open(source)
    try:
        request = run_read_request(context, source, connector)
        relation = connector.read(request)
        rows = cursor_filtered(relation, request, connector, source)
        area.clear(source.name)
        if log:
            log.info(secrets.mask(f"stage {source.name} from {connector.describe()} "
                                  f"to {area.location()}"))
        written = area.connector.write(rows, WriteRequest(
            path=area.data_path(source.name), file_format="parquet", write_mode="overwrite",
            batch_size=source.batch_size,
        ))
        manifest = {
            "source": source.name,
            "rows": written.rows_loaded,
            "stored_cursor": stored,
            "stored_state": stored_state,
            "state": relation.stats.get("state"),
            "window": [str(window[0]), str(window[1])] if window is not None else None,
            "schema": {field.name: str(field.type) for field in relation.schema},
        }
        area.write_manifest(source.name, manifest)
        return manifest
    finally:
        connector.close()


def check_fresh(
    staged: Mapping[str, StagedSource],
    stored_cursors: Mapping[str, Any],
    stored_states: Mapping[str, Any],
) -> None:
    """Refuse staged extractions that started from another cursor or state than the one stored
    now (another run committed the source in between).

    Raises:
        StaleExtractionError: naming the source; nothing was loaded.
    """
    for name, item in staged.items():
        now = (stored_cursors.get(name), stored_states.get(name))
        if (item.stored_cursor, item.stored_state) != now:
            raise StaleExtractionError(
                f"source {name!r} was extracted from cursor "
                f"{_shown(item.stored_cursor)}, but another run has since committed it (cursor "
                f"now {_shown(now[0])}); loading the staged rows could load rows twice, so "
                "nothing was loaded: re-run the job (a new run extracts again)"
            )


def _shown(cursor: Mapping[str, Any] | None) -> str:
    return "none" if cursor is None else str(cursor.get("value"))
