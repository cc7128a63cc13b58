"""Every naming decision from spec to Dagster, in one overridable class.

Asset keys come from where the data lives, so a table written by one job and read by another is
ONE asset and lineage crosses jobs (and code locations that name the table the same way):

* a table of a named connection: ``<connection>/<schema>/<table>`` (``warehouse/daily_revenue``);
* a file or object of a named connection: ``<connection>/<path parts>``;
* without a named connection: ``<type>/<where>/<table or path parts>``, ``<where>`` being the
  database, bucket or container the params name (``file/data/demo/orders_csv``);
* a query, a topic, an API endpoint: the same rule with the query's endpoint name, the topic,
  the URL's host and path.

Every part is made of letters, digits and underscores (other characters become ``_``). A spec
sets ``asset_key`` (``a/b/c`` or a list), ``group_name``, ``owners``, ``tags``, ``metadata``
and ``deps`` on any source or target.

Example:
    >>> class MyTranslator(NexusTranslator):
    ...     def group_name(self, job):
    ...         return f"etl_{job.key}"
    >>> defs = build_definitions(load_project("job_specs"), MyTranslator())  # doctest: +SKIP
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import dagster as dg

from nexus_dagster import secrets
from nexus_dagster.connectors.registry import connector_class
from nexus_dagster.errors import SpecError
from nexus_dagster.spec.connections import endpoint_role, endpoint_type
from nexus_dagster.spec.loader import JobSpec
from nexus_dagster.spec.models import DataSource, DataTarget, ETLJob

__all__ = ["NexusTranslator", "key_part"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_]+")


def key_part(text: Any) -> str:
    """``text`` as an asset key part: letters, digits and underscores only."""
    return _UNSAFE.sub("_", str(text)).strip("_") or "_"


@dataclass
class NexusTranslator:
    """Asset keys, groups, kinds, metadata and descriptions of a job's assets; override any
    method to change one decision."""

    def group_name(self, job: ETLJob) -> str:
        """The asset group of a job's targets (and of sources no other job writes)."""
        return job.key

    def asset_key(
        self, job: ETLJob, endpoint: DataSource | DataTarget, params: dict[str, Any]
    ) -> dg.AssetKey:
        """The spec's ``asset_key``, else where the data lives (see the module docstring)."""
        if endpoint.asset_key:
            return dg.AssetKey.from_user_string(endpoint.asset_key) if isinstance(
                endpoint.asset_key, str) else dg.AssetKey(list(endpoint.asset_key))
        return dg.AssetKey([key_part(p) for p in self.location(job, endpoint, params)])

    def location(
        self, job: ETLJob, endpoint: DataSource | DataTarget, params: dict[str, Any]
    ) -> list[str]:
        """The raw parts of the default asset key (before :func:`key_part`)."""
        type_name = endpoint_type(endpoint)
        if endpoint.connection:
            prefix = [endpoint.connection]
        else:
            prefix = [type_name] + [
                _last_part(str(params[k])) for k in ("database", "bucket", "container")
                if isinstance(params.get(k), str | int) and not secrets.is_reference(str(params[k]))
            ]
        if endpoint.table:
            return [*prefix, *endpoint.table.split(".")]
        if endpoint.file_path:
            path = endpoint.file_path.split("://", 1)[-1]
            return [*prefix, *[p for p in PurePosixPath(path).parts if p not in ("/", ".")]]
        if endpoint.api_endpoint:
            url = urlsplit(endpoint.api_endpoint)
            return [*prefix, url.hostname or "api", *[p for p in url.path.split("/") if p]]
        topic = (endpoint.options or {}).get("topic") or params.get("topic")
        if isinstance(topic, str):
            return [*prefix, topic]
        return [*prefix, job.key, endpoint.name]  # a query: named after the job's endpoint

    def source_key(self, job: ETLJob, source: DataSource, params: dict[str, Any]) -> dg.AssetKey:
        """The asset key of a source."""
        return self.asset_key(job, source, params)

    def target_key(self, job: ETLJob, target: DataTarget, params: dict[str, Any]) -> dg.AssetKey:
        """The asset key of a target."""
        return self.asset_key(job, target, params)

    def endpoint_group(self, job: ETLJob, endpoint: DataSource | DataTarget) -> str:
        """The spec's ``group_name`` of the endpoint, else the job's group."""
        return endpoint.group_name or self.group_name(job)

    def kinds(self, endpoint: DataSource | DataTarget, params: dict[str, Any]) -> set[str]:
        """Dagster kinds: what the endpoint's connector says (its system and format)."""
        type_name = endpoint_type(endpoint)
        file_format = endpoint.file_format or PurePosixPath(endpoint.file_path or "").suffix[1:]
        try:
            cls = connector_class(type_name)
        except SpecError:  # reported by the spec checks; keep definitions loadable
            return {type_name}
        return cls.asset_kinds(type_name, params, file_format or None)

    def metadata(
        self, spec: JobSpec, endpoint: DataSource | DataTarget, params: dict[str, Any],
        loc: tuple[str | int, ...] = (),
    ) -> dict:  # fmt: skip
        """Static, secret-free facts shown on the asset: where it lives, where it is written
        down (``dagster/code_references`` to the spec file and line), the spec's
        ``metadata``."""
        meta: dict[str, Any] = {}
        if endpoint.connection:
            meta["nexus/connection"] = endpoint.connection
        shown = {k: v for k, v in params.items() if not secrets.is_sensitive(str(k))}
        for key in ("type", "host", "port", "database", "bucket", "container"):
            if key in shown and isinstance(shown[key], str | int):
                meta[f"nexus/{key}"] = secrets.mask(str(shown[key]))
        if endpoint.table:
            meta["nexus/table"] = endpoint.table
            meta["dagster/table_name"] = self.table_name(endpoint, params)
        if getattr(endpoint, "query", None):
            meta["nexus/query"] = dg.MetadataValue.md(f"```sql\n{endpoint.query}\n```")
        if endpoint.file_path:
            meta["nexus/file_path"] = endpoint.file_path
        uri = self.uri(spec, endpoint, params)
        if uri:
            meta["dagster/uri"] = uri
        file, line = spec.where(loc) if loc else (None, None)
        if file:
            # beta in Dagster 1.13: the warning is for us (pinned Dagster), not for our users
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", dg.BetaWarning)
                meta["dagster/code_references"] = dg.CodeReferencesMetadataValue(
                    code_references=[dg.LocalFileCodeReference(
                        file_path=str(Path(file).resolve()), line_number=line,
                        label=f"{endpoint_role(endpoint)} {endpoint.name}")]
                )
        meta.update(endpoint.metadata or {})
        return meta

    def table_name(self, endpoint: DataSource | DataTarget, params: dict[str, Any]) -> str:
        """The fully qualified table name: ``database.schema.table`` as far as known."""
        parts = endpoint.table.split(".") if endpoint.table else []
        if len(parts) == 1 and isinstance(params.get("schema"), str):
            parts = [params["schema"], *parts]
        database = params.get("database")
        if isinstance(database, str) and database and not secrets.is_reference(database):
            parts = [_last_part(database), *parts]
        return ".".join(parts)

    def uri(
        self, spec: JobSpec, endpoint: DataSource | DataTarget, params: dict[str, Any]
    ) -> str | None:
        """Where a file or object lives as a URI (``file:///...``, ``s3://bucket/key``), or
        None for other systems."""
        path = endpoint.file_path
        if not path:
            return None
        if "://" in path:
            return secrets.mask(path)
        type_name = endpoint_type(endpoint)
        if type_name == "file":
            base = params.get("base_dir")
            root = Path(base) if isinstance(base, str) and not secrets.is_reference(base) else None
            folder = root if root and root.is_absolute() else spec.root / (root or "")
            return (folder / path).resolve().as_uri()
        holder = params.get("bucket") or params.get("container") or params.get("host")
        if isinstance(holder, str) and not secrets.is_reference(holder):
            scheme = {"azure_blob": "abfs", "gcs": "gs"}.get(type_name, type_name)
            return f"{scheme}://{holder}/{path.lstrip('/')}"
        return None

    def description(self, endpoint: DataSource | DataTarget) -> str:
        """The spec's description, else what the endpoint reads or writes."""
        if endpoint.description:
            return endpoint.description
        kinds = (("table", endpoint.table), ("file", endpoint.file_path),
                 ("query", getattr(endpoint, "query", None) and "(see nexus/query)"),
                 ("API endpoint", endpoint.api_endpoint))
        what = next((f"{kind} {value}" for kind, value in kinds if value), "")
        return f"{endpoint_role(endpoint).capitalize()} {endpoint.name}: {what}".strip(" :")


def _last_part(text: str) -> str:
    """A database file's or URL's last path part without its suffix (``warehouse.db`` ->
    ``warehouse``); other values as they are."""
    if "/" in text or text.endswith((".db", ".sqlite", ".duckdb")):
        return PurePosixPath(text.rstrip("/")).stem or text
    return text
