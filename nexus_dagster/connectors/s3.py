"""Amazon S3 and S3-compatible stores (MinIO, Ceph, moto ...) through s3fs.

Params (``connection_params`` or a named connection):
    bucket: the bucket (required).
    access_key / secret_key: credentials; without them the usual AWS chain applies
        (environment, ~/.aws, instance role).
    session_token: optional, for temporary credentials.
    region: the bucket's region.
    endpoint_url: for S3-compatible stores, e.g. ``http://127.0.0.1:9000``.
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

from typing import Any, ClassVar

import fsspec

from nexus_dagster.connectors.remote import RemoteFileConnector

__all__ = ["S3Connector"]


class S3Connector(RemoteFileConnector):
    """Files in an S3 bucket as sources and targets, every format of the file connector."""

    kinds: ClassVar[tuple[str, ...]] = ("s3",)
    protocol: ClassVar[str] = "s3"
    system: ClassVar[str] = "S3"
    required_params: ClassVar[tuple[tuple[str, ...], ...]] = (("bucket",),)
    auth_params: ClassVar[tuple[str, ...]] = ("access_key", "secret_key", "region")

    def endpoint(self) -> str:
        return str(self.params.get("endpoint_url") or "")

    def open_filesystem(self) -> fsspec.AbstractFileSystem:
        import s3fs

        p = self.params
        client: dict[str, Any] = {}
        if p.get("region"):
            client["region_name"] = p["region"]
        return s3fs.S3FileSystem(
            key=p.get("access_key") or None,
            secret=p.get("secret_key") or None,
            token=p.get("session_token") or None,
            endpoint_url=p.get("endpoint_url") or None,
            client_kwargs=client,
            config_kwargs={"retries": {"max_attempts": int(p.get("max_attempts", 3))}},
            default_block_size=int(p.get("block_size") or 8 * 2**20),
            skip_instance_cache=True,
        )
