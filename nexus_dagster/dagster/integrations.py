"""Dagster integration resources standing in for a connection.

A job's connection (resource key ``lake``) may be given as the resource a Dagster integration
library already offers, so a deployment that configures AWS or Azure for its other assets reuses
that configuration:

* ``dagster_aws.s3.S3Resource`` for an ``s3`` endpoint (``pip install
  "nexus-dagster[dagster-integrations]"``);
* ``dagster_azure.blob.AzureBlobStorageResource`` (key or SAS credential) for an ``azure_blob``
  endpoint;
* ``dagster_gcp.GCSResource`` for a ``gcs`` endpoint: it holds a project name and its client
  authenticates with Google's default credential chain, so the connector does the same (the
  spec's ``credentials`` file is dropped), and talks to ``STORAGE_EMULATOR_HOST`` when that is set,
  as the resource's ``google.cloud.storage.Client`` does.

The integration resource gives the credentials and the endpoint; everything else (the bucket or
container, ``base_dir``, ``block_size`` ...) still comes from the spec's own connection
(``connections.yaml`` or ``connection_params``). One small adapter per integration turns the
resource's fields into the connector's parameters; the resource classes are told by their
qualified name, so this module needs none of the integration packages installed. Secrets taken
from a resource are registered for masking (:func:`nexus_dagster.secrets.register_secret`).

Example:
    >>> from dagster_aws.s3 import S3Resource  # doctest: +SKIP
    >>> defs = definitions_from_folder("job_specs", resources={  # doctest: +SKIP
    ...     "lake": S3Resource(region_name="eu-west-1",
    ...                        aws_access_key_id=dg.EnvVar("AWS_ACCESS_KEY_ID"),
    ...                        aws_secret_access_key=dg.EnvVar("AWS_SECRET_ACCESS_KEY"))})
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from nexus_dagster import secrets
from nexus_dagster.errors import SpecError

__all__ = [
    "INTEGRATIONS", "Integration", "azure_blob_params", "gcs_params", "integration_of",
    "merged_params", "s3_params",
]


@dataclass(frozen=True)
class Integration:
    """An integration resource class nexus accepts in place of a connection.

    Attributes:
        resource_class: the class's qualified name (``dagster_aws.s3.resources.S3Resource``).
        connector_type: the connector type its endpoints must have (``s3``).
        replaces: the connection parameters the resource stands for (credentials, endpoint and
            their aliases); the spec connection's values of these are dropped.
        adapter: ``resource -> {param: value}``, the connector parameters the resource gives.
    """

    resource_class: str
    connector_type: str
    replaces: tuple[str, ...]
    adapter: Callable[[Any], dict[str, Any]]


def _secret(value: Any) -> str | None:
    """A secret field's text (registered for masking), None when unset."""
    if value is None or value == "":
        return None
    text = str(value)
    secrets.register_secret(text)
    return text


def _unsupported(resource: Any, name: str, fields: Mapping[str, Any]) -> None:
    """A SpecError when the resource sets a field nexus cannot honour (``field -> default``)."""
    for field, default in fields.items():
        if getattr(resource, field, default) != default:
            raise SpecError(
                f"{name}.{field} is not supported when the resource stands in for a nexus "
                f"connection: leave {field} at its default ({default!r}) and give the "
                "credentials as fields of the resource"
            )


def s3_params(resource: Any) -> dict[str, Any]:
    """The ``s3`` connector parameters of a ``dagster_aws.s3.S3Resource``.

    Args:
        resource: the S3Resource (its EnvVars resolved by Dagster).

    Returns:
        ``access_key``, ``secret_key``, ``session_token``, ``endpoint_url``, ``region`` and
        ``max_attempts`` (None where the resource leaves them unset: the AWS chain applies).

    Raises:
        SpecError: the resource sets ``profile_name``, ``use_unsigned_session``, ``use_ssl``
            or ``verify``, which the s3 connector does not take.
    """
    _unsupported(resource, "S3Resource", {"profile_name": None, "use_unsigned_session": False,
                                          "use_ssl": True, "verify": None})
    return {
        "access_key": _secret(resource.aws_access_key_id),
        "secret_key": _secret(resource.aws_secret_access_key),
        "session_token": _secret(resource.aws_session_token),
        "endpoint_url": resource.endpoint_url or None,
        "region": resource.region_name or None,
        "max_attempts": resource.max_attempts,
    }


def _account_name(account_url: str) -> str:
    """The storage account of a Blob URL: ``acme`` of ``https://acme.blob.core.windows.net``,
    ``devstoreaccount1`` of Azurite's ``http://127.0.0.1:10000/devstoreaccount1``."""
    parts = urlsplit(account_url if "://" in account_url else f"https://{account_url}")
    host = parts.hostname or ""
    if ".blob." in host:
        return host.split(".", 1)[0]
    path = parts.path.strip("/")
    if path:
        return path.split("/", 1)[0]
    raise SpecError(
        f"AzureBlobStorageResource.account_url {account_url!r} names no storage account: give "
        "https://<account>.blob.core.windows.net (or http://host:port/<account> for Azurite)"
    )


def azure_blob_params(resource: Any) -> dict[str, Any]:
    """The ``azure_blob`` connector parameters of a
    ``dagster_azure.blob.AzureBlobStorageResource``.

    Args:
        resource: the AzureBlobStorageResource (its EnvVars resolved by Dagster).

    Returns:
        ``account_url``, ``account_name`` (from the URL) and ``account_key`` or ``sas_token``.

    Raises:
        SpecError: the credential is not a key or SAS token (DefaultAzureCredential and
            anonymous access are not supported by the azure_blob connector).
    """
    url = str(resource.account_url)
    credential = resource.credential
    kind = getattr(credential, "credential_type", None)
    params: dict[str, Any] = {"account_url": url.rstrip("/"), "account_name": _account_name(url),
                              "account_key": None, "sas_token": None}
    if kind == "key":
        params["account_key"] = _secret(credential.key)
    elif kind == "sas":
        params["sas_token"] = _secret(credential.token)
    else:
        raise SpecError(
            f"AzureBlobStorageResource.credential ({kind}) is not supported when the resource "
            "stands in for a nexus connection: give AzureBlobStorageKeyCredential or "
            "AzureBlobStorageSASTokenCredential"
        )
    return params


def gcs_params(resource: Any) -> dict[str, Any]:
    """The ``gcs`` connector parameters of a ``dagster_gcp.GCSResource``.

    Args:
        resource: the GCSResource (its EnvVars resolved by Dagster).

    Returns:
        ``project_id`` (the resource's ``project``), ``credentials`` None (the Google default
        chain, which is what the resource's client uses) and ``endpoint`` from
        ``STORAGE_EMULATOR_HOST`` when set (the emulator the resource's client would reach).
    """
    emulator = os.environ.get("STORAGE_EMULATOR_HOST", "").strip()
    if emulator and "://" not in emulator:
        emulator = f"http://{emulator}"
    return {"project_id": resource.project or None, "credentials": None,
            "endpoint": emulator or None}


#: the integration resources nexus accepts in place of a connection
INTEGRATIONS: tuple[Integration, ...] = (
    Integration(
        "dagster_aws.s3.resources.S3Resource", "s3",
        ("access_key", "secret_key", "session_token", "endpoint_url", "region", "max_attempts"),
        s3_params,
    ),
    Integration(
        "dagster_azure.blob.resources.AzureBlobStorageResource", "azure_blob",
        ("account_url", "endpoint", "account_name", "account_key", "sas_token",
         "connection_string"),
        azure_blob_params,
    ),
    Integration(
        "dagster_gcp.gcs.resources.GCSResource", "gcs",
        ("project_id", "credentials", "endpoint"),
        gcs_params,
    ),
)


def integration_of(resource: Any) -> Integration | None:
    """The :class:`Integration` of ``resource`` (or of a subclass of its class), None when it is
    not an integration resource nexus knows."""
    by_name = {i.resource_class: i for i in INTEGRATIONS}
    for cls in type(resource).__mro__:
        found = by_name.get(f"{cls.__module__}.{cls.__qualname__}")
        if found is not None:
            return found
    return None


def merged_params(
    integration: Integration, resource: Any, type_name: str, key: str,
    spec_params: Mapping[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """The spec connection's parameters with the integration resource's credentials and
    endpoint in place of its own.

    Args:
        integration: what :func:`integration_of` found for ``resource``.
        resource: the integration resource under the connection's resource key.
        type_name: the endpoint's connector type.
        key: the resource key (named in errors).
        spec_params: the spec connection's own parameters (bucket, base_dir ...).

    Raises:
        SpecError: the resource is for another connector type than the endpoint's.
    """
    if integration.connector_type != type_name:
        name = integration.resource_class.rsplit(".", 1)[-1]
        raise SpecError(
            f"resource {key!r} ({name}) stands in for {integration.connector_type} "
            f"connections, but an endpoint using it is {type_name}: give {key!r} a resource "
            f"of the {type_name} connector instead"
        )
    given = integration.adapter(resource)
    kept = {k: v for k, v in spec_params.items() if k not in integration.replaces}
    return {**kept, **{k: v for k, v in given.items() if v is not None}}
