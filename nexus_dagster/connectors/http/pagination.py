"""Pagination styles: an explicit registry (``PAGINATOR_MAP``) and one class per style.

A paginator is asked for the first request's URL and params, then, after every page, for the
next ones or None (no more pages). Stop conditions: an empty page, a short page (fewer records
than the page size asked for), a total reached, or no next cursor/URL/link.

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

from nexus_dagster.connectors.http.records import get_path
from nexus_dagster.errors import SpecError

Request = tuple[str, dict[str, Any]]


class Paginator(ABC):
    """One pagination style. Subclasses implement :meth:`next`."""

    def __init__(self, config: Mapping[str, Any]):
        self.config = dict(config)

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
    """No pagination: one request."""

    def next(self, request: Request, response: Any, body: Any, count: int) -> Request | None:
        return None


class PagePaginator(Paginator):
    """``?page=N`` (and an optional page size parameter)."""

    def first(self, url: str, params: dict[str, Any]) -> Request:
        params = dict(params)
        params[self.config.get("page_param", "page")] = self.config.get("start_page", 1)
        if self.config.get("page_size_param") and self.config.get("page_size"):
            params[self.config["page_size_param"]] = self.config["page_size"]
        self._seen = 0
        return url, params

    def next(self, request: Request, response: Any, body: Any, count: int) -> Request | None:
        url, params = request
        name = self.config.get("page_param", "page")
        page = int(params[name])
        self._seen += count
        size = self.config.get("page_size")
        total_pages = _int_at(body, self.config.get("total_pages_path"))
        total = _int_at(body, self.config.get("total_path"))
        if count == 0 or (size and count < size):
            return None
        if total_pages is not None and page - self.config.get("start_page", 1) + 1 >= total_pages:
            return None
        if total is not None and self._seen >= total:
            return None
        return url, {**params, name: page + 1}


class OffsetPaginator(Paginator):
    """``?offset=N&limit=M``."""

    def first(self, url: str, params: dict[str, Any]) -> Request:
        params = dict(params)
        params[self.config.get("offset_param", "offset")] = self.config.get("start", 0)
        params[self.config.get("limit_param", "limit")] = self.config.get("limit", 100)
        return url, params

    def next(self, request: Request, response: Any, body: Any, count: int) -> Request | None:
        url, params = request
        name = self.config.get("offset_param", "offset")
        limit = int(self.config.get("limit", 100))
        offset = int(params[name]) + count
        total = _int_at(body, self.config.get("total_path"))
        if count == 0 or count < limit or (total is not None and offset >= total):
            return None
        return url, {**params, name: offset}


class CursorPaginator(Paginator):
    """The next cursor from the body, sent as a query parameter."""

    def next(self, request: Request, response: Any, body: Any, count: int) -> Request | None:
        url, params = request
        has_more = self.config.get("has_more_path")
        if has_more and not get_path(body, has_more, False):
            return None
        cursor = get_path(body, self.config.get("cursor_path", "next_cursor"), None)
        if cursor in (None, "", False):
            return None
        return url, {**params, self.config.get("cursor_param", "cursor"): cursor}


class NextUrlPaginator(Paginator):
    """The next page's URL from the body (relative URLs resolve against the current one)."""

    def next(self, request: Request, response: Any, body: Any, count: int) -> Request | None:
        url, _ = request
        following = get_path(body, self.config.get("next_url_path", "next"), None)
        if not following or not isinstance(following, str):
            return None
        # the next URL carries its own query string; the spec's params are not repeated
        return urljoin(url, following), {}


class LinkHeaderPaginator(Paginator):
    """RFC 5988 ``Link`` header, ``rel="next"`` by default."""

    def next(self, request: Request, response: Any, body: Any, count: int) -> Request | None:
        link = response.links.get(self.config.get("rel", "next"))
        if not link or not link.get("url"):
            return None
        return urljoin(request[0], link["url"]), {}


#: ``api_pagination.type`` -> Paginator class
PAGINATOR_MAP: dict[str, type[Paginator]] = {
    "none": SinglePage,
    "page": PagePaginator,
    "offset": OffsetPaginator,
    "cursor": CursorPaginator,
    "next_url": NextUrlPaginator,
    "link_header": LinkHeaderPaginator,
}


def register_paginator(name: str, cls: type[Paginator]) -> None:
    """Make ``api_pagination: {type: name}`` use ``cls``."""
    PAGINATOR_MAP[name] = cls


def make_paginator(config: Mapping[str, Any] | None) -> Paginator:
    """The paginator for an ``api_pagination`` mapping (a single request without one).

    Raises:
        SpecError: unknown type; the message lists the known ones.
    """
    if not config:
        return SinglePage({})
    kind = str(config.get("type"))
    try:
        return PAGINATOR_MAP[kind](config)
    except KeyError:
        raise SpecError(
            f"api_pagination.type {kind!r} is unknown; known: {', '.join(sorted(PAGINATOR_MAP))}"
        ) from None
