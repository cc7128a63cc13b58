"""Authentication of API requests: an explicit registry of styles.

Every secret an auth holds is registered with :func:`nexus_dagster.secrets.register_secret` as
soon as the auth is built, so it is masked in every log line, error and metadata value.

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
from typing import Any

from nexus_dagster.errors import ConnectorError, SpecError
from nexus_dagster.secrets import mask, register_secret


class Auth(ABC):
    """One way to authenticate: adds headers/params to each request."""

    def __init__(self, config: Mapping[str, Any]):
        self.config = dict(config)

    @abstractmethod
    def apply(self, headers: dict[str, str], params: dict[str, Any]) -> None:
        """Add credentials to a request's headers or query parameters (in place)."""

    def refresh(self) -> bool:
        """Called after a 401: True when new credentials were obtained (retry once)."""
        return False


class BearerAuth(Auth):
    """``Authorization: Bearer <token>``."""

    def __init__(self, config: Mapping[str, Any]):
        super().__init__(config)
        register_secret(str(self.config["token"]))

    def apply(self, headers: dict[str, str], params: dict[str, Any]) -> None:
        headers["Authorization"] = f"Bearer {self.config['token']}"


class ApiKeyAuth(Auth):
    """An API key in a header or a query parameter."""

    def __init__(self, config: Mapping[str, Any]):
        super().__init__(config)
        register_secret(str(self.config["key"]))

    def apply(self, headers: dict[str, str], params: dict[str, Any]) -> None:
        name = self.config.get("name") or "X-API-Key"
        if self.config.get("location", "header") == "query":
            params[name] = self.config["key"]
        else:
            headers[name] = str(self.config["key"])


def _basic(username: str, password: str) -> str:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    register_secret(token)
    return f"Basic {token}"


class BasicAuth(Auth):
    """HTTP basic authentication."""

    def __init__(self, config: Mapping[str, Any]):
        super().__init__(config)
        register_secret(str(self.config["password"]))
        self._header = _basic(str(self.config["username"]), str(self.config["password"]))

    def apply(self, headers: dict[str, str], params: dict[str, Any]) -> None:
        headers["Authorization"] = self._header


class OAuth2ClientCredentials(Auth):
    """OAuth2 client-credentials: a bearer token from the token endpoint ``url``.

    The token is fetched before the first request, again shortly before ``expires_in`` runs
    out, and again when the API answers 401.
    """

    #: refresh this many seconds before the token's announced expiry
    EXPIRY_MARGIN = 5.0

    def __init__(self, config: Mapping[str, Any]):
        super().__init__(config)
        register_secret(str(self.config["client_secret"]))
        self._token: str | None = None
        self._expires_at: float | None = None
        self._lock = threading.Lock()
        #: set by the client: ``post(url, data, headers) -> requests.Response``
        self.post: Callable[..., Any] | None = None

    def _fetch(self) -> None:
        if self.post is None:  # pragma: no cover - the client always wires it
            raise ConnectorError("OAuth2 auth is not attached to an HTTP client")
        data = {"grant_type": "client_credentials"}
        headers = {"Accept": "application/json"}
        cid, secret = str(self.config["client_id"]), str(self.config["client_secret"])
        if self.config.get("client_auth") == "basic":
            headers["Authorization"] = _basic(cid, secret)
        else:
            data.update(client_id=cid, client_secret=secret)
        for key in ("scope", "audience"):
            if self.config.get(key):
                data[key] = self.config[key]
        response = self.post(self.config["url"], data=data, headers=headers)
        try:
            body = response.json()
            token = body["access_token"]
        except (ValueError, KeyError, TypeError):
            raise ConnectorError(mask(
                f"OAuth2 token endpoint {self.config['url']} answered HTTP "
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


#: ``api_auth.type`` -> Auth class
AUTH_MAP: dict[str, type[Auth]] = {
    "bearer": BearerAuth,
    "api_key": ApiKeyAuth,
    "basic": BasicAuth,
    "oauth2_client_credentials": OAuth2ClientCredentials,
}


def register_auth(name: str, cls: type[Auth]) -> None:
    """Make ``api_auth: {type: name}`` use ``cls``."""
    AUTH_MAP[name] = cls


def make_auth(config: Mapping[str, Any] | None) -> Auth | None:
    """The Auth for an ``api_auth`` mapping (None without one).

    Raises:
        SpecError: the type is unknown (the message lists the known ones) or a field is missing.
    """
    if not config:
        return None
    kind = config.get("type")
    try:
        cls = AUTH_MAP[str(kind)]
    except KeyError:
        raise SpecError(
            f"api_auth.type {kind!r} is unknown; known: {', '.join(sorted(AUTH_MAP))}"
        ) from None
    try:
        return cls(config)
    except KeyError as exc:
        raise SpecError(f"api_auth of type {kind} needs {exc.args[0]}") from None
