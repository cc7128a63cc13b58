"""REST APIs as sources and targets (``source_type: api`` / ``target_type: api``).

Source: pages are fetched (any style of :mod:`~nexus_dagster.connectors.http.pagination`), the
records found (``records_path`` or auto-detected), flattened and staged as Parquet chunks in a
temporary folder *before* the relation yields a row. So a failure on page 7 loads nothing,
unless ``allow_partial: true`` keeps the pages read so far. The schema is the union of every
page's (types promoted; incompatible ones are a clear error naming the field).

Target: records are sent in requests of ``batch_size`` records (a JSON array, optionally
wrapped as ``{body_key: [...]}``), or one request per record (``api_body: record``; the URL may
name record fields, ``https://api.example.com/items/{id}``). Each request carries an
idempotency key that is the same on every retry and re-execution of one run (it is derived from
the run's root run id, the request's position and its body), so a retried POST is not applied
twice by an API that honours it, while a later run sending the same rows gets new keys and is
not dropped as a duplicate.

Params (:class:`ApiParams`: the connection's, then the spec's ``api_*`` settings, see
:mod:`nexus_dagster.spec.api_fields`): connection ``base_url``, ``headers``, ``params``, ``auth``,
``verify`` (TLS: true, false or a CA bundle path), ``allow_http``. ``auth`` / ``api_auth`` and
``api_pagination`` are validated by the settings model of their registered style.

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
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import quote, urljoin

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ConfigDict, Field, SecretStr, ValidationInfo, field_validator, model_validator

from nexus_dagster.connectors.base import (
    Connector,
    ConnectorParams,
    LoadResult,
    ReadRequest,
    WriteRequest,
)
from nexus_dagster.connectors.formats.options import parse_type
from nexus_dagster.connectors.formats.schemas import unify_schemas
from nexus_dagster.connectors.formats.values import json_text
from nexus_dagster.connectors.http import response_records as rec
from nexus_dagster.connectors.http.auth import AUTH_STYLES, make_auth
from nexus_dagster.connectors.http.client import HttpClient, parse_json, safe_url
from nexus_dagster.connectors.http.pagination import PAGINATORS, make_paginator
from nexus_dagster.connectors.http.styles import StyleConfig, register_secret_fields
from nexus_dagster.errors import ConnectorError, DataError, LoadError, NexusError, SpecError
from nexus_dagster.relation import Relation, conform, rebatch
from nexus_dagster.secrets import mask
from nexus_dagster.spec.api_fields import DEFAULT_TARGET_BATCH, https_problem

__all__ = ["ApiConnector", "ApiParams"]

log = logging.getLogger(__name__)
_TEMPLATE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")
_BOOLEAN_TEXT = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


class ApiParams(ConnectorParams):
    """Parameters of an API source or target: a connection's (``base_url``, ``headers``,
    ``params``, ``auth``, ``verify``, ``allow_http``) merged with the spec's ``api_*``
    settings. A null value means the default (the spec passes every API setting), except
    ``idempotency_header: null``, which sends no idempotency header.

    Example:
        >>> ApiParams.model_validate({"base_url": "https://crm.example.com/v2",
        ...                           "auth": {"type": "bearer", "token": "${CRM_TOKEN}"}}).auth
        BearerAuthConfig(type='bearer', token=SecretStr('**********'))
    """

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = Field(None, description="URL the api_endpoint is relative to")
    api_endpoint: str | None = Field(None, description="absolute URL, or a path under base_url")
    api_method: str | None = Field(
        None, description="HTTP method (default GET for sources, POST for targets)"
    )
    headers: dict[str, SecretStr] = Field(
        default_factory=dict, description="headers of the connection (may hold credentials)"
    )
    api_headers: dict[str, SecretStr] = Field(
        default_factory=dict, description="headers of the endpoint (may hold credentials)"
    )
    params: dict[str, Any] = Field(default_factory=dict, description="query parameters")
    api_params: dict[str, Any] = Field(
        default_factory=dict, description="query parameters of the endpoint"
    )
    auth: StyleConfig | None = Field(
        None, description="the connection's auth style: {type: <registered style>, ...}"
    )
    api_auth: StyleConfig | None = Field(
        None, description="the endpoint's auth style (wins over auth)"
    )
    verify: bool | str = Field(True, description="TLS verification: true, false or a CA bundle")
    allow_http: bool = Field(False, description="allow plain http:// (trusted networks only)")
    timeout_seconds: float = Field(30.0, gt=0, description="connect and read timeout")
    max_retries: int = Field(5, ge=0, description="retries of 429/5xx/timeouts")
    backoff_seconds: float = Field(1.0, ge=0, description="base delay between retries")
    requests_per_second: float | None = Field(None, gt=0, description="rate limit")
    allow_partial: bool = Field(
        False, description="load the pages read before a failure / skip failed requests"
    )
    api_pagination: StyleConfig | None = Field(
        None, description="the pagination style: {type: <registered style>, ...}"
    )
    records_path: str | None = Field(None, description="dotted path of the records")
    flatten_depth: int = Field(3, ge=0, description="levels of nested objects made columns")
    explode: str | None = Field(None, description="dotted path of a list giving one row each")
    max_pages: int | None = Field(None, ge=1, description="read at most this many pages")
    incremental_param: str | None = Field(
        None, description="query parameter the kept cursor is sent as"
    )
    api_body: Literal["array", "record"] = Field(
        "array", description="one request per batch (a JSON array) or per record"
    )
    body_key: str | None = Field(None, description="wrap the array as {body_key: [...]}")
    idempotency_header: str | None = Field(
        "Idempotency-Key", description="header carrying each request's idempotency key"
    )
    request_batch_size: int = Field(
        DEFAULT_TARGET_BATCH, ge=1, description="records per request of a target"
    )

    @model_validator(mode="before")
    @classmethod
    def _nulls_are_defaults(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            return {k: v for k, v in data.items() if v is not None or k == "idempotency_header"}
        return data

    @field_validator("headers", "api_headers", mode="before")
    @classmethod
    def _header_text(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(k): v if isinstance(v, SecretStr) else str(v) for k, v in value.items()}
        return value

    @field_validator("verify", mode="before")
    @classmethod
    def _verify_flag(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in _BOOLEAN_TEXT:
            return _BOOLEAN_TEXT[value.strip().lower()]
        return value

    @field_validator("auth", "api_auth", "api_pagination", mode="before")
    @classmethod
    def _registered_style(cls, value: Any, info: ValidationInfo) -> Any:
        """The block validated by the settings model of its registered style."""
        registry = PAGINATORS if info.field_name == "api_pagination" else AUTH_STYLES
        config, problems = registry.check(value, str(info.field_name))
        if config is None:
            raise ValueError("; ".join(f"{field}: {message} (fix: {fix})"
                                       for field, message, fix in problems))
        return config


class ApiConnector(Connector):
    """Source and target for JSON REST APIs."""

    kinds: ClassVar[tuple[str, ...]] = ("api",)
    # the API narrows the request with incremental_param, the runner filters exactly
    supports_incremental: ClassVar[bool] = False
    is_source: ClassVar[bool] = True
    is_target: ClassVar[bool] = True
    #: what a POST/PUT endpoint received is in general not what a GET of it returns
    supports_read_back: ClassVar[bool] = False
    write_modes: ClassVar[frozenset[str]] = frozenset({"append"})
    source_requires: ClassVar[tuple[tuple[str, ...], ...]] = (
        ("api_endpoint", "connection", "connection_params"),
    )
    target_requires: ClassVar[tuple[tuple[str, ...], ...]] = (
        ("api_endpoint", "connection", "connection_params"),
    )
    Params: ClassVar[type[ConnectorParams]] = ApiParams
    config: ApiParams

    def __init__(self, params: Mapping[str, Any]):
        super().__init__(params)
        register_secret_fields(self.config)  # the auth's secrets, masked from now on
        self._staging: list[Path] = []
        self._client: HttpClient | None = None

    # ------------------------------------------------------------------ settings
    def url(self) -> str:
        """The endpoint URL: ``api_endpoint`` (absolute, or relative to ``base_url``).

        Raises:
            SpecError: no URL, or plain http without ``allow_http``.
        """
        base, endpoint = self.config.base_url, self.config.api_endpoint
        if base and endpoint:
            url = urljoin(base.rstrip("/") + "/", endpoint.lstrip("/"))
        else:
            url = endpoint or base or ""
        if not url:
            raise SpecError("an api source/target needs api_endpoint (or base_url)")
        problem = https_problem(url, self.config.allow_http)
        if problem:
            raise SpecError(f"api_endpoint: {problem}")
        return url

    def client(self) -> HttpClient:
        """The HTTP client (built once, closed by :meth:`close`)."""
        if self._client is None:
            config = self.config
            headers = {**config.headers, **config.api_headers}
            self._client = HttpClient(
                headers={k: v.get_secret_value() for k, v in headers.items()},
                auth=make_auth(config.api_auth or config.auth),
                timeout=config.timeout_seconds,
                max_retries=config.max_retries,
                backoff=config.backoff_seconds,
                requests_per_second=config.requests_per_second,
                verify=config.verify,
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
        method = (self.config.api_method or "GET").upper()
        params = {**self.config.params, **self.config.api_params}
        incremental = self.config.incremental_param
        if incremental and request.cursor is not None and request.cursor.value is not None:
            params[incremental] = _param_value(request.cursor.value)
        options = dict(request.options or {})
        column_types = {
            str(k): parse_type(v) for k, v in (options.get("column_types") or {}).items()
        }
        batch_size = max(1, int(request.batch_size or 50_000))
        folder = Path(tempfile.mkdtemp(prefix="nexus-api-"))
        self._staging.append(folder)
        stats: dict[str, Any] = {"pages": 0, "partial": False}
        chunks: list[tuple[Path, pa.Schema]] = []
        try:
            self._fetch(method, url, params, column_types, batch_size, folder, chunks, stats)
        except NexusError as exc:
            if not (self.config.allow_partial and stats["pages"]):
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
        pager = make_paginator(self.config.api_pagination)
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
            if self.config.allow_partial and stats["pages"]:
                with contextlib.suppress(NexusError):
                    flush()
            raise
        flush()

    def _pages(self, client: HttpClient, pager: Any, method: str, url: str,
               params: dict[str, Any], buffer: list[dict[str, Any]], flush: Any,
               stats: dict[str, Any]) -> None:
        max_pages = self.config.max_pages
        depth = self.config.flatten_depth
        explode = self.config.explode
        records_path = self.config.records_path
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
            schema = unify_schemas(schemas)
            return pa.schema(
                [pa.field(f.name, pa.string() if pa.types.is_null(f.type) else f.type)
                 for f in schema]
            )
        kept = (request.state or {}).get("columns") if request.state else None
        if isinstance(kept, Mapping) and kept:
            return pa.schema([(str(n), parse_type(t)) for n, t in kept.items()])
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
        method = (self.config.api_method or "POST").upper()
        per_record = self.config.api_body == "record"
        if _TEMPLATE.search(url) and not per_record:
            raise SpecError(
                f"api_endpoint {safe_url(url)} names record fields; that needs api_body: record"
            )
        size = self.config.request_batch_size
        params = {**self.config.params, **self.config.api_params}
        body_key = self.config.body_key
        id_header = self.config.idempotency_header
        # keys are stable across retries of this run (and re-executions of it), new for any
        # other run: a later load of the same rows is not dropped as a duplicate
        scope = request.idempotency_scope or uuid.uuid4().hex
        report = {"rows_sent": 0, "rows_failed": 0, "requests_failed": 0, "first_error": None}
        client = self.client()
        index = 0

        def send(target: str, payload: Any, rows: int) -> None:
            nonlocal index
            body = json_text(payload, separators=(",", ":"))
            headers = {"Content-Type": "application/json"}
            if id_header:
                digest = hashlib.sha256(
                    f"{scope} {method} {target} {index}\n{body}".encode()).hexdigest()
                headers[id_header] = digest[:32]
            index += 1
            try:
                client.request(method, target, params=params, data=body.encode(),
                               headers=headers)
            except ConnectorError as exc:
                if not self.config.allow_partial:
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
    """A value :func:`json_text` can carry: decimals as they are (written as exact numbers);
    times as ISO text; bytes as hex; NaN as null."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, decimal.Decimal):  # json_text writes it as an exact number
        return value if value.is_finite() else None
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value.hex()
    return value
