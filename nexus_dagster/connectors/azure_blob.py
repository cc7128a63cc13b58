"""Azure Blob Storage (and Azurite) through adlfs.

Params:
    container: the blob container (required).
    account_name + account_key, or connection_string: credentials (one of them required;
        ``sas_token`` works too).
    account_url / endpoint: the Blob endpoint when it is not
        ``https://<account>.blob.core.windows.net`` (Azurite:
        ``http://127.0.0.1:10000/devstoreaccount1``).
    base_dir: optional prefix every path resolves against.
    block_size / cache_type: bytes per ranged read (default 8 MiB) and the fsspec cache
        (default ``readahead``); large objects are streamed, never downloaded whole.

Example:
    >>> AzureBlobConnector({"account_name": "acme", "account_key": "...",
    ...                     "container": "raw"}).describe()
    'az://raw'
"""

from __future__ import annotations

from typing import ClassVar

import fsspec

from nexus_dagster.connectors.remote import RemoteFileConnector

__all__ = ["AzureBlobConnector"]


class AzureBlobConnector(RemoteFileConnector):
    """Blobs in an Azure container as sources and targets, every format of the file connector."""

    kinds: ClassVar[tuple[str, ...]] = ("azure_blob",)
    protocol: ClassVar[str] = "az"
    system: ClassVar[str] = "Azure Blob Storage"
    bucket_param: ClassVar[str] = "container"
    required_params: ClassVar[tuple[tuple[str, ...], ...]] = (
        ("container",),
        ("account_name", "connection_string"),
    )
    auth_params: ClassVar[tuple[str, ...]] = (
        "account_name", "account_key", "connection_string", "sas_token",
    )

    def _account_url(self) -> str:
        return str(self.params.get("account_url") or self.params.get("endpoint") or "")

    def endpoint(self) -> str:
        url = self._account_url()
        if url:
            return url
        name = self.params.get("account_name")
        return f"{name}.blob.core.windows.net" if name else "the connection string's account"

    def open_filesystem(self) -> fsspec.AbstractFileSystem:
        from adlfs import AzureBlobFileSystem

        p = self.params
        connection_string = p.get("connection_string")
        url = self._account_url()
        if not connection_string and url and p.get("account_key"):
            scheme = "http" if url.startswith("http://") else "https"
            connection_string = (
                f"DefaultEndpointsProtocol={scheme};AccountName={p['account_name']};"
                f"AccountKey={p['account_key']};BlobEndpoint={url.rstrip('/')};"
            )
        if connection_string:
            return AzureBlobFileSystem(connection_string=connection_string,
                                       skip_instance_cache=True)
        return AzureBlobFileSystem(
            account_name=p.get("account_name"),
            account_key=p.get("account_key") or None,
            sas_token=p.get("sas_token") or None,
            account_host=url.split("://", 1)[-1].split("/", 1)[0] if url else None,
            skip_instance_cache=True,
        )
