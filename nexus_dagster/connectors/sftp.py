"""Files on an SFTP server through fsspec's SFTPFileSystem (paramiko), host key checked.

Params (:class:`SFTPParams`, unknown keys are errors):
    host, port (22): the server.
    username (or user) + password, or username + private_key (a key file path;
        ``private_key_passphrase`` when it is encrypted).
    known_hosts: a known_hosts file holding the server's key (default: ~/.ssh/known_hosts), or
    host_key: the server's public key pinned in the spec (``ssh-ed25519 AAAA...``).
    insecure_skip_host_key_check: true accepts any host key (tests on throwaway servers only).
    base_dir: the folder relative paths resolve against (default ``/``).
    timeout: connect timeout in seconds (default 30).

An unknown or changed host key is refused: the connection fails with a message telling how to
pin the key, so a man in the middle cannot read or plant files.

Example:
    >>> SFTPConnector({"host": "files.example.com", "username": "etl",
    ...                "private_key": "/secrets/id_ed25519",
    ...                "known_hosts": "/secrets/known_hosts", "base_dir": "/exports"}).describe()
    'sftp://etl@files.example.com:22/exports'
"""

from __future__ import annotations

import base64
import os
from typing import Any, ClassVar

import fsspec
from fsspec.implementations.sftp import SFTPFileSystem
from pydantic import AliasChoices, Field, SecretStr, model_validator

from nexus_dagster.connectors.remote import RemoteFileConnector, RemoteParams
from nexus_dagster.errors import ConnectorError, SpecError

__all__ = ["SFTPConnector", "SFTPParams"]


class SFTPParams(RemoteParams):
    """The ``connection_params`` of an ``sftp`` source or target: the server, a login with a
    password or a private key, and how the server's host key is checked."""

    host: str = Field(description="the SFTP server's host name or address")
    port: int = Field(22, ge=1, le=65535, description="the server's TCP port")
    username: str = Field(
        validation_alias=AliasChoices("username", "user"), description="the login name"
    )
    password: SecretStr | None = Field(None, description="the login password")
    private_key: SecretStr | None = Field(
        None, description="path of a private key file, instead of a password"
    )
    private_key_passphrase: SecretStr | None = Field(
        None, description="the passphrase of an encrypted private key file"
    )
    known_hosts: str | None = Field(
        None,
        description="a known_hosts file holding the server's key (default ~/.ssh/known_hosts)",
    )
    host_key: str | None = Field(
        None, description="the server's public key pinned in the spec (ssh-ed25519 AAAA...)"
    )
    insecure_skip_host_key_check: bool = Field(
        False, description="accept any host key (throwaway test servers only)"
    )
    timeout: float = Field(30, gt=0, description="connect timeout in seconds")

    @model_validator(mode="after")
    def _needs_a_secret(self) -> SFTPParams:
        if not (self.password or self.private_key):
            raise ValueError("an sftp connection needs password or private_key")
        return self


class _VerifiedSFTPFileSystem(SFTPFileSystem):
    """SFTPFileSystem that knows the host keys before connecting (fsspec's loads none)."""

    def __init__(self, host: str, *, host_keys: list[tuple[str, str, str]], **kwargs: Any):
        self._host_keys = host_keys
        self._known_hosts_file = kwargs.pop("known_hosts_file", None)
        super().__init__(host, **kwargs)

    def _connect(self) -> None:
        import paramiko

        self.client = paramiko.SSHClient()
        if self._known_hosts_file:
            self.client.load_host_keys(self._known_hosts_file)
        keys = self.client.get_host_keys()
        for name, key_type, data in self._host_keys:
            key = paramiko.PKey.from_type_string(key_type, base64.b64decode(data))
            keys.add(name, key_type, key)
        self.client.set_missing_host_key_policy(self.host_key_policy)
        self.client.connect(self.host, **self.ssh_kwargs)
        self.ftp = self.client.open_sftp()


class SFTPConnector(RemoteFileConnector):
    """Files on an SFTP server as sources and targets, every format of the file connector."""

    kinds: ClassVar[tuple[str, ...]] = ("sftp",)
    protocol: ClassVar[str] = "sftp"
    system: ClassVar[str] = "SFTP"
    object_store: ClassVar[bool] = False
    auth_params: ClassVar[tuple[str, ...]] = ("username", "password", "private_key")
    Params: ClassVar[type[SFTPParams]] = SFTPParams
    config: SFTPParams

    def endpoint(self) -> str:
        c = self.config
        return f"{c.username + '@' if c.username else ''}{c.host}:{c.port}"

    def open_filesystem(self) -> fsspec.AbstractFileSystem:
        c = self.config
        host, port = c.host, c.port
        name = host if port == 22 else f"[{host}]:{port}"
        insecure = c.insecure_skip_host_key_check
        known_hosts = c.known_hosts
        pinned = []
        if c.host_key:
            parts = c.host_key.split()
            if len(parts) < 2:
                raise SpecError(
                    "connection_params.host_key must be a public key line such as "
                    "'ssh-ed25519 AAAA...' (from ssh-keyscan)"
                )
            pinned.append((name, parts[-2], parts[-1]) if len(parts) > 2 else (name, *parts))
        if not known_hosts and not pinned and not insecure:
            default = os.path.expanduser("~/.ssh/known_hosts")
            known_hosts = default if os.path.exists(default) else None
        if known_hosts and not os.path.exists(os.path.expanduser(str(known_hosts))):
            raise SpecError(f"connection_params.known_hosts: no file {known_hosts}")
        kwargs: dict[str, Any] = {
            "port": port,
            "username": c.username,
            "timeout": c.timeout,
            "allow_agent": False,
            "look_for_keys": False,
        }
        if c.password:
            kwargs["password"] = c.password.get_secret_value()
        if c.private_key:
            kwargs["key_filename"] = os.path.expanduser(c.private_key.get_secret_value())
            if c.private_key_passphrase:
                kwargs["passphrase"] = c.private_key_passphrase.get_secret_value()
        try:
            return _VerifiedSFTPFileSystem(
                host,
                host_keys=pinned,
                known_hosts_file=os.path.expanduser(str(known_hosts)) if known_hosts else None,
                host_key_policy="auto_add" if insecure else "reject",
                skip_instance_cache=True,
                **kwargs,
            )
        except Exception as exc:
            if type(exc).__name__ == "SSHException" and "not found in known_hosts" in str(exc):
                raise ConnectorError(
                    f"SFTP host key of {name} is not known: add it to the known_hosts file "
                    "(ssh-keyscan -p PORT HOST >> known_hosts) and set known_hosts, or pin it "
                    "with host_key; insecure_skip_host_key_check: true turns the check off"
                ) from None
            if type(exc).__name__ == "BadHostKeyException":
                raise ConnectorError(
                    f"SFTP host key of {name} does not match the known key: the server changed "
                    "or someone is in between; check the server before updating known_hosts"
                ) from None
            raise

    def close(self) -> None:
        fs, self._fs = self._fs, None
        if fs is not None:
            client = getattr(fs, "client", None)
            if client is not None:
                client.close()
