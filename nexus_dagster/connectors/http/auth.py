"""Authentication of API requests: an open registry of styles (``api_auth: {type: ...}``).

Each style is an :class:`Auth` subclass with its own settings model (:attr:`Auth.Config`,
secrets as ``SecretStr``). The built-in styles are below; other packages add styles through
the entry-point group ``nexus_dagster.auth``::

    # pyproject.toml of another package
    [project.entry-points."nexus_dagster.auth"]
    hmac = "my_package.auth:HmacAuth"

or at run time with :func:`register_auth`. A registered style validates (``nexus validate``)
and runs like a built-in one. Every secret of an auth's settings is registered with
:func:`nexus_dagster.secrets.register_secret` as soon as the auth is built, so it is masked in
every log line, error and metadata value.

Example:
    >>> auth = make_auth({"type": "bearer", "token": "s3cret-token"})
    >>> headers, params = {}, {}
    >>> auth.apply(headers, params)
    >>> headers["Authorization"]
    'Bearer s3cret-token'
"""

from __future__ import annotations

import base64
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import Field, SecretStr

from nexus_dagster.connectors.http.styles import Style, StyleConfig, StyleRegistry
from nexus_dagster.errors import ConnectorError
from nexus_dagster.secrets import mask, register_secret

__all__ = [
    "AUTH_ENTRY_POINT_GROUP",
    "AUTH_STYLES",
    "BUILTIN_AUTH",
    "ApiKeyAuth",
    "ApiKeyAuthConfig",
    "Auth",
    "BasicAuth",
    "BasicAuthConfig",
    "BearerAuth",
    "BearerAuthConfig",
    "OAuth2ClientCredentials",
    "OAuth2ClientCredentialsConfig",
    "make_auth",
    "register_auth",
]

AUTH_ENTRY_POINT_GROUP = "nexus_dagster.auth"


class Auth(Style, ABC):
    """One way to authenticate: adds headers/params to each request.

    A style declares its settings as ``Config`` (a :class:`StyleConfig` subclass) and
    implements :meth:`apply`.

    Example:
        >>> class HeaderTokenConfig(StyleConfig):
        ...     header: str = "X-Token"
        ...     token: SecretStr
        >>> class HeaderTokenAuth(Auth):
        ...     Config = HeaderTokenConfig
        ...     def apply(self, headers, params):
        ...         headers[self.config.header] = self.config.token.get_secret_value()
        >>> register_auth("header_token", HeaderTokenAuth)
    """

    def __init__(self, config: StyleConfig | Mapping[str, Any]):
        super().__init__(config)
        #: set by the HTTP client for styles that call a token endpoint:
        #: ``post(url, data=..., headers=...) -> requests.Response`` (no auth applied)
        self.post: Callable[..., Any] | None = None

    @abstractmethod
    def apply(self, headers: dict[str, str], params: dict[str, Any]) -> None:
        """Add credentials to a request's headers or query parameters (in place)."""

    def refresh(self) -> bool:
        """Called after a 401: True when new credentials were obtained (retry once)."""
        return False


# ----------------------------------------------------------------------------- bearer
class BearerAuthConfig(StyleConfig):
    """Settings of ``api_auth: {type: bearer}``."""

    token: SecretStr = Field(min_length=1, description="the bearer token")


class BearerAuth(Auth):
    """``Authorization: Bearer <token>``."""

    Config = BearerAuthConfig
    config: BearerAuthConfig

    def apply(self, headers: dict[str, str], params: dict[str, Any]) -> None:
        headers["Authorization"] = f"Bearer {self.config.token.get_secret_value()}"


# ----------------------------------------------------------------------------- api key
class ApiKeyAuthConfig(StyleConfig):
    """Settings of ``api_auth: {type: api_key}``."""

    key: SecretStr = Field(min_length=1, description="the API key")
    name: str = Field("X-API-Key", min_length=1,
                      description="the header or query parameter carrying the key")
    location: Literal["header", "query"] = Field(
        "header", description="send the key as a header or as a query parameter"
    )


class ApiKeyAuth(Auth):
    """An API key in a header (``X-API-Key`` by default) or a query parameter."""

    Config = ApiKeyAuthConfig
    config: ApiKeyAuthConfig

    def apply(self, headers: dict[str, str], params: dict[str, Any]) -> None:
        key = self.config.key.get_secret_value()
        if self.config.location == "query":
            params[self.config.name] = key
        else:
            headers[self.config.name] = key


# ----------------------------------------------------------------------------- basic
def basic_header(username: str, password: str) -> str:
    """``Basic <base64(username:password)>``; the encoded credentials are a registered
    secret."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    register_secret(token)
    return f"Basic {token}"


class BasicAuthConfig(StyleConfig):
    """Settings of ``api_auth: {type: basic}``."""

    username: str = Field(description="the user name")
    password: SecretStr = Field(description="the password")


class BasicAuth(Auth):
    """HTTP basic authentication."""

    Config = BasicAuthConfig
    config: BasicAuthConfig

    def __init__(self, config: StyleConfig | Mapping[str, Any]):
        super().__init__(config)
        self._header = basic_header(self.config.username, self.config.password.get_secret_value())

    def apply(self, headers: dict[str, str], params: dict[str, Any]) -> None:
        headers["Authorization"] = self._header


# ----------------------------------------------------------------------------- OAuth2
class OAuth2ClientCredentialsConfig(StyleConfig):
    """Settings of ``api_auth: {type: oauth2_client_credentials}``."""

    url: str = Field(min_length=1, description="the token endpoint")
    client_id: str = Field(min_length=1, description="the OAuth2 client id")
    client_secret: SecretStr = Field(min_length=1, description="the OAuth2 client secret")
    scope: str | None = Field(None, description="the scope asked for")
    audience: str | None = Field(None, description="the audience asked for")
    client_auth: Literal["body", "basic"] = Field(
        "body", description="send the client credentials in the form body or as HTTP basic auth"
    )


class OAuth2ClientCredentials(Auth):
    """OAuth2 client-credentials grant: a bearer token from the token endpoint ``url``.

    The token is fetched before the first request, again shortly before ``expires_in`` runs
    out, and again when the API answers 401.
    """

    Config = OAuth2ClientCredentialsConfig
    config: OAuth2ClientCredentialsConfig

    #: refresh this many seconds before the token's announced expiry
    EXPIRY_MARGIN = 5.0

    def __init__(self, config: StyleConfig | Mapping[str, Any]):
        super().__init__(config)
        self._token: str | None = None
        self._expires_at: float | None = None
        self._lock = threading.Lock()

    def _fetch(self) -> None:
        if self.post is None:  # pragma: no cover - the client always wires it
            raise ConnectorError("OAuth2 auth is not attached to an HTTP client")
        config = self.config
        data = {"grant_type": "client_credentials"}
        headers = {"Accept": "application/json"}
        secret = config.client_secret.get_secret_value()
        if config.client_auth == "basic":
            headers["Authorization"] = basic_header(config.client_id, secret)
        else:
            data.update(client_id=config.client_id, client_secret=secret)
        for key in ("scope", "audience"):
            if getattr(config, key):
                data[key] = getattr(config, key)
        response = self.post(config.url, data=data, headers=headers)
        try:
            body = response.json()
            token = body["access_token"]
        except (ValueError, KeyError, TypeError):
            raise ConnectorError(mask(
                f"OAuth2 token endpoint {config.url} answered HTTP "
                f"{response.status_code} without an access_token; check api_auth.client_id, "
                "client_secret and scope"
            )) from None
        register_secret(str(token))
        self._token = str(token)
        expires = body.get("expires_in")
        self._expires_at = (
            time.monotonic() + max(0.0, float(expires) - self.EXPIRY_MARGIN)
            if isinstance(expires, int | float | str) and str(expires).replace(".", "").isdigit()
            else None
        )

    def apply(self, headers: dict[str, str], params: dict[str, Any]) -> None:
        with self._lock:
            expired = self._expires_at is not None and time.monotonic() >= self._expires_at
            if self._token is None or expired:
                self._fetch()
        headers["Authorization"] = f"Bearer {self._token}"

    def refresh(self) -> bool:
        with self._lock:
            self._fetch()
        return True


# ----------------------------------------------------------------------------- registry
#: the auth styles shipped with nexus-dagster: ``api_auth.type`` -> Auth class
BUILTIN_AUTH: dict[str, type[Auth]] = {
    "bearer": BearerAuth,
    "api_key": ApiKeyAuth,
    "basic": BasicAuth,
    "oauth2_client_credentials": OAuth2ClientCredentials,
}

#: every auth style: built-ins, entry points (``nexus_dagster.auth``), registered ones
AUTH_STYLES: StyleRegistry[Auth] = StyleRegistry(
    "api_auth", Auth, BUILTIN_AUTH, AUTH_ENTRY_POINT_GROUP, "register_auth"
)


def register_auth(name: str, cls: type[Auth] | str) -> None:
    """Make ``api_auth: {type: name}`` use ``cls``: an :class:`Auth` subclass or its
    ``"module:Class"`` path; the spec's other ``api_auth`` keys are checked against
    ``cls.Config``.

    Example:
        >>> register_auth("hmac", "my_package.auth:HmacAuth")
    """
    AUTH_STYLES.register(name, cls)


def make_auth(config: StyleConfig | Mapping[str, Any] | None) -> Auth | None:
    """The Auth for an ``api_auth`` block (None without one).

    Raises:
        SpecError: the type is unknown (the message lists the known ones) or a setting is
            missing or ill-typed (named, its value never shown).
    """
    if not config:
        return None
    return AUTH_STYLES.create(config)
