"""Pagination styles: an open registry (``api_pagination: {type: ...}``), one class per style.

A paginator is asked for the first request's URL and params, then, after every page, for the
next ones or None (no more pages). Stop conditions: an empty page, a short page (fewer records
than the page size asked for), a total reached, or no next cursor/URL/link.

Each style is a :class:`Paginator` subclass with its own settings model
(:attr:`Paginator.Config`). Other packages add styles through the entry-point group
``nexus_dagster.paginators``::

    # pyproject.toml of another package
    [project.entry-points."nexus_dagster.paginators"]
    graphql = "my_package.pagination:GraphQLPaginator"

or at run time with :func:`register_paginator`; a registered style validates (``nexus
validate``) and runs like a built-in one.

Example:
    >>> pager = make_paginator({"type": "offset", "limit": 2})
    >>> pager.first("https://api.example.com/users", {})
    ('https://api.example.com/users', {'offset': 0, 'limit': 2})
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin

from pydantic import Field

from nexus_dagster.connectors.http.response_records import get_path
from nexus_dagster.connectors.http.styles import Style, StyleConfig, StyleRegistry

__all__ = [
    "BUILTIN_PAGINATORS",
    "PAGINATORS",
    "PAGINATOR_ENTRY_POINT_GROUP",
    "CursorPaginationConfig",
    "CursorPaginator",
    "LinkHeaderPaginationConfig",
    "LinkHeaderPaginator",
    "NextUrlPaginationConfig",
    "NextUrlPaginator",
    "OffsetPaginationConfig",
    "OffsetPaginator",
    "PagePaginationConfig",
    "PagePaginator",
    "Paginator",
    "Request",
    "SinglePage",
    "make_paginator",
    "register_paginator",
]

PAGINATOR_ENTRY_POINT_GROUP = "nexus_dagster.paginators"

#: a request: (url, query params)
Request = tuple[str, dict[str, Any]]


class Paginator(Style, ABC):
    """One pagination style: declares its settings as ``Config`` (a :class:`StyleConfig`
    subclass) and implements :meth:`next`.

    Example:
        >>> class PageTokenConfig(StyleConfig):
        ...     token_path: str = "nextPageToken"
        >>> class PageTokenPaginator(Paginator):
        ...     Config = PageTokenConfig
        ...     def next(self, request, response, body, count):
        ...         token = body.get(self.config.token_path)
        ...         return (request[0], {**request[1], "pageToken": token}) if token else None
        >>> register_paginator("page_token", PageTokenPaginator)
    """

    def first(self, url: str, params: dict[str, Any]) -> Request:
        """The first request (the spec's URL and params, plus the style's own params)."""
        return url, dict(params)

    @abstractmethod
    def next(self, request: Request, response: Any, body: Any, count: int) -> Request | None:
        """The request for the page after the one just read, or None when done.

        Args:
            request: the (url, params) that produced this page.
            response: the ``requests.Response`` (headers, links).
            body: the parsed JSON body.
            count: how many records the page held.
        """


def _int_at(body: Any, path: str | None) -> int | None:
    if not path:
        return None
    value = get_path(body, path, None)
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


class SinglePage(Paginator):
    """No pagination: one request (``api_pagination: {type: none}``, or no block)."""

    def next(self, request: Request, response: Any, body: Any, count: int) -> Request | None:
        return None


class PagePaginationConfig(StyleConfig):
    """Settings of ``api_pagination: {type: page}``."""

    page_param: str = Field("page", description="the query parameter holding the page number")
    start_page: int = Field(1, description="the number of the first page")
    page_size_param: str | None = Field(None, description="the query parameter of the page size")
    page_size: int | None = Field(None, ge=1, description="records asked for per page")
    total_pages_path: str | None = Field(None, description="dotted path of the page count")
    total_path: str | None = Field(None, description="dotted path of the record count")


class PagePaginator(Paginator):
    """``?page=1,2,3...`` (and an optional page size parameter); stops on an empty or short
    page, or at ``total_pages_path`` / ``total_path``."""

    Config = PagePaginationConfig
    config: PagePaginationConfig

    def first(self, url: str, params: dict[str, Any]) -> Request:
        config = self.config
        params = {**params, config.page_param: config.start_page}
        if config.page_size_param and config.page_size:
            params[config.page_size_param] = config.page_size
        self._seen = 0
        return url, params

    def next(self, request: Request, response: Any, body: Any, count: int) -> Request | None:
        url, params = request
        config = self.config
        page = int(params[config.page_param])
        self._seen += count
        total_pages = _int_at(body, config.total_pages_path)
        total = _int_at(body, config.total_path)
        if count == 0 or (config.page_size and count < config.page_size):
            return None
        if total_pages is not None and page - config.start_page + 1 >= total_pages:
            return None
        if total is not None and self._seen >= total:
            return None
        return url, {**params, config.page_param: page + 1}


class OffsetPaginationConfig(StyleConfig):
    """Settings of ``api_pagination: {type: offset}``."""

    offset_param: str = Field("offset", description="the query parameter of the offset")
    limit_param: str = Field("limit", description="the query parameter of the page size")
    limit: int = Field(100, ge=1, description="records asked for per page")
    start: int = Field(0, ge=0, description="the first offset")
    total_path: str | None = Field(None, description="dotted path of the record count")


class OffsetPaginator(Paginator):
    """``?offset=0&limit=100``; stops on an empty or short page, or at ``total_path``."""

    Config = OffsetPaginationConfig
    config: OffsetPaginationConfig

    def first(self, url: str, params: dict[str, Any]) -> Request:
        config = self.config
        return url, {**params, config.offset_param: config.start, config.limit_param: config.limit}

    def next(self, request: Request, response: Any, body: Any, count: int) -> Request | None:
        url, params = request
        config = self.config
        offset = int(params[config.offset_param]) + count
        total = _int_at(body, config.total_path)
        if count == 0 or count < config.limit or (total is not None and offset >= total):
            return None
        return url, {**params, config.offset_param: offset}


class CursorPaginationConfig(StyleConfig):
    """Settings of ``api_pagination: {type: cursor}``."""

    cursor_path: str = Field("next_cursor", description="dotted path of the next cursor")
    cursor_param: str = Field("cursor", description="the query parameter the cursor is sent as")
    has_more_path: str | None = Field(
        None, description="dotted path of a 'more pages' flag; false stops"
    )


class CursorPaginator(Paginator):
    """The next cursor is in the body (``cursor_path``) and sent back as ``cursor_param``;
    stops when it is missing/empty or ``has_more_path`` is false."""

    Config = CursorPaginationConfig
    config: CursorPaginationConfig

    def next(self, request: Request, response: Any, body: Any, count: int) -> Request | None:
        url, params = request
        config = self.config
        if config.has_more_path and not get_path(body, config.has_more_path, False):
            return None
        cursor = get_path(body, config.cursor_path, None)
        if cursor in (None, "", False):
            return None
        return url, {**params, config.cursor_param: cursor}


class NextUrlPaginationConfig(StyleConfig):
    """Settings of ``api_pagination: {type: next_url}``."""

    next_url_path: str = Field("next", description="dotted path of the next page's URL")


class NextUrlPaginator(Paginator):
    """The next page's URL is in the body (relative URLs resolve against the current one);
    stops when it is missing."""

    Config = NextUrlPaginationConfig
    config: NextUrlPaginationConfig

    def next(self, request: Request, response: Any, body: Any, count: int) -> Request | None:
        url, _ = request
        following = get_path(body, self.config.next_url_path, None)
        if not following or not isinstance(following, str):
            return None
        # the next URL carries its own query string; the spec's params are not repeated
        return urljoin(url, following), {}


class LinkHeaderPaginationConfig(StyleConfig):
    """Settings of ``api_pagination: {type: link_header}``."""

    rel: str = Field("next", description="the link relation of the next page")


class LinkHeaderPaginator(Paginator):
    """RFC 5988 ``Link: <url>; rel="next"`` header; stops when there is no ``rel`` link."""

    Config = LinkHeaderPaginationConfig
    config: LinkHeaderPaginationConfig

    def next(self, request: Request, response: Any, body: Any, count: int) -> Request | None:
        link = response.links.get(self.config.rel)
        if not link or not link.get("url"):
            return None
        return urljoin(request[0], link["url"]), {}


#: the paginators shipped with nexus-dagster: ``api_pagination.type`` -> Paginator class
BUILTIN_PAGINATORS: dict[str, type[Paginator]] = {
    "none": SinglePage,
    "page": PagePaginator,
    "offset": OffsetPaginator,
    "cursor": CursorPaginator,
    "next_url": NextUrlPaginator,
    "link_header": LinkHeaderPaginator,
}

#: every pagination style: built-ins, entry points (``nexus_dagster.paginators``), registered
PAGINATORS: StyleRegistry[Paginator] = StyleRegistry(
    "api_pagination", Paginator, BUILTIN_PAGINATORS, PAGINATOR_ENTRY_POINT_GROUP,
    "register_paginator",
)


def register_paginator(name: str, cls: type[Paginator] | str) -> None:
    """Make ``api_pagination: {type: name}`` use ``cls``: a :class:`Paginator` subclass or its
    ``"module:Class"`` path; the spec's other ``api_pagination`` keys are checked against
    ``cls.Config``.

    Example:
        >>> register_paginator("graphql", "my_package.pagination:GraphQLPaginator")
    """
    PAGINATORS.register(name, cls)


def make_paginator(config: StyleConfig | Mapping[str, Any] | None) -> Paginator:
    """The paginator for an ``api_pagination`` block (a single request without one).

    Raises:
        SpecError: unknown type (the message lists the known ones) or invalid settings.
    """
    if not config:
        return SinglePage({"type": "none"})
    return PAGINATORS.create(config)
