"""Google Cloud Storage (and the GCS emulator) through gcsfs.

Params (:class:`GCSParams`, unknown keys are errors):
    bucket: the bucket (required).
    project_id: the GCP project.
    credentials: path of a service-account JSON key file; without it the usual Google chain
        applies (``GOOGLE_APPLICATION_CREDENTIALS``, gcloud login, metadata server).
    endpoint: the emulator's URL (e.g. ``http://127.0.0.1:9023``); anonymous access is used
        with an emulator unless credentials are given.
    base_dir: optional prefix every path resolves against.
    block_size / cache_type: bytes per ranged read (default 8 MiB) and the fsspec cache
        (default ``readahead``); large objects are streamed, never downloaded whole.

Example:
    >>> GCSConnector({"bucket": "lake", "project_id": "acme",
    ...               "credentials": "/secrets/sa.json"}).describe()
    'gs://lake'
"""

from __future__ import annotations

import os
from typing import ClassVar

import fsspec
from pydantic import Field, SecretStr

from nexus_dagster.connectors.remote import ObjectStoreParams, RemoteFileConnector
from nexus_dagster.errors import ConnectorError

__all__ = ["GCSConnector", "GCSParams"]


class GCSParams(ObjectStoreParams):
    """The ``connection_params`` of a ``gcs`` source or target."""

    bucket: str = Field(description="the bucket")
    project_id: str | None = Field(None, description="the GCP project")
    credentials: SecretStr | None = Field(
        None,
        description="path of a service-account JSON key file; without it the Google "
        "credential chain applies",
    )
    endpoint: str | None = Field(
        None, description="an emulator's URL, e.g. http://127.0.0.1:9023 (anonymous access)"
    )


class GCSConnector(RemoteFileConnector):
    """Objects in a GCS bucket as sources and targets, every format of the file connector."""

    kinds: ClassVar[tuple[str, ...]] = ("gcs",)
    protocol: ClassVar[str] = "gs"
    system: ClassVar[str] = "Google Cloud Storage"
    auth_params: ClassVar[tuple[str, ...]] = ("credentials", "project_id")
    Params: ClassVar[type[GCSParams]] = GCSParams
    config: GCSParams

    def endpoint(self) -> str:
        return self.config.endpoint or ""

    def open_filesystem(self) -> fsspec.AbstractFileSystem:
        endpoint = self.config.endpoint
        if endpoint:
            # gcsfs probes a hierarchical-namespace API that emulators lack and waits 60 s
            os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
        import gcsfs

        credentials = self.config.credentials.get_secret_value() if self.config.credentials else ""
        token = _service_account(credentials) if credentials else None
        if token is None and endpoint:
            token = "anon"
        return gcsfs.GCSFileSystem(
            project=self.config.project_id or None,
            token=token,
            endpoint_url=endpoint or None,
            skip_instance_cache=True,
        )


def _service_account(path: str) -> object:
    """Google credentials from a service-account key file, or a ConnectorError that names the
    ``credentials`` param (never the key's content)."""
    from google.oauth2 import service_account

    try:
        return service_account.Credentials.from_service_account_file(
            os.path.expanduser(path),
            scopes=["https://www.googleapis.com/auth/devstorage.read_write"],
        )
    except FileNotFoundError:
        raise ConnectorError(
            "Google Cloud Storage: the credentials file does not exist; set credentials to the "
            "path of a service-account JSON key"
        ) from None
    except Exception as exc:
        raise ConnectorError(
            "Google Cloud Storage refused the credentials: the credentials file is not a valid "
            f"service-account JSON key ({type(exc).__name__}); download a new key for the "
            "service account and check credentials and project_id"
        ) from None
