"""Every naming decision from spec to Dagster, in one overridable class.

Example:
    >>> class MyTranslator(NexusTranslator):
    ...     def group_name(self, job):
    ...         return f"etl_{job.key}"
    >>> defs = definitions_from_folder("job_specs", translator=MyTranslator())  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import dagster as dg

from nexus_dagster import secrets
from nexus_dagster.connectors.registry import connector_class
from nexus_dagster.errors import SpecError
from nexus_dagster.spec.connections import endpoint_role, endpoint_type
from nexus_dagster.spec.models import DataSource, DataTarget, ETLJob

__all__ = ["NexusTranslator"]


@dataclass
class NexusTranslator:
    """Asset keys, groups, kinds, metadata and descriptions of a job's assets; override any
    ``get``-style method to change one decision."""

    def group_name(self, job: ETLJob) -> str:
        """The asset group of a job's assets: the job's key."""
        return job.key

    def source_key(self, job: ETLJob, source: DataSource) -> dg.AssetKey:
        """The asset key of a source: ``<job>/<source>``."""
        return dg.AssetKey([job.key, source.name])

    def target_key(self, job: ETLJob, target: DataTarget) -> dg.AssetKey:
        """The asset key of a target: ``<job>/<target>``."""
        return dg.AssetKey([job.key, target.name])

    def kinds(self, endpoint: DataSource | DataTarget, params: dict[str, Any]) -> set[str]:
        """Dagster kinds: what the endpoint's connector says (its system and format)."""
        type_name = endpoint_type(endpoint)
        file_format = endpoint.file_format or PurePosixPath(endpoint.file_path or "").suffix[1:]
        try:
            cls = connector_class(type_name)
        except SpecError:  # reported by the spec checks; keep definitions loadable
            return {type_name}
        return cls.asset_kinds(type_name, params, file_format or None)

    def metadata(self, endpoint: DataSource | DataTarget, params: dict[str, Any]) -> dict:
        """Static, secret-free facts shown on the asset: where it lives."""
        meta: dict[str, Any] = {}
        if endpoint.connection:
            meta["nexus/connection"] = endpoint.connection
        shown = {k: v for k, v in params.items() if not secrets.is_sensitive(str(k))}
        for key in ("type", "host", "port", "database", "bucket", "container"):
            if key in shown and isinstance(shown[key], str | int):
                meta[f"nexus/{key}"] = str(shown[key])
        if endpoint.table:
            meta["nexus/table"] = endpoint.table
            meta["dagster/table_name"] = endpoint.table
        if getattr(endpoint, "query", None):
            meta["nexus/query"] = dg.MetadataValue.md(f"```sql\n{endpoint.query}\n```")
        if endpoint.file_path:
            meta["nexus/file_path"] = endpoint.file_path
        return meta

    def description(self, endpoint: DataSource | DataTarget) -> str:
        """The spec's description, else what the endpoint reads or writes."""
        if endpoint.description:
            return endpoint.description
        kinds = (("table", endpoint.table), ("file", endpoint.file_path),
                 ("query", getattr(endpoint, "query", None) and "(see nexus/query)"),
                 ("API endpoint", endpoint.api_endpoint))
        what = next((f"{kind} {value}" for kind, value in kinds if value), "")
        return f"{endpoint_role(endpoint).capitalize()} {endpoint.name}: {what}".strip(" :")
