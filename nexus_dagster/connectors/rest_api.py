"""REST APIs as sources and targets (``source_type: api`` / ``target_type: api``).

Source: pages are fetched (any style of :mod:`~nexus_dagster.connectors.http.pagination`), the
records found (``records_path`` or auto-detected), flattened and staged as Parquet chunks in a
temporary folder *before* the relation yields a row. So a failure on page 7 loads nothing,
unless ``allow_partial: true`` keeps the pages read so far. The schema is the union of every
page's (types promoted; incompatible ones are a clear error naming the field).

Target: records are sent in requests of ``batch_size`` records (a JSON array, optionally
wrapped as ``{body_key: [...]}``), or one request per record (``api_body: record``; the URL may
name record fields, ``https://api.example.com/items/{id}``). Each request carries an
idempotency key that is the same on every retry, so a retried POST is not applied twice by an
API that honours it.

Params (the connection's, then the spec's ``api_*`` settings, see
:mod:`nexus_dagster.spec.rest_api`): connection ``base_url``, ``headers``, ``params``, ``auth``,
``verify`` (TLS: true, false or a CA bundle path), ``allow_http``.

Example:
    >>> api = ApiConnector({"api_endpoint": "https://api.example.com/v1/users",
    ...                     "api_auth": {"type": "bearer", "token": "..."},
    ...                     "api_pagination": {"type": "page", "page_size": 100,
    ...                                        "page_size_param": "per_page"}})
    >>> relation = api.read(ReadRequest(batch_size=10_000))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import hashlib
import json
import logging
import math
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, urljoin

import pyarrow as pa
import pyarrow.parquet as pq

from nexus_dagster.connectors import formats
from nexus_dagster.connectors.base import Connector, LoadResult, ReadRequest, WriteRequest
from nexus_dagster.connectors.http import records as rec
from nexus_dagster.connectors.http.auth import make_auth
from nexus_dagster.connectors.http.client import HttpClient, parse_json, safe_url
from nexus_dagster.connectors.http.pagination import make_paginator
from nexus_dagster.errors import ConnectorError, DataError, LoadError, NexusError, SpecError
from nexus_dagster.relation import Relation, conform, rebatch
from nexus_dagster.secrets import mask
from nexus_dagster.spec.rest_api import DEFAULT_TARGET_BATCH, https_problem

__all__ = ["ApiConnector"]

log = logging.getLogger(__name__)
_TEMPLATE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")


class ApiConnector(Connector):
    """Source and target for JSON REST APIs."""

    kinds: ClassVar[tuple[str, ...]] = ("api",)
    # the API narrows the request with incremental_param, the runner filters exactly
    supports_incremental: ClassVar[bool] = False
    is_source: ClassVar[bool] = True
    is_target: ClassVar[bool] = True
    write_modes: ClassVar[frozenset[str]] = frozenset({"append"})
    source_requires: ClassVar[tuple[tuple[str, ...], ...]] = (
        ("api_endpoint", "connection", "connection_params"),
    )
    target_requires: ClassVar[tuple[tuple[str, ...], ...]] = (
        ("api_endpoint", "connection", "connection_params"),
    )

    def __init__(self, params: Mapping[str, Any]):
        super().__init__(params)
        self._staging: list[Path] = []
        self._client: HttpClient | None = None

    # ------------------------------------------------------------------ settings
    def _get(self, name: str, default: Any = None) -> Any:
        value = self.params.get(name)
        return default if value is None else value

    def url(self) -> str:
        """The endpoint URL: ``api_endpoint`` (absolute, or relative to ``base_url``).

        Raises:
            SpecError: no URL, or plain http without ``allow_http``.
        """
        base = self.params.get("base_url")
        endpoint = self.params.get("api_endpoint")
        if base and endpoint:
            url = urljoin(str(base).rstrip("/") + "/", str(endpoint).lstrip("/"))
        else:
            url = str(endpoint or base or "")
        if not url:
            raise SpecError("an api source/target needs api_endpoint (or base_url)")
        allow = bool(self._get("allow_http", False))
        problem = https_problem(url, allow)
        if problem:
            raise SpecError(f"api_endpoint: {problem}")
        return url

    def client(self) -> HttpClient:
        """The HTTP client (built once, closed by :meth:`close`)."""
        if self._client is None:
            headers = {**dict(self._get("headers", {})), **dict(self._get("api_headers", {}))}
            self._client = HttpClient(
                headers={str(k): str(v) for k, v in headers.items()},
                auth=make_auth(self._get("api_auth") or self._get("auth")),
                timeout=float(self._get("timeout_seconds", 30.0)),
                max_retries=int(self._get("max_retries", 5)),
                backoff=float(self._get("backoff_seconds", 1.0)),
                requests_per_second=self._get("requests_per_second"),
                verify=self._get("verify", True),
            )
        return self._client

    def describe(self) -> str:
        try:
            return safe_url(self.url())
        except NexusError:
            return "api"

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        for folder in self._staging:
            shutil.rmtree(folder, ignore_errors=True)
        self._staging.clear()

    # ------------------------------------------------------------------ source
    def read(self, request: ReadRequest) -> Relation:
        """Fetch every page now into a Parquet staging folder; return a relation over it.

        Raises:
            RetriableError: the API kept failing (429/5xx/timeouts) past ``max_retries``.
            ConnectorError: a 4xx answer (bad credentials, wrong URL).
            DataError: not JSON, truncated JSON, records missing or of conflicting types.
        """
        url = self.url()
        method = str(self._get("api_method", "GET")).upper()
        params = {**dict(self._get("params", {})), **dict(self._get("api_params", {}))}
        incremental = self._get("incremental_param")
        if incremental and request.cursor is not None and request.cursor.value is not None:
            params[incremental] = _param_value(request.cursor.value)
        options = dict(request.options or {})
        column_types = {
            str(k): formats.parse_type(v) for k, v in (options.get("column_types") or {}).items()
        }
        batch_size = max(1, int(request.batch_size or 50_000))
        folder = Path(tempfile.mkdtemp(prefix="nexus-api-"))
        self._staging.append(folder)
        stats: dict[str, Any] = {"pages": 0, "partial": False}
        chunks: list[tuple[Path, pa.Schema]] = []
        try:
            self._fetch(method, url, params, column_types, batch_size, folder, chunks, stats)
        except NexusError as exc:
            if not (self._get("allow_partial", False) and stats["pages"]):
                raise
            stats["partial"] = True
            stats["partial_error"] = mask(str(exc))
            log.warning(mask(
                f"{safe_url(url)}: extraction stopped after {stats['pages']} page(s) and "
                f"allow_partial is set, so the pages read are loaded: {exc}"
            ))
        schema = self._schema(chunks, request, column_types)
        client = self.client()
        stats.update(requests=client.requests_made, retries=client.retries_made,
                     state={"columns": {f.name: str(f.type) for f in schema}})

        def open_() -> Iterator[pa.RecordBatch]:
            def chunk_batches() -> Iterator[pa.RecordBatch]:
                for path, _ in chunks:
                    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size):
                        yield conform(batch, schema)

            return rebatch(chunk_batches(), batch_size)

        relation = Relation(schema, open_, name=f"api {safe_url(url)}")
        stats.pop("batch_size", None)
        relation.stats.update(stats)
        return relation

    def _fetch(self, method: str, url: str, params: dict[str, Any],
               column_types: dict[str, pa.DataType], batch_size: int, folder: Path,
               chunks: list[tuple[Path, pa.Schema]], stats: dict[str, Any]) -> None:
        client = self.client()
        pager = make_paginator(self._get("api_pagination"))
        buffer: list[dict[str, Any]] = []
        stats["batch_size"] = batch_size

        def flush() -> None:
            if not buffer:
                return
            where = f"{safe_url(url)} (records before page {stats['pages'] + 1})"
            table = rec.to_table(buffer, column_types, where)
            path = folder / f"chunk-{len(chunks):06d}.parquet"
            pq.write_table(table, path)
            chunks.append((path, table.schema))
            buffer.clear()

        try:
            self._pages(client, pager, method, url, params, buffer, flush, stats)
        except NexusError:
            if self._get("allow_partial", False) and stats["pages"]:
                with contextlib.suppress(NexusError):
                    flush()
            raise
        flush()

    def _pages(self, client: HttpClient, pager: Any, method: str, url: str,
               params: dict[str, Any], buffer: list[dict[str, Any]], flush: Any,
               stats: dict[str, Any]) -> None:
        max_pages = self._get("max_pages")
        depth = int(self._get("flatten_depth", 3))
        explode = self._get("explode")
        records_path = self._get("records_path")
        batch_size = stats["batch_size"]
        seen: set[str] = set()
        current: tuple[str, dict[str, Any]] | None = pager.first(url, params)
        while current is not None:
            page_url, page_params = current
            key = safe_url(page_url, page_params) + json.dumps(page_params, default=str)
            if key in seen:
                raise DataError(
                    f"{safe_url(page_url, page_params)}: the API returned the same next page "
                    "twice; pagination would never end (check api_pagination)"
                )
            seen.add(key)
            page_no = stats["pages"] + 1
            where = f"page {page_no} of {safe_url(page_url, page_params)}"
            response = client.request(method, page_url, params=page_params)
            body = parse_json(response, where)
            found = rec.find_records(body, records_path, where)
            buffer.extend(rec.flatten_records(found, depth, explode))
            stats["pages"] = page_no
            if len(buffer) >= batch_size:
                flush()
            if max_pages and page_no >= int(max_pages):
                break
            current = pager.next(current, response, body, len(found))

    def _schema(self, chunks: list[tuple[Path, pa.Schema]], request: ReadRequest,
                column_types: dict[str, pa.DataType]) -> pa.Schema:
        """The union of the chunks' schemas; with no records, the last run's (kept as state)."""
        schemas = [(f"chunk {i + 1}", s) for i, (_, s) in enumerate(chunks)]
        if schemas:
            schema = formats.unify_schemas(schemas)
            return pa.schema(
                [pa.field(f.name, pa.string() if pa.types.is_null(f.type) else f.type)
                 for f in schema]
            )
        kept = (request.state or {}).get("columns") if request.state else None
        if isinstance(kept, Mapping) and kept:
            return pa.schema([(str(n), formats.parse_type(t)) for n, t in kept.items()])
        names = [request.cursor.column] if request.cursor else []
        return pa.schema([(n, column_types.get(n, pa.string())) for n in names])

    # ------------------------------------------------------------------ target
    def write(self, relation: Relation, request: WriteRequest) -> LoadResult:
        """Send the relation's records; see the module docstring.

        API loads cannot be rolled back: on a failed request (after retries) the load stops
        with a LoadError saying how many rows were already sent, unless ``allow_partial``,
        which skips failed requests and reports them in ``extra``.

        Raises:
            LoadError: a request failed for good (and allow_partial is not set).
        """
        if request.write_mode != "append":
            raise LoadError(f"api targets only append (POST/PUT), not {request.write_mode}")
        url = self.url()
        method = str(self._get("api_method", "POST")).upper()
        per_record = self._get("api_body", "array") == "record"
        if _TEMPLATE.search(url) and not per_record:
            raise SpecError(
                f"api_endpoint {safe_url(url)} names record fields; that needs api_body: record"
            )
        size = int(self._get("request_batch_size", DEFAULT_TARGET_BATCH))
        params = {**dict(self._get("params", {})), **dict(self._get("api_params", {}))}
        body_key = self._get("body_key")
        id_header = self._get("idempotency_header", "Idempotency-Key")
        report = {"rows_sent": 0, "rows_failed": 0, "requests_failed": 0, "first_error": None}
        client = self.client()
        index = 0

        def send(target: str, payload: Any, rows: int) -> None:
            nonlocal index
            body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
            headers = {"Content-Type": "application/json"}
            if id_header:
                digest = hashlib.sha256(f"{method} {target} {index}\n{body}".encode()).hexdigest()
                headers[id_header] = digest[:32]
            index += 1
            try:
                client.request(method, target, params=params, data=body.encode(),
                               headers=headers)
            except ConnectorError as exc:
                if not self._get("allow_partial", False):
                    raise LoadError(
                        f"{exc}; {report['rows_sent']} row(s) were sent before this request "
                        "and stay sent (an API load cannot be rolled back; set allow_partial: "
                        "true to skip failed requests and report them)"
                    ) from exc
                report["rows_failed"] += rows
                report["requests_failed"] += 1
                report["first_error"] = report["first_error"] or mask(str(exc))
                return
            report["rows_sent"] += rows

        for batch in rebatch(iter(relation), size):
            records = [_jsonable(r) for r in batch.to_pylist()]
            if per_record:
                for record in records:
                    send(_fill(url, record), record, 1)
            else:
                send(url, {body_key: records} if body_key else records, len(records))
        extra = {
            "rows_sent": report["rows_sent"],
            "rows_failed": report["rows_failed"],
            "requests": client.requests_made,
            "retries": client.retries_made,
        }
        if report["requests_failed"]:
            extra["requests_failed"] = report["requests_failed"]
            extra["first_error"] = report["first_error"]
        return LoadResult(rows_loaded=report["rows_sent"], location=safe_url(url),
                          rows_inserted=None, extra=extra)


# ---------------------------------------------------------------------- helpers
def _param_value(value: Any) -> str:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def _fill(url: str, record: Mapping[str, Any]) -> str:
    def field(match: re.Match[str]) -> str:
        name = match.group(1)
        if record.get(name) is None:
            raise LoadError(f"api_endpoint names {{{name}}}, but a record has no {name!r}")
        return quote(str(record[name]), safe="")

    return _TEMPLATE.sub(field, url)


def _jsonable(value: Any) -> Any:
    """A value JSON can carry: decimals as numbers when exact in a float, else text;
    times as ISO text; bytes as hex; NaN as null."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return None
        as_float = float(value)
        return as_float if decimal.Decimal(repr(as_float)) == value else str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value.hex()
    return value
