"""Azure Blob Storage (and Azurite) through adlfs.

Params (:class:`AzureBlobParams`, unknown keys are errors):
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
from pydantic import AliasChoices, Field, SecretStr, model_validator

from nexus_dagster.connectors.remote import ObjectStoreParams, RemoteFileConnector

__all__ = ["AzureBlobConnector", "AzureBlobParams"]


class AzureBlobParams(ObjectStoreParams):
    """The ``connection_params`` of an ``azure_blob`` source or target: the container and
    ``account_name`` (with ``account_key`` or ``sas_token``) or a ``connection_string``."""

    container: str = Field(description="the blob container")
    account_name: str | None = Field(None, description="the storage account")
    account_key: SecretStr | None = Field(None, description="the storage account's access key")
    connection_string: SecretStr | None = Field(
        None, description="a storage connection string, instead of account_name/account_key"
    )
    sas_token: SecretStr | None = Field(None, description="a shared access signature token")
    account_url: str | None = Field(
        None,
        validation_alias=AliasChoices("account_url", "endpoint"),
        description="the Blob endpoint when it is not https://<account>.blob.core.windows.net "
        "(Azurite: http://127.0.0.1:10000/devstoreaccount1)",
    )

    @model_validator(mode="after")
    def _needs_an_account(self) -> AzureBlobParams:
        if not (self.account_name or self.connection_string):
            raise ValueError("an azure_blob connection needs account_name or connection_string")
        return self


class AzureBlobConnector(RemoteFileConnector):
    """Blobs in an Azure container as sources and targets, every format of the file connector."""

    kinds: ClassVar[tuple[str, ...]] = ("azure_blob",)
    protocol: ClassVar[str] = "az"
    system: ClassVar[str] = "Azure Blob Storage"
    bucket_param: ClassVar[str] = "container"
    auth_params: ClassVar[tuple[str, ...]] = (
        "account_name", "account_key", "connection_string", "sas_token",
    )
    Params: ClassVar[type[AzureBlobParams]] = AzureBlobParams
    config: AzureBlobParams

    def endpoint(self) -> str:
        url = self.config.account_url
        if url:
            return url
        name = self.config.account_name
        return f"{name}.blob.core.windows.net" if name else "the connection string's account"

    def open_filesystem(self) -> fsspec.AbstractFileSystem:
        from adlfs import AzureBlobFileSystem

        c = self.config
        connection_string = c.connection_string.get_secret_value() if c.connection_string else ""
        account_key = c.account_key.get_secret_value() if c.account_key else ""
        url = c.account_url or ""
        if not connection_string and url and account_key:
            scheme = "http" if url.startswith("http://") else "https"
            connection_string = (
                f"DefaultEndpointsProtocol={scheme};AccountName={c.account_name};"
                f"AccountKey={account_key};BlobEndpoint={url.rstrip('/')};"
            )
        if connection_string:
            return AzureBlobFileSystem(connection_string=connection_string,
                                       skip_instance_cache=True)
        return AzureBlobFileSystem(
            account_name=c.account_name,
            account_key=account_key or None,
            sas_token=c.sas_token.get_secret_value() or None if c.sas_token else None,
            account_host=url.split("://", 1)[-1].split("/", 1)[0] if url else None,
            skip_instance_cache=True,
        )
