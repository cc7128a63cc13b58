"""Every system a job uses, as a Dagster resource (listed on the UI's Resources page).

Each named connection of ``connections.yaml`` a job uses becomes the resource
``connection__<name>``; each inline ``connection_params`` block the resource
``<job>__<endpoint>``. The job's ETL multi-asset requires them, so the asset and the resource
are linked in the UI. Their config holds the system's type and its parameters, with no secret:

* a secret parameter (password, secret_key, token, ...) is shown only when it is a reference,
  ``${ENV_VAR}`` or ``enc:...`` (the value itself is resolved at run time only); a literal secret,
  or a reference with a literal default (``${PW:-hunter2}``), is shown as ``***``;
* the password of a URL (``postgresql://user:pw@host/db``) and every registered secret are
  masked in the other parameters.

The runner still builds connectors from the spec (secrets resolved at run time); these resources
describe, they hold no client.

Example:
    >>> resource = connection_resource("s3", {"bucket": "lake", "secret_key": "${S3_SECRET}",
    ...                                       "access_key": "AKIAEXAMPLE"}, "lake")
    >>> resource.params["secret_key"], resource.params["access_key"], resource.params["bucket"]
    ('${S3_SECRET}', '***', 'lake')
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import dagster as dg
from pydantic import Field

from nexus_dagster import secrets
from nexus_dagster.spec.connections import endpoint_type, resolve_connection
from nexus_dagster.spec.models import DataSource, DataTarget, ETLJob

__all__ = ["NexusConnection", "connection_resource", "job_resources", "shown_params"]

_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}|enc:\S+")
_URL_PASSWORD = re.compile(r"(://[^/:@\s]*:)([^@/\s]+)@")
MASK = "***"


class NexusConnection(dg.ConfigurableResource):
    """A system a Nexus job reads or writes: its type and non-secret connection parameters."""

    kind: str = Field(description="source_type / target_type of the endpoints using it")
    connection: str = Field("", description="name in connections.yaml ('' for inline params)")
    params: dict[str, str] = Field(
        default_factory=dict,
        description="connection parameters; secrets only as ${ENV}/enc: references or ***",
    )


def _shown_value(key: str, value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _shown_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_shown_value(key, v) for v in value]
    if secrets.is_sensitive(key):
        if isinstance(value, str) and _REFERENCE.fullmatch(value.strip()):
            return value
        return MASK if value not in (None, "", False) else value
    if isinstance(value, str):
        text = _URL_PASSWORD.sub(
            lambda m: m.group(0) if _REFERENCE.fullmatch(m.group(2)) else f"{m.group(1)}{MASK}@",
            value,
        )
        return secrets.mask(text)
    return value


def shown_params(params: Mapping[str, Any]) -> dict[str, str]:
    """Connection params as strings safe to show: see the module docstring."""
    shown = {}
    for key, value in params.items():
        value = _shown_value(str(key), value)
        shown[str(key)] = value if isinstance(value, str) else json.dumps(value, default=str)
    return shown


def connection_resource(kind: str, params: Mapping[str, Any], name: str = "") -> NexusConnection:
    """The resource describing one connection."""
    return NexusConnection(kind=kind, connection=name, params=shown_params(params))


def _key(text: str) -> str:
    return re.sub(r"\W", "_", text)


def job_resources(job: ETLJob, connections: Mapping[str, Any]) -> dict[str, NexusConnection]:
    """``{resource key: resource}`` for every connection the job's sources and targets use."""
    found: dict[str, NexusConnection] = {}
    endpoints: list[DataSource | DataTarget] = [*job.sources, *job.targets]
    for endpoint in endpoints:
        kind = endpoint_type(endpoint)
        if endpoint.connection:
            key = f"connection__{_key(endpoint.connection)}"
            name = endpoint.connection
        elif endpoint.connection_params:
            key = f"{_key(job.key)}__{_key(endpoint.name)}"
            name = ""
        else:
            continue
        if key not in found:
            found[key] = connection_resource(kind, resolve_connection(endpoint, connections), name)
    return found
