"""Spec fields of REST API sources and targets (``source_type: api`` / ``target_type: api``).

The Nexus fields ``api_endpoint``, ``api_method``, ``api_headers`` and ``api_params`` stay as they
were; the rest is flat settings mixed into :class:`~nexus_dagster.spec.models.DataSource` /
``DataTarget`` and two open blocks, ``api_auth`` and ``api_pagination``: a ``type`` naming a
registered style and that style's settings, checked by :func:`api_problems` against the
registries of :mod:`nexus_dagster.connectors.http.auth` and
:mod:`~nexus_dagster.connectors.http.pagination` (the models know no style).

Example:
    >>> from nexus_dagster.spec.models import DataSource, SourceType
    >>> DataSource(
    ...     name="tickets", source_type=SourceType.API,
    ...     api_endpoint="https://api.example.com/v2/tickets",
    ...     api_auth={"type": "bearer", "token": "${TICKETS_TOKEN}"},
    ...     api_pagination={"type": "cursor", "cursor_path": "meta.next_cursor"},
    ...     records_path="data",
    ... )
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

_CONFIG = ConfigDict(extra="forbid")


# ----------------------------------------------------------------------------- styles
class StyleBlock(BaseModel):
    """An open settings block: ``type`` names a style, every other key is kept as written.

    The spec knows no style: ``nexus validate`` checks ``type`` against the registry of
    styles and the other keys against that style's settings model (see :func:`api_problems`).
    """

    model_config = ConfigDict(extra="allow")

    type: str = Field(min_length=1, description="the name of a registered style")


class ApiAuthBlock(StyleBlock):
    """``api_auth``: ``{type: bearer | api_key | basic | oauth2_client_credentials | <a
    registered style>, ...its settings}``."""


class ApiPaginationBlock(StyleBlock):
    """``api_pagination``: ``{type: page | offset | cursor | next_url | link_header | none |
    <a registered style>, ...its settings}``."""


# ----------------------------------------------------------------------------- mixins
_COMMON_FIELDS = (
    "api_auth", "allow_http", "requests_per_second", "timeout_seconds", "max_retries",
    "backoff_seconds", "allow_partial",
)
_SOURCE_FIELDS = (
    "api_pagination", "records_path", "flatten_depth", "explode", "max_pages",
    "incremental_param",
)
_TARGET_FIELDS = (
    "api_endpoint", "api_headers", "api_params", "api_body", "body_key", "idempotency_header",
)


def _kind(model: Any) -> str:
    kind = getattr(model, "source_type", None) or getattr(model, "target_type", None)
    return str(getattr(kind, "value", kind))


def https_problem(url: str | None, allow_http: bool) -> str | None:
    """Why ``url`` may not be used (plain http without ``allow_http``), or None."""
    if not url or "${" in url:
        return None
    scheme = urlsplit(url).scheme.lower()
    if scheme == "http" and not allow_http:
        return (
            f"{url.split('?')[0]} uses plain http; API traffic must use https "
            "(set allow_http: true only for trusted networks such as loopback tests)"
        )
    if scheme and scheme not in ("http", "https"):
        return f"{url.split('?')[0]}: scheme {scheme!r} is not http(s)"
    return None


class ApiCommonFields(BaseModel):
    """Settings of API sources and targets."""

    model_config = _CONFIG

    api_auth: ApiAuthBlock | None = None
    allow_http: bool = False
    requests_per_second: float | None = Field(None, gt=0)
    timeout_seconds: float = Field(30.0, gt=0)
    max_retries: int = Field(5, ge=0, le=50)
    backoff_seconds: float = Field(1.0, ge=0)
    allow_partial: bool = False

    def _api_only(self, names: tuple[str, ...]) -> None:
        if _kind(self) == "api":
            return
        wrong = sorted(n for n in names if n in self.model_fields_set)
        if wrong:
            raise ValueError(
                f"{', '.join(wrong)}: only for type api, not {_kind(self)}; remove them"
            )

    def _check_https(self) -> None:
        problem = https_problem(getattr(self, "api_endpoint", None), self.allow_http)
        if problem and _kind(self) == "api":
            raise ValueError(f"api_endpoint: {problem}")


class ApiSourceFields(ApiCommonFields):
    """API source settings (besides the Nexus ``api_endpoint``/``api_method``/``api_headers``/
    ``api_params`` fields of DataSource)."""

    api_pagination: ApiPaginationBlock | None = None
    records_path: str | None = None
    flatten_depth: int = Field(3, ge=0, le=32)
    explode: str | None = None
    max_pages: int | None = Field(None, ge=1)
    incremental_param: str | None = None

    @model_validator(mode="after")
    def _api_source(self) -> ApiSourceFields:
        self._api_only(_COMMON_FIELDS + _SOURCE_FIELDS)
        self._check_https()
        if self.incremental_param and not getattr(self, "incremental_column", None):
            raise ValueError(
                "incremental_param needs incremental_column (the record field whose largest "
                "value is kept as the cursor)"
            )
        return self


class ApiTargetFields(ApiCommonFields):
    """API target settings: where and how records are sent."""

    api_endpoint: str | None = None
    api_method: Literal["POST", "PUT", "PATCH"] = "POST"
    api_headers: dict[str, str] = Field(default_factory=dict)
    api_params: dict[str, Any] = Field(default_factory=dict)
    #: ``array``: one request per batch with a JSON array body; ``record``: one per record
    api_body: Literal["array", "record"] = "array"
    #: wrap the array as ``{body_key: [...]}``
    body_key: str | None = None
    idempotency_header: str | None = "Idempotency-Key"

    @model_validator(mode="after")
    def _api_target(self) -> ApiTargetFields:
        self._api_only(_COMMON_FIELDS + _TARGET_FIELDS)
        self._check_https()
        return self


# ----------------------------------------------------------------------------- hooks
#: records per request of an API target whose spec does not set batch_size
DEFAULT_TARGET_BATCH = 100


def endpoint_params(endpoint: Any) -> dict[str, Any]:
    """The API settings of a source/target as connector params (empty for other types).

    Merged over the connection's params before secrets are resolved, so ``${ENV}``/``enc:``
    values in headers and auth are resolved at run time only.
    """
    if _kind(endpoint) != "api":
        return {}
    names = ["api_endpoint", "api_method", "api_headers", "api_params", *_COMMON_FIELDS]
    names += _SOURCE_FIELDS if hasattr(endpoint, "api_pagination") else _TARGET_FIELDS
    params = {}
    for name in dict.fromkeys(names):
        value = getattr(endpoint, name, None)
        if isinstance(value, BaseModel):
            value = value.model_dump()
        params[name] = value
    if not hasattr(endpoint, "api_pagination"):
        fields_set = endpoint.model_fields_set
        params["request_batch_size"] = (
            endpoint.batch_size if "batch_size" in fields_set else DEFAULT_TARGET_BATCH
        )
    return params


def api_problems(endpoint: Any, connection_params: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """Checks of an API endpoint that need the registries of styles and the connection:
    ``(field, message, fix)`` for each problem, ``field`` dotted (``api_auth.token``).

    ``api_auth`` / ``api_pagination``: the ``type`` must be a registered style (the fix lists
    the known ones) and the other keys valid settings of that style; settings holding
    ``${ENV}``/``enc:`` are checked at run time.
    """
    if _kind(endpoint) != "api":
        return []
    # on first use: the style registries (and their pydantic settings models) only matter to a
    # project with API endpoints
    from nexus_dagster.connectors.http.auth import AUTH_STYLES
    from nexus_dagster.connectors.http.pagination import PAGINATORS

    problems = []
    for field, registry in (("api_auth", AUTH_STYLES), ("api_pagination", PAGINATORS)):
        block = getattr(endpoint, field, None)
        if block is not None:
            problems += registry.problems(block.model_dump(), field)
    base = connection_params.get("base_url")
    allow = bool(endpoint.allow_http or connection_params.get("allow_http"))
    if isinstance(base, str):
        problem = https_problem(base, allow)
        if problem:
            problems.append(("connection", f"base_url {problem}", "use an https:// base_url"))
    if not endpoint.api_endpoint and not base and connection_params:
        problems.append((
            "api_endpoint",
            "an api endpoint needs api_endpoint (or a connection with base_url)",
            "add api_endpoint: https://...",
        ))
    return problems
