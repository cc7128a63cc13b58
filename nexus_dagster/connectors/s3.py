"""Amazon S3 and S3-compatible stores (MinIO, Ceph, moto ...) through s3fs.

Params (``connection_params`` or a named connection; :class:`S3Params`, unknown keys are errors):
    bucket: the bucket (required).
    access_key / secret_key: credentials; without them the usual AWS chain applies
        (environment, ~/.aws, instance role).
    session_token: optional, for temporary credentials.
    region: the bucket's region.
    endpoint_url: for S3-compatible stores, e.g. ``http://127.0.0.1:9000``.
    max_attempts: tries per request, retries included (default 3).
    base_dir: optional key prefix every path resolves against.
    block_size: bytes fetched per ranged GET when reading (default 8 MiB); large objects are
        streamed block by block, never downloaded whole.
    cache_type: the fsspec read cache (default ``readahead``; ``none`` for no read-ahead).

Example:
    >>> S3Connector({"bucket": "lake", "access_key": "AKIA...", "secret_key": "...",
    ...              "region": "eu-west-1"}).describe()
    's3://lake'
"""

from __future__ import annotations

import posixpath
from typing import Any, ClassVar

import fsspec
from pydantic import Field, SecretStr

from nexus_dagster.connectors.file import is_temp_file
from nexus_dagster.connectors.remote import (
    DEFAULT_BLOCK_SIZE,
    ObjectStoreParams,
    RemoteFileConnector,
)

__all__ = ["S3Connector", "S3Params"]


class S3Params(ObjectStoreParams):
    """The ``connection_params`` of an ``s3`` source or target."""

    bucket: str = Field(description="the bucket")
    access_key: SecretStr | None = Field(
        None, description="the access key id; without it the AWS credential chain applies"
    )
    secret_key: SecretStr | None = Field(None, description="the secret access key")
    session_token: SecretStr | None = Field(
        None, description="the session token of temporary credentials"
    )
    region: str | None = Field(None, description="the bucket's region, e.g. eu-west-1")
    endpoint_url: str | None = Field(
        None, description="the endpoint of an S3-compatible store, e.g. http://127.0.0.1:9000"
    )
    max_attempts: int = Field(3, ge=1, description="tries per request, retries included")


class S3Connector(RemoteFileConnector):
    """Files in an S3 bucket as sources and targets, every format of the file connector."""

    kinds: ClassVar[tuple[str, ...]] = ("s3",)
    protocol: ClassVar[str] = "s3"
    system: ClassVar[str] = "S3"
    auth_params: ClassVar[tuple[str, ...]] = ("access_key", "secret_key", "region")
    Params: ClassVar[type[S3Params]] = S3Params
    config: S3Params

    def endpoint(self) -> str:
        return self.config.endpoint_url or ""

    def open_filesystem(self) -> fsspec.AbstractFileSystem:
        import s3fs

        c = self.config
        client: dict[str, Any] = {}
        if c.region:
            client["region_name"] = c.region
        return s3fs.S3FileSystem(
            key=_plain(c.access_key),
            secret=_plain(c.secret_key),
            token=_plain(c.session_token),
            endpoint_url=c.endpoint_url or None,
            client_kwargs=client,
            config_kwargs={"retries": {"max_attempts": c.max_attempts}},
            default_block_size=c.block_size or DEFAULT_BLOCK_SIZE,
            skip_instance_cache=True,
        )


    def remove_stale_temps(self, folder: str, prefix: str) -> list[str]:
        """Also abort the unfinished multipart uploads of those temporary objects: a write
        killed mid-upload leaves no object, only parts the bucket keeps (and bills) until
        the upload is aborted."""
        removed = super().remove_stale_temps(folder, prefix)
        fs = self.filesystem()
        bucket, _, key_folder = folder.strip("/").partition("/")
        start = posixpath.join(key_folder, f".{prefix}") if key_folder else f".{prefix}"
        listed = fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=start)
        for upload in listed.get("Uploads", []):
            key = upload["Key"]
            if posixpath.dirname(key) == key_folder and is_temp_file(key):
                fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=key,
                           UploadId=upload["UploadId"])
                removed.append(f"{bucket}/{key}")
        return removed


def _plain(value: SecretStr | None) -> str | None:
    """The secret's text, None when unset or empty (then the AWS chain applies)."""
    return (value.get_secret_value() or None) if value is not None else None
