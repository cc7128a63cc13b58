"""One HTTP client for API sources and targets: timeouts, retries, rate limit, safe messages.

* every request has a timeout (``timeout_seconds`` for connect and for each read);
* 429, 5xx, connection errors and timeouts are retried up to ``max_retries`` times with
  exponential backoff (``backoff_seconds * 2**attempt``, capped at 60 s) and jitter (a random
  half to full delay); a ``Retry-After`` header (seconds or HTTP date) is honoured, capped at
  :data:`MAX_RETRY_AFTER`;
* 401 asks the auth for fresh credentials once (OAuth2 refreshes its token);
* ``requests_per_second`` spaces request starts;
* error messages name the method, the URL with sensitive query values replaced by ``***``, the
  status, and a short, masked excerpt of the body; never a header.
"""

from __future__ import annotations

import email.utils
import json
import random
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

from nexus_dagster.connectors.http.auth import Auth
from nexus_dagster.errors import ConnectorError, DataError, RetriableError
from nexus_dagster.secrets import is_sensitive, mask, register_secret

#: the longest Retry-After we wait for, in seconds
MAX_RETRY_AFTER = 300.0
MAX_BACKOFF = 60.0
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
USER_AGENT = "nexus-dagster"


def safe_url(url: str, params: Mapping[str, Any] | None = None) -> str:
    """``url`` with ``params`` appended and sensitive query values shown as ``***``."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [(str(k), str(v)) for k, v in (params or {}).items() if v is not None]
    shown = [(k, "***" if is_sensitive(k) else v) for k, v in query]
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    text = urlunsplit((parts.scheme, netloc, parts.path, urlencode(shown, safe="*,:"), ""))
    return mask(text)


def register_header_secrets(headers: Mapping[str, str]) -> None:
    """Register header values that are credentials (Authorization, X-API-Key, ...) and, for
    ``Authorization: <scheme> <credentials>``, the credentials alone."""
    for name, value in headers.items():
        if is_sensitive(name.replace("-", "_")) or "key" in name.lower():
            register_secret(str(value))
            _, _, credentials = str(value).partition(" ")
            if credentials:
                register_secret(credentials)


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is None:
            return None
        seconds = parsed.timestamp() - time.time()
    return max(0.0, seconds)


class RateLimiter:
    """Spaces request starts ``1 / requests_per_second`` apart (thread-safe)."""

    def __init__(self, per_second: float | None):
        self.interval = 1.0 / per_second if per_second else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


class HttpClient:
    """requests.Session with the policies above. One per connector; close() when done.

    Args:
        headers: sent with every request (credentials among them are registered secrets).
        auth: an :class:`~nexus_dagster.connectors.http.auth.Auth`, or None.
        timeout: seconds for connecting and for each read.
        max_retries: retries after the first attempt.
        backoff: base delay in seconds.
        requests_per_second: rate limit, or None.
        verify: TLS verification (True, False or a CA bundle path).
    """

    def __init__(
        self,
        *,
        headers: Mapping[str, str] | None = None,
        auth: Auth | None = None,
        timeout: float = 30.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        requests_per_second: float | None = None,
        verify: bool | str = True,
    ):
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        self.headers = dict(headers or {})
        register_header_secrets(self.headers)
        self.auth = auth
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.limiter = RateLimiter(requests_per_second)
        self.verify = verify
        self.requests_made = 0
        self.retries_made = 0
        if auth is not None:  # for styles that fetch tokens (OAuth2)
            auth.post = self._token_post

    def close(self) -> None:
        self.session.close()

    def _token_post(self, url: str, data: Mapping[str, Any], headers: Mapping[str, str]):
        return self.request("POST", url, data=data, headers=headers, authenticate=False)

    def _delay(self, attempt: int, response: requests.Response | None) -> float:
        if response is not None:
            after = _retry_after(response)
            if after is not None:
                return min(after, MAX_RETRY_AFTER)
        delay = min(MAX_BACKOFF, self.backoff * (2**attempt))
        return random.uniform(delay / 2, delay)

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        authenticate: bool = True,
    ) -> requests.Response:
        """Send one request with retries; return the successful (2xx/3xx) response.

        Raises:
            RetriableError: retries exhausted on 429/5xx/timeouts/connection errors.
            ConnectorError: any other 4xx (after one auth refresh on 401).
        """
        shown = f"{method} {safe_url(url, params)}"
        refreshed = False
        attempt = 0
        while True:
            all_headers = {**self.headers, **(headers or {})}
            all_params = dict(params or {})
            if authenticate and self.auth is not None:
                self.auth.apply(all_headers, all_params)
            self.limiter.wait()
            self.requests_made += 1
            response: requests.Response | None = None
            try:
                response = self.session.request(
                    method, url, params=all_params or None, json=json_body, data=data,
                    headers=all_headers, timeout=self.timeout, verify=self.verify,
                )
                # read the body now so a connection dropped mid-body is retried too
                _ = response.content
            except (requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError) as exc:
                kind = "timed out" if isinstance(exc, requests.Timeout) else "connection failed"
                problem = f"{kind} after {self.timeout:g} s" if kind == "timed out" else kind
            else:
                status = response.status_code
                if status < 400:
                    return response
                if status == 401 and authenticate and self.auth and not refreshed:
                    refreshed = True
                    if self.auth.refresh():
                        continue
                if status not in RETRY_STATUSES and status < 500:
                    raise ConnectorError(
                        f"{shown} failed: HTTP {status} {response.reason}{_excerpt(response)}"
                        + _hint(status)
                    )
                problem = f"HTTP {status} {response.reason}"
            if attempt >= self.max_retries:
                tail = f"{_excerpt(response)}" if response is not None else ""
                raise RetriableError(
                    f"{shown} failed after {attempt + 1} attempt(s): {problem}{tail} "
                    "(raise max_retries or timeout_seconds if the API is slow or overloaded)"
                )
            time.sleep(self._delay(attempt, response))
            attempt += 1
            self.retries_made += 1


def _hint(status: int) -> str:
    if status in (401, 403):
        return " (check api_auth / api_headers credentials)"
    if status == 404:
        return " (check api_endpoint)"
    return ""


def _excerpt(response: requests.Response | None, limit: int = 200) -> str:
    if response is None or not response.content:
        return ""
    text = response.text.strip().replace("\n", " ")
    if len(text) > limit:
        text = text[:limit] + "..."
    return mask(f": {text!r}")


def parse_json(response: requests.Response, where: str) -> Any:
    """The JSON body of a response, or a DataError saying what came instead.

    Raises:
        DataError: an HTML page, an empty body, or malformed/truncated JSON.
    """
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    text = response.text
    if not text.strip():
        raise DataError(f"{where}: HTTP {response.status_code} with an empty body, not JSON")
    head = text.lstrip()[:200].lower()
    if "html" in content_type or head.startswith(("<!doctype", "<html")):
        raise DataError(mask(
            f"{where}: expected JSON but got an HTML page ({content_type or 'no content type'}, "
            f"HTTP {response.status_code}){_excerpt(response)}; the API may be down or the "
            "URL wrong"
        ))
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        truncated = exc.msg.startswith("Unterminated") or exc.pos >= len(text.rstrip()) - 1
        what = "truncated" if truncated else "malformed"
        raise DataError(mask(
            f"{where}: {what} JSON ({exc.msg} at character {exc.pos} of {len(text)})"
        )) from None
