"""Files on an FTP server through fsspec's FTPFileSystem.

Params:
    host, port (21), username, password: the server and the login.
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
from typing import ClassVar

import fsspec

from nexus_dagster.connectors.remote import RemoteFileConnector

__all__ = ["FTPConnector"]


class FTPConnector(RemoteFileConnector):
    """Files on an FTP server as sources and targets, every format of the file connector."""

    kinds: ClassVar[tuple[str, ...]] = ("ftp",)
    protocol: ClassVar[str] = "ftp"
    system: ClassVar[str] = "FTP"
    object_store: ClassVar[bool] = False
    required_params: ClassVar[tuple[tuple[str, ...], ...]] = (("host",),)
    auth_params: ClassVar[tuple[str, ...]] = ("username", "password")

    def endpoint(self) -> str:
        return f"{self.params.get('host')}:{int(self.params.get('port') or 21)}"

    def open_filesystem(self) -> fsspec.AbstractFileSystem:
        from fsspec.implementations.ftp import FTPFileSystem

        p = self.params
        return FTPFileSystem(
            str(p["host"]),
            port=int(p.get("port") or 21),
            username=p.get("username") or p.get("user") or None,
            password=p.get("password") or None,
            timeout=float(p.get("timeout") or 30),
            tls=bool(p.get("tls")),
            skip_instance_cache=True,
        )

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
