"""Nexus ``connection_params`` -> a SQLAlchemy URL, driver connect args, and secret scrubbing."""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import URL, make_url

from nexus_dagster.errors import SpecError

#: Nexus ``type`` values -> SQLAlchemy drivernames
DRIVERS: dict[str, str] = {
    "postgresql": "postgresql+psycopg2",
    "postgres": "postgresql+psycopg2",
    "pg": "postgresql+psycopg2",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
    "sqlite": "sqlite",
}

#: parameters this module understands; every other one is passed to the driver's connect()
KNOWN_PARAMS = frozenset(
    {
        "type", "driver", "url", "host", "port", "database", "dbname", "db", "path",
        "user", "username", "password", "schema", "timeout", "connect_args",
    }
)  # fmt: skip

DEFAULT_TIMEOUT = 10
SQLITE_BUSY_TIMEOUT = 60
_TIMEOUT_ARGS = {
    "postgresql": "connect_timeout",
    "mysql": "connect_timeout",
    "mariadb": "connect_timeout",
    "sqlite": "timeout",
}


@dataclass
class ConnectionSettings:
    """Everything needed to build an engine, derived once from the params.

    Attributes:
        url: the SQLAlchemy URL (with password; never print it, use :attr:`masked`).
        connect_args: keyword arguments for the DBAPI ``connect()``.
        schema: default schema for unqualified table names, or None.
        secrets: strings that must never appear in a message.
    """

    url: URL
    connect_args: dict[str, Any] = field(default_factory=dict)
    schema: str | None = None
    secrets: tuple[str, ...] = ()

    @property
    def masked(self) -> str:
        """The URL with its password replaced by ``***``."""
        return self.url.render_as_string(hide_password=True)

    @property
    def backend(self) -> str:
        """``postgresql``, ``mysql``, ``sqlite`` or another dialect name."""
        name = self.url.get_backend_name()
        return "mysql" if name == "mariadb" else name

    def scrub(self, text: str) -> str:
        """``text`` with every secret (raw or URL-encoded) replaced by ``***``."""
        for secret in self.secrets:
            for form in {secret, urllib.parse.quote_plus(secret), urllib.parse.quote(secret)}:
                if form:
                    text = text.replace(form, "***")
        return text


def _normalize_driver(drivername: str) -> str:
    """A bare ``postgresql``/``mysql`` gets the drivers we ship (SQLAlchemy 2.1 picks psycopg 3)."""
    if "+" in drivername:
        return drivername
    return DRIVERS.get(drivername.lower(), drivername)


def connection_settings(params: Mapping[str, Any]) -> ConnectionSettings:
    """Build the URL and connect args from Nexus-style ``connection_params``.

    Args:
        params: resolved parameters: ``type`` (postgresql, postgres, mysql, mariadb, sqlite or
            any SQLAlchemy dialect[+driver] name), ``host``, ``port``, ``database``,
            ``user``/``username``, ``password``, or ``url`` (a full SQLAlchemy URL; separate
            ``user``/``password`` params override its parts), plus ``schema``, ``timeout``
            (connect timeout in seconds, default 10) and driver options such as ``sslmode``,
            ``sslrootcert`` or ``ssl_ca``, passed to the driver as connect args.

    Returns:
        The settings; nothing is connected.

    Raises:
        SpecError: when neither ``url`` nor ``type`` is given.
    """
    params = dict(params)
    user = params.get("user", params.get("username"))
    password = params.get("password")
    database = params.get("database", params.get("dbname", params.get("db", params.get("path"))))
    if params.get("url"):
        url = make_url(str(params["url"]))
        url = url.set(drivername=_normalize_driver(url.drivername))
        if user is not None:
            url = url.set(username=str(user))
        if password is not None:
            url = url.set(password=str(password))
        if database is not None and url.database is None:
            url = url.set(database=str(database))
    else:
        kind = params.get("driver") or params.get("type")
        if not kind:
            raise SpecError(
                "database connection needs 'type' (postgresql, mysql, sqlite, ...) or 'url'"
            )
        drivername = _normalize_driver(str(kind))
        if drivername.startswith("sqlite"):
            url = URL.create(drivername, database=str(database) if database else None)
        else:
            port = params.get("port")
            url = URL.create(
                drivername,
                username=str(user) if user is not None else None,
                password=str(password) if password is not None else None,
                host=params.get("host") or None,
                port=int(port) if port not in (None, "") else None,
                database=str(database) if database is not None else None,
            )
    backend = url.get_backend_name()
    connect_args: dict[str, Any] = {k: v for k, v in params.items() if k not in KNOWN_PARAMS}
    connect_args.update(params.get("connect_args") or {})
    # SQLite's timeout is how long a writer waits for another one's lock, not a connect timeout
    timeout = params.get("timeout", SQLITE_BUSY_TIMEOUT if backend == "sqlite" else DEFAULT_TIMEOUT)
    if timeout is not None:
        key = _TIMEOUT_ARGS.get(backend)
        if key:
            connect_args.setdefault(key, int(timeout) if backend != "sqlite" else float(timeout))
    if backend in ("mysql", "mariadb") and "charset" not in url.query:
        connect_args.setdefault("charset", "utf8mb4")
    secrets = [url.password] if url.password else []
    secrets += [
        str(v)
        for k, v in connect_args.items()
        if v and any(word in k.lower() for word in ("password", "secret", "token"))
    ]
    schema = params.get("schema")
    if backend in ("mysql", "mariadb") and not schema:
        schema = None
    return ConnectionSettings(
        url=url,
        connect_args=connect_args,
        schema=str(schema) if schema else None,
        secrets=tuple(str(s) for s in secrets),
    )
