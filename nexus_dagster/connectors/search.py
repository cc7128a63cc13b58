"""Elasticsearch and OpenSearch behind one connector.

The two clients differ in a few calls only (point-in-time, bulk helpers, exceptions); a small
engine class per client hides them (:class:`_OpenSearchEngine`, :class:`_ElasticsearchEngine`),
the rest is shared. The engine is chosen by ``engine`` in the connection params, else by the
connection ``type`` (``opensearch`` or ``elasticsearch``); ``source_type: opensearch`` picks
OpenSearch too.

Source: an index (``table``) and a query DSL (``query`` as JSON, or ``options.query``), paged
with ``search_after`` over a point-in-time when a sort is known to be unique (Elasticsearch's
``_shard_doc``, or ``options.sort`` given by the spec), else with the scroll API. Hits become
columns by the rule of :mod:`nexus_dagster.connectors.documents` plus ``_id``. An incremental
read adds a ``range`` filter on the cursor column.

Target: the bulk API, ``_id`` from ``options.id_column`` or ``key_columns`` (joined by ``:``),
else from an ``_id`` column (a search -> search copy keeps its ids), else generated; decimals
as exact JSON numbers.
Every failed document is reported (``LoadResult.extra["errors"]``); when more than
``options.max_errors`` (default 0) failed, the load raises :class:`LoadError` listing them.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Literal

import pyarrow as pa
from pydantic import AliasChoices, ConfigDict, Field, SecretStr, field_validator

from nexus_dagster import secrets
from nexus_dagster.connectors import documents
from nexus_dagster.connectors.base import (
    Connector,
    ConnectorParams,
    Cursor,
    LoadResult,
    ReadRequest,
    WriteRequest,
)
from nexus_dagster.connectors.formats.values import json_text
from nexus_dagster.errors import ConnectorError, LoadError, NexusError, RetriableError, SpecError
from nexus_dagster.relation import Relation

ENGINES = ("opensearch", "elasticsearch")
KEEP_ALIVE = "2m"


class SearchParams(ConnectorParams):
    """Connection parameters of Elasticsearch / OpenSearch (Nexus ``connection_params``);
    unknown keys are errors.

    Example:
        >>> SearchParams.model_validate({"type": "opensearch", "hosts": "es1,es2",
        ...                              "api_key": "k3y"}).hosts
        ['es1', 'es2']
    """

    model_config = ConfigDict(extra="forbid")

    engine: Literal["opensearch", "elasticsearch"] | None = Field(
        None, description="the client; default from the connection type"
    )
    url: SecretStr | None = Field(
        None, description="http(s)://host:port of one node (may hold credentials)"
    )
    host: str = Field("127.0.0.1", description="node host")
    hosts: list[str] | None = Field(
        None, description="several nodes: host names or URLs, a list or 'h1,h2'"
    )
    port: int = Field(9200, ge=1, le=65535, description="node port (for host names)")
    index: str | None = Field(None, description="default index (else the endpoint's table)")
    query: str | dict[str, Any] | None = Field(None, description="default query DSL")
    username: str | None = Field(
        None, validation_alias=AliasChoices("username", "user"), description="user (alias: user)"
    )
    password: SecretStr | None = Field(None, description="password")
    api_key: SecretStr | None = Field(None, description="API key, instead of user and password")
    use_ssl: bool = Field(False, description="https for host names")
    verify_certs: bool = Field(True, description="verify the server certificate")
    ca_certs: str | None = Field(None, description="CA bundle path")
    timeout: float = Field(30.0, gt=0, description="request timeout, seconds")

    @field_validator("hosts", mode="before")
    @classmethod
    def _host_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [h.strip() for h in value.split(",") if h.strip()]
        return value


class _Engine:
    """The calls that differ between the two clients."""

    name = ""

    def __init__(self, client: Any):
        self.client = client

    def open_pit(self, index: str) -> str: ...
    def close_pit(self, pit: str) -> None: ...
    def default_sort(self) -> list[Any] | None: ...
    def bulk(self, actions: Any, chunk: int) -> Iterator[tuple[bool, dict[str, Any]]]: ...

    def search(self, body: dict[str, Any], index: str | None = None, **params: Any) -> dict:
        return self.client.search(index=index, body=body, **params)


class _OpenSearchEngine(_Engine):
    name = "opensearch"

    def open_pit(self, index: str) -> str:
        return self.client.create_pit(index=index, keep_alive=KEEP_ALIVE)["pit_id"]

    def close_pit(self, pit: str) -> None:
        self.client.delete_pit(body={"pit_id": [pit]})

    def default_sort(self) -> list[Any] | None:
        return None  # OpenSearch 2.x has no _shard_doc: scroll unless the spec gives a sort

    def bulk(self, actions: Any, chunk: int) -> Iterator[tuple[bool, dict[str, Any]]]:
        from opensearchpy import helpers

        return helpers.streaming_bulk(self.client, actions, chunk_size=chunk,
                                      raise_on_error=False, raise_on_exception=False)


class _ElasticsearchEngine(_Engine):
    name = "elasticsearch"

    def open_pit(self, index: str) -> str:
        return self.client.open_point_in_time(index=index, keep_alive=KEEP_ALIVE)["id"]

    def close_pit(self, pit: str) -> None:
        self.client.close_point_in_time(id=pit)

    def default_sort(self) -> list[Any] | None:
        return [{"_shard_doc": "asc"}]

    def search(self, body: dict[str, Any], index: str | None = None, **params: Any) -> dict:
        return self.client.search(index=index, **body, **params).body

    def bulk(self, actions: Any, chunk: int) -> Iterator[tuple[bool, dict[str, Any]]]:
        from elasticsearch import helpers

        return helpers.streaming_bulk(self.client, actions, chunk_size=chunk,
                                      raise_on_error=False, raise_on_exception=False)


class SearchConnector(Connector):
    """Source and target for Elasticsearch and OpenSearch indices.

    Params (``connection_params``, :class:`SearchParams`): ``host`` (or ``hosts``/``url``),
    ``port`` (9200),
    ``engine`` (opensearch | elasticsearch; default from ``type``), ``index`` (default index),
    ``username``/``password`` or ``api_key``, ``use_ssl``, ``verify_certs`` (default true),
    ``ca_certs``, ``timeout`` (seconds, default 30).

    Source options: ``query`` (dict), ``sort`` (a unique sort: search_after + PIT),
    ``nested`` (flatten|json), ``sample_size``, ``column_types``, ``include_id`` (default true).
    Target options: ``id_column``, ``refresh`` (true | false | wait_for; default true),
    ``max_errors`` (default 0), ``mappings`` (used when the index is created).

    Example:
        >>> search = SearchConnector({"type": "opensearch", "host": "127.0.0.1", "port": 9200})
        >>> rel = search.read(ReadRequest(table="orders", query='{"term": {"status": "paid"}}'))
        >>> search.write(rel, WriteRequest(table="orders_copy", write_mode="upsert",
        ...                                key_columns=("order_id",)))  # doctest: +SKIP
    """

    kinds: ClassVar[tuple[str, ...]] = ("elasticsearch", "opensearch")
    #: the client used when the connection names neither ``engine`` nor ``type``
    default_engine: ClassVar[str] = "elasticsearch"
    supports_incremental: ClassVar[bool] = True
    write_modes: ClassVar[frozenset[str]] = frozenset({"append", "upsert"})
    is_source: ClassVar[bool] = True
    is_target: ClassVar[bool] = True
    Params: ClassVar[type[ConnectorParams]] = SearchParams
    config: SearchParams

    def __init__(self, params: Mapping[str, Any]):
        super().__init__(params)
        engine = self.config.engine or self.config.type or self.default_engine
        if engine not in ENGINES:
            raise SpecError(f"search connection_params.engine must be one of {ENGINES}, "
                            f"not {engine!r}")
        self.engine_name = str(engine)
        for secret in (self.config.password, self.config.api_key):
            if secret is not None and secret.get_secret_value():
                secrets.register_secret(secret.get_secret_value())
        for host in self._hosts():  # the password in http://user:password@host:9200
            if "@" in host:
                secrets.register_secret(host.split("://", 1)[-1].split("@", 1)[0].partition(":")[2])
        self._engine: _Engine | None = None

    @classmethod
    def asset_kinds(
        cls, type_name: str, params: Mapping[str, Any], file_format: str | None = None
    ) -> set[str]:
        """``opensearch`` or ``elasticsearch``: the client the connection names (``engine``,
        else its ``type``), else the endpoint's type."""
        engine = params.get("engine") or params.get("type") or cls.default_engine
        return {str(engine)} if engine in ENGINES else {type_name}

    # --- connection ------------------------------------------------------------------------
    def _hosts(self) -> list[str]:
        config = self.config
        if config.url is not None:
            return [config.url.get_secret_value()]
        scheme = "https" if config.use_ssl else "http"
        return [h if "://" in h else f"{scheme}://{h}:{config.port}"
                for h in config.hosts or [config.host]]

    def describe(self) -> str:
        """Engine and hosts, with no credentials."""
        hosts = [_without_credentials(h) for h in self._hosts()]
        return secrets.mask(f"{self.engine_name} {','.join(hosts)}")

    @property
    def engine(self) -> _Engine:
        """The client wrapped in its engine, created on first use."""
        if self._engine is None:
            config = self.config
            password = config.password.get_secret_value() if config.password else ""
            api_key = config.api_key.get_secret_value() if config.api_key else ""
            kwargs: dict[str, Any] = {"verify_certs": config.verify_certs}
            if config.ca_certs:
                kwargs["ca_certs"] = config.ca_certs
            if self.engine_name == "opensearch":
                from opensearchpy import OpenSearch

                if config.username:
                    kwargs["http_auth"] = (config.username, password)
                if api_key:
                    kwargs["headers"] = {"Authorization": f"ApiKey {api_key}"}
                client = OpenSearch(self._hosts(), timeout=config.timeout, **kwargs)
                self._engine = _OpenSearchEngine(client)
            else:
                from elasticsearch import Elasticsearch

                if config.username:
                    kwargs["basic_auth"] = (config.username, password)
                if api_key:
                    kwargs["api_key"] = api_key
                client = Elasticsearch(self._hosts(), request_timeout=config.timeout, **kwargs)
                self._engine = _ElasticsearchEngine(client)
        return self._engine

    def close(self) -> None:
        """Close the client's connections."""
        if self._engine is not None:
            self._engine.client.close()
            self._engine = None

    def test_connection(self) -> bool:
        """True when the cluster answers ``info`` with these credentials; never raises."""
        try:
            self.engine.client.info()
            return True
        except Exception:
            return False

    def _fail(self, action: str, exc: Exception, cls: type[ConnectorError]) -> ConnectorError:
        detail = str(exc)
        if len(detail) > 500:
            detail = detail[:500] + "..."
        text = secrets.mask(f"{action} {self.describe()} failed: {type(exc).__name__}: {detail}")
        retriable = "ConnectionError" in type(exc).__name__ or "Timeout" in type(exc).__name__
        return (RetriableError if retriable and cls is not LoadError else cls)(text)

    # --- read -------------------------------------------------------------------------------
    def read(self, request: ReadRequest) -> Relation:
        """A relation over the hits of the query (re-iterable: each pass searches again).

        Raises:
            SpecError: no index, or a query that is not a JSON object.
            ConnectorError: the cluster cannot be reached or refuses the query.
        """
        options = dict(request.options)
        index = request.table or options.get("index") or self.config.index
        if not index:
            raise SpecError("a search source needs 'table' (or connection_params.index)")
        query = _query(request.query or options.get("query") or self.config.query)
        if request.cursor is not None:
            query = {"bool": {"filter": [query, _range(request.cursor)]}}
        nested = options.get("nested", "flatten")
        include_id = bool(options.get("include_id", True))
        sample_size = int(options.get("sample_size", min(request.batch_size, 1000)))
        size = min(request.batch_size, 10_000)
        sort = options.get("sort")
        where = f"search source {index!r}"

        def flat(hit: Mapping[str, Any]) -> dict[str, Any]:
            row = {"_id": hit["_id"]} if include_id else {}
            row.update(documents.flatten(hit.get("_source") or {}, nested))
            return row

        try:
            found = self.engine.search({"query": query, "size": sample_size}, index=index)
        except Exception as exc:
            raise self._fail(f"searching index {index!r} in", exc, ConnectorError) from None
        sample = [flat(h) for h in found["hits"]["hits"]]
        types = {**self._date_fields(index), **dict(options.get("column_types") or {})}
        schema = documents.infer_schema(sample, types,
                                        first=("_id",) if include_id else ())

        def open_() -> Iterator[pa.RecordBatch]:
            pages = self._pages(index, query, size, sort)
            rows: Iterator[dict[str, Any]] = (flat(h) for page in pages for h in page)
            try:
                yield from documents.batches(
                    rows, schema, request.batch_size, where, nested="flatten"
                )
            except NexusError:
                raise
            except Exception as exc:
                raise self._fail(f"reading index {index!r} in", exc, ConnectorError) from None

        return Relation(schema, open_, name=f"{self.engine_name} {index}")

    def _date_fields(self, index: str) -> dict[str, str]:
        """Columns the index maps as ``date``: read as UTC timestamps, not text."""
        try:
            mapping = self.engine.client.indices.get_mapping(index=index)
        except Exception:
            return {}
        mapping = getattr(mapping, "body", mapping)
        found: dict[str, str] = {}

        def walk(prefix: str, properties: Mapping[str, Any]) -> None:
            for name, spec in properties.items():
                if "properties" in spec:
                    walk(f"{prefix}{name}.", spec["properties"])
                elif spec.get("type") in ("date", "date_nanos"):
                    found[f"{prefix}{name}"] = "timestamp[us, tz=UTC]"

        for entry in mapping.values():
            walk("", entry.get("mappings", {}).get("properties", {}))
        return found

    def _pages(
        self, index: str, query: dict[str, Any], size: int, sort: list[Any] | None
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of hits: search_after over a point-in-time, else scroll."""
        engine = self.engine
        sort = sort or engine.default_sort()
        if sort:
            pit = engine.open_pit(index)
            try:
                after = None
                while True:
                    body: dict[str, Any] = {
                        "query": query, "size": size, "sort": sort,
                        "pit": {"id": pit, "keep_alive": KEEP_ALIVE},
                    }
                    if after is not None:
                        body["search_after"] = after
                    hits = engine.search(body)["hits"]["hits"]
                    if not hits:
                        return
                    yield hits
                    after = hits[-1]["sort"]
            finally:
                # as for the scroll below: a read left half-way is closed by the garbage
                # collector, maybe after close() (the client is gone), and the PIT expires anyway
                with contextlib.suppress(Exception):
                    engine.close_pit(pit)
        client = engine.client
        page = engine.search({"query": query, "size": size, "sort": ["_doc"]}, index=index,
                             scroll=KEEP_ALIVE)
        scroll_id = page.get("_scroll_id")
        try:
            while page["hits"]["hits"]:
                yield page["hits"]["hits"]
                page = client.scroll(scroll_id=scroll_id, scroll=KEEP_ALIVE)
                page = getattr(page, "body", page)
                scroll_id = page.get("_scroll_id", scroll_id)
        finally:
            if scroll_id:
                with contextlib.suppress(Exception):  # it expires with its keep-alive anyway
                    client.clear_scroll(scroll_id=scroll_id)

    # --- write ------------------------------------------------------------------------------
    def write(self, relation: Relation, request: WriteRequest) -> LoadResult:
        """Bulk-index the relation into ``request.table``; every failed document is reported.

        Raises:
            SpecError: no index, an unknown write mode or id column.
            LoadError: more documents failed than ``options.max_errors`` allows, or the
                cluster refused the load.
        """
        options = dict(request.options)
        mode = request.write_mode
        if mode not in self.write_modes:
            raise SpecError(
                f"search write_mode {mode!r}; use one of {sorted(self.write_modes)} "
                "(overwrite is not offered: index into a new index and switch an alias instead)"
            )
        index = request.table or self.config.index
        if not index:
            raise SpecError("a search target needs 'table' (the index name)")
        if getattr(request, "replace_range", None) and mode != "upsert":
            raise SpecError("a partitioned run into a search index cannot replace its window; "
                            "use write_mode: upsert with key_columns")
        id_columns = [options["id_column"]] if options.get("id_column") else list(
            request.key_columns
        )
        missing = [c for c in id_columns if c not in relation.schema.names]
        if missing and relation.schema.names not in ([], ["_id"]):  # empty reads lack columns
            raise SpecError(f"id column(s) {missing} are not in the data loaded into {index!r}; "
                            f"data columns: {relation.schema.names}")
        max_errors = int(options.get("max_errors", 0))
        refresh = options.get("refresh", True)
        errors: list[dict[str, Any]] = []
        counts = {"created": 0, "updated": 0}
        failed = 0

        def actions() -> Iterator[dict[str, Any]]:
            for batch in relation:
                for row in batch.to_pylist():
                    doc_id = row.pop("_id", None)  # a hit's _id (search -> search) is metadata
                    if id_columns:
                        doc_id = ":".join(str(row[c]) for c in id_columns)
                    # _source as JSON text: the clients pass text through, so decimals stay
                    # exact numbers (their serializers would round them through float)
                    source = json_text(documents.unflatten(_jsonable(row)), separators=(",", ":"))
                    action: dict[str, Any] = {"_index": index, "_op_type": "index",
                                              "_source": source}
                    if doc_id is not None:
                        action["_id"] = str(doc_id)
                    yield action

        client = self.engine.client
        try:
            if options.get("mappings") and not client.indices.exists(index=index):
                client.indices.create(index=index, body={"mappings": options["mappings"]})
            for ok, item in self.engine.bulk(actions(), min(request.batch_size, 5000)):
                result = next(iter(item.values()))
                if ok:
                    counts["created" if result.get("result") == "created" else "updated"] += 1
                else:
                    failed += 1
                    if len(errors) < 20:
                        errors.append({"_id": result.get("_id"), "status": result.get("status"),
                                       "error": _short(result.get("error"))})
            if refresh:
                client.indices.refresh(index=index)
        except NexusError:
            raise
        except Exception as exc:
            raise self._fail(f"bulk indexing into {index!r} in", exc, LoadError) from None
        loaded = counts["created"] + counts["updated"]
        if failed > max_errors:
            listed = "; ".join(f"_id={e['_id']}: {e['error']}" for e in errors[:5])
            raise LoadError(secrets.mask(
                f"{failed} of {failed + loaded} documents failed to index into {index!r} "
                f"({self.describe()}); first errors: {listed}. {loaded} documents were "
                f"indexed (bulk indexing is not transactional; raise options.max_errors to "
                "accept failures)"
            ))
        return LoadResult(
            rows_loaded=loaded,
            location=f"{self.describe()} {index}",
            rows_inserted=counts["created"],
            rows_updated=counts["updated"],
            extra={"write_mode": mode, "failed": failed, "errors": errors},
        )


def _without_credentials(url: str) -> str:
    """``scheme://host:port`` of a node URL, without ``user:password@``."""
    scheme, _, rest = url.rpartition("://")
    return f"{scheme}://{rest.rsplit('@', 1)[-1]}" if scheme else rest.rsplit("@", 1)[-1]


def _query(value: Any) -> dict[str, Any]:
    if value is None or value == "":
        return {"match_all": {}}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise SpecError(f"search query must be a JSON query DSL object: {exc}") from None
    if not isinstance(value, Mapping):
        raise SpecError(f"search query must be a JSON object, not {type(value).__name__}")
    value = dict(value)
    return value.get("query", value) if set(value) == {"query"} else value


def _range(cursor: Cursor) -> dict[str, Any]:
    bounds = {"gte" if cursor.inclusive else "gt": _json_value(cursor.value)}
    upper = getattr(cursor, "upper", None)  # a partition window's end (exclusive)
    if upper is not None:
        bounds["lt"] = _json_value(upper)
    return {"range": {cursor.column: bounds}}


def _json_value(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value if isinstance(value, int | float | str) else str(value)


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    """Dates and times as ISO text, bytes as hex (decimals stay: :func:`json_text` writes them
    as exact numbers)."""
    import datetime as dt

    for key, value in row.items():
        if isinstance(value, dt.date | dt.time):
            row[key] = value.isoformat()
        elif isinstance(value, bytes):
            row[key] = value.hex()
    return row


def _short(error: Any) -> str:
    if isinstance(error, Mapping):
        text = f"{error.get('type')}: {error.get('reason')}"
    else:
        text = str(error)
    return text[:300]


class OpenSearchConnector(SearchConnector):
    """``source_type``/``target_type: opensearch``: the search connector on opensearch-py."""

    kinds: ClassVar[tuple[str, ...]] = ("opensearch",)
    default_engine: ClassVar[str] = "opensearch"
