"""Files on an FTP server through fsspec's FTPFileSystem.

Params (:class:`FTPParams`, unknown keys are errors):
    host, port (21), username (or user), password: the server and the login (anonymous
        without username).
    tls: true for explicit FTPS (AUTH TLS).
    base_dir: the folder relative paths resolve against (default ``/``).
    timeout: seconds (default 30).

Writes go to a temporary name that is renamed onto the target (RNFR/RNTO), so readers never
see a half-uploaded file.

Example:
    >>> FTPConnector({"host": "ftp.example.com", "username": "etl", "password": "...",
    ...               "base_dir": "/outbox"}).describe()
    'ftp://ftp.example.com:21/outbox'
"""

from __future__ import annotations

import contextlib
import tempfile
from typing import IO, ClassVar

import fsspec
from pydantic import AliasChoices, Field, SecretStr

from nexus_dagster.connectors.remote import RemoteFileConnector, RemoteParams

__all__ = ["FTPConnector", "FTPParams"]


class FTPParams(RemoteParams):
    """The ``connection_params`` of an ``ftp`` source or target."""

    host: str = Field(description="the FTP server's host name or address")
    port: int = Field(21, ge=1, le=65535, description="the server's TCP port")
    username: str | None = Field(
        None,
        validation_alias=AliasChoices("username", "user"),
        description="the login name (anonymous without one)",
    )
    password: SecretStr | None = Field(None, description="the login password")
    tls: bool = Field(False, description="explicit FTPS (AUTH TLS)")
    timeout: float = Field(30, gt=0, description="timeout in seconds")


class FTPConnector(RemoteFileConnector):
    """Files on an FTP server as sources and targets, every format of the file connector."""

    kinds: ClassVar[tuple[str, ...]] = ("ftp",)
    protocol: ClassVar[str] = "ftp"
    system: ClassVar[str] = "FTP"
    object_store: ClassVar[bool] = False
    auth_params: ClassVar[tuple[str, ...]] = ("username", "password")
    Params: ClassVar[type[FTPParams]] = FTPParams
    config: FTPParams

    def endpoint(self) -> str:
        return f"{self.config.host}:{self.config.port}"

    def open_filesystem(self) -> fsspec.AbstractFileSystem:
        from fsspec.implementations.ftp import FTPFileSystem

        c = self.config
        return FTPFileSystem(
            c.host,
            port=c.port,
            username=c.username or None,
            password=c.password.get_secret_value() or None if c.password else None,
            timeout=c.timeout,
            tls=c.tls,
            skip_instance_cache=True,
        )

    def open_raw(self, path: str) -> IO[bytes]:
        """The whole file in ONE transfer, spooled to memory (up to 64 MiB) or a temporary
        file: FTP ranged reads (REST + ABOR per block) desynchronize the control connection of
        some servers mid-file ("200 Type set to: Binary" answering PASV)."""
        spool = tempfile.SpooledTemporaryFile(max_size=64 * 2**20)  # noqa: SIM115 - returned
        try:
            self.filesystem().ftp.retrbinary(f"RETR {path}", spool.write)
        except BaseException:
            spool.close()
            raise
        spool.seek(0)
        return spool  # type: ignore[return-value]

    def commit(self, temp_path: str, final_path: str) -> None:
        """Rename the finished upload onto the target (replacing it)."""
        fs = self.filesystem()
        try:
            fs.mv(temp_path, final_path)
        except Exception:
            # some servers refuse to rename onto an existing file: remove it, then rename
            if not fs.exists(final_path):
                raise
            fs.rm(final_path)
            fs.mv(temp_path, final_path)

    def close(self) -> None:
        fs, self._fs = self._fs, None
        if fs is not None:
            with contextlib.suppress(Exception):
                fs.ftp.quit()
