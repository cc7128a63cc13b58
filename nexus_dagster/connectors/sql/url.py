"""Database ``connection_params``: their typed model, and from it a SQLAlchemy URL, driver
connect args and secret scrubbing."""

from __future__ import annotations

import math
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from pydantic import AliasChoices, ConfigDict, Field, SecretStr, field_validator, model_validator
from sqlalchemy.engine import URL, make_url

from nexus_dagster import secrets
from nexus_dagster.connectors.base import ConnectorParams

#: Nexus ``type`` values -> SQLAlchemy drivernames
DRIVERS: dict[str, str] = {
    "postgresql": "postgresql+psycopg2",
    "postgres": "postgresql+psycopg2",
    "pg": "postgresql+psycopg2",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
    "sqlite": "sqlite",
}

DEFAULT_TIMEOUT = 10
SQLITE_BUSY_TIMEOUT = 60
_TIMEOUT_ARGS = {
    "postgresql": "connect_timeout",
    "mysql": "connect_timeout",
    "mariadb": "connect_timeout",
    "sqlite": "timeout",
}


class DatabaseParams(ConnectorParams):
    """The ``connection_params`` of a ``database`` source or target.

    ``extra="allow"`` on purpose: every key not declared here (``sslmode``, ``sslrootcert``,
    ``ssl_ca``, ``local_infile`` ...) is a keyword argument for the driver's ``connect()``.
    Such a key with a secret-like name (``sslpassword`` ...) is kept as a ``SecretStr``, so no
    repr shows it.

    Example:
        >>> DatabaseParams.model_validate({"type": "postgresql", "host": "db", "port": "5432",
        ...                                "username": "etl", "password": "pw"}).port
        5432
    """

    model_config = ConfigDict(extra="allow")

    driver: str | None = Field(
        None, description="SQLAlchemy dialect[+driver] name, used instead of type"
    )
    url: SecretStr | None = Field(
        None,
        description="a full SQLAlchemy URL; separate user/password/database params override "
        "its parts",
    )
    host: str | None = Field(None, description="the database server's host name or address")
    port: int | None = Field(None, ge=1, le=65535, description="the server's TCP port")
    database: str | None = Field(
        None,
        validation_alias=AliasChoices("database", "dbname", "db", "path"),
        description="the database name; for SQLite the database file (relative to the project "
        "root) or :memory:",
    )
    user: str | None = Field(
        None, validation_alias=AliasChoices("user", "username"), description="the login name"
    )
    password: SecretStr | None = Field(None, description="the login password")
    default_schema: str | None = Field(
        None,
        validation_alias=AliasChoices("schema"),
        description="the schema of unqualified table names",
    )
    timeout: float | None = Field(
        None,
        ge=0,
        description="connect timeout in seconds (default 10); on SQLite how long a writer waits "
        "for another one's lock (default 60)",
    )
    connect_args: dict[str, Any] = Field(
        default_factory=dict, description="more keyword arguments for the driver's connect()"
    )

    @model_validator(mode="before")
    @classmethod
    def _one_name_each(cls, data: Any) -> Any:
        """Two names of one parameter (``user`` and ``username``) are a mistake, not extras."""
        if isinstance(data, dict):
            for name, info in cls.model_fields.items():
                choices = getattr(info.validation_alias, "choices", None)
                given = [c for c in choices or () if isinstance(c, str) and c in data]
                if len(given) > 1:
                    raise ValueError(
                        f"{' and '.join(given)} name the same parameter ({name}); keep one"
                    )
        return data

    @field_validator("port", "timeout", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _needs_a_system(self) -> DatabaseParams:
        if not (self.url or self.type or self.driver):
            raise ValueError(
                "a database connection needs type (postgresql, mysql, sqlite, ...) or url"
            )
        for args in (self.model_extra or {}, self.connect_args):
            for key, value in args.items():
                if isinstance(value, str) and secrets.is_sensitive(str(key)):
                    args[key] = SecretStr(value)
        return self

    def driver_args(self) -> dict[str, Any]:
        """The keys passed to the driver's ``connect()`` (undeclared keys, then
        ``connect_args``), secrets in plain text: use them only to connect."""
        merged = {**(self.model_extra or {}), **self.connect_args}
        return {
            key: value.get_secret_value() if isinstance(value, SecretStr) else value
            for key, value in merged.items()
        }

    def driver_secrets(self) -> list[str]:
        """The plain values of the secret driver args (``sslpassword`` ...), for scrubbing."""
        merged = {**(self.model_extra or {}), **self.connect_args}
        return [v.get_secret_value() for v in merged.values()
                if isinstance(v, SecretStr) and v.get_secret_value()]


@dataclass
class ConnectionSettings:
    """Everything needed to build an engine, derived once from the params.

    Attributes:
        url: the SQLAlchemy URL (with password; never print it, use :attr:`masked`).
        connect_args: keyword arguments for the DBAPI ``connect()`` (may hold secrets; not in
            the repr).
        schema: default schema for unqualified table names, or None.
        secrets: strings that must never appear in a message (not in the repr).
    """

    url: URL
    connect_args: dict[str, Any] = field(default_factory=dict, repr=False)
    schema: str | None = None
    secrets: tuple[str, ...] = field(default=(), repr=False)

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


def connection_settings(params: DatabaseParams) -> ConnectionSettings:
    """Build the URL and connect args from validated database ``connection_params``.

    Args:
        params: the validated params (see :class:`DatabaseParams`): ``type`` or ``driver``
            (postgresql, postgres, mysql, mariadb, sqlite or any SQLAlchemy dialect[+driver]
            name) with ``host``, ``port``, ``database``, ``user``, ``password``, or ``url`` (a
            full SQLAlchemy URL; separate ``user``/``password``/``database`` params override
            its parts), plus ``schema``, ``timeout`` (connect timeout in seconds, default 10)
            and driver options such as ``sslmode``, ``sslrootcert`` or ``ssl_ca``, passed to
            the driver as connect args.

    Returns:
        The settings; nothing is connected.

    Example:
        >>> settings = connection_settings(DatabaseParams.model_validate(
        ...     {"type": "postgresql", "host": "db", "user": "etl", "password": "pw"}))
        >>> settings.masked
        'postgresql+psycopg2://etl:***@db'
    """
    user = params.user
    password = params.password.get_secret_value() if params.password is not None else None
    database = params.database
    if params.url is not None:
        url = make_url(params.url.get_secret_value())
        url = url.set(drivername=_normalize_driver(url.drivername))
        if user is not None:
            url = url.set(username=user)
        if password is not None:
            url = url.set(password=password)
        if database is not None and url.database is None:
            url = url.set(database=database)
    else:
        drivername = _normalize_driver(str(params.driver or params.type))
        if drivername.startswith("sqlite"):
            url = URL.create(drivername, database=database or None)
        else:
            url = URL.create(
                drivername,
                username=user,
                password=password,
                host=params.host or None,
                port=params.port,
                database=database,
            )
    backend = url.get_backend_name()
    connect_args = params.driver_args()
    # SQLite's timeout is how long a writer waits for another one's lock, not a connect timeout
    timeout = params.timeout
    if timeout is None:
        timeout = SQLITE_BUSY_TIMEOUT if backend == "sqlite" else DEFAULT_TIMEOUT
    key = _TIMEOUT_ARGS.get(backend)
    if key:
        connect_args.setdefault(
            key, float(timeout) if backend == "sqlite" else max(1, math.ceil(timeout))
        )
    if backend in ("mysql", "mariadb") and "charset" not in url.query:
        connect_args.setdefault("charset", "utf8mb4")
    found = [url.password] if url.password else []
    return ConnectionSettings(
        url=url,
        connect_args=connect_args,
        schema=params.default_schema or None,
        secrets=tuple(str(s) for s in [*found, *params.driver_secrets()]),
    )
