"""Redis: keys by pattern (SCAN, never KEYS) and streams as a source; hashes or strings as a target.

A source walks the keys matching a pattern with ``SCAN`` and turns each into rows: a string or
hash is one row, a list/set/sorted set one row per member, a stream one row per entry. Streams
are read with ``XRANGE`` after the last entry id of the previous committed run, which the
source reports in ``relation.stats["state"]`` and Dagster hands back as ``ReadRequest.state``.
A target writes one hash (or JSON string) per row under a key made from its columns, with an
optional TTL, in pipelined ``MULTI``/``EXEC`` chunks.
"""

from __future__ import annotations

import decimal
import itertools
import json
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

import pyarrow as pa
from pydantic import ConfigDict, Field, SecretStr

from nexus_dagster import secrets
from nexus_dagster.connectors.base import (
    Connector,
    ConnectorParams,
    LoadResult,
    ReadRequest,
    WriteRequest,
)
from nexus_dagster.connectors.formats.values import json_rows, json_text
from nexus_dagster.connectors.message_records import (
    RecordSchema,
    column_types,
    columns_from_state,
    columns_state,
    flatten_value,
)
from nexus_dagster.errors import ConnectorError, DataError, LoadError, SpecError
from nexus_dagster.relation import Relation

DATA_TYPES = ("auto", "string", "hash", "list", "set", "zset", "stream")
SOURCE_OPTIONS = frozenset(
    {"key_pattern", "data_type", "value_format", "scan_count", "column_types"}
)
TARGET_OPTIONS = frozenset({"key_template", "data_type", "ttl_seconds", "pipeline_size"})
#: connection params handed to redis.Redis (when given)
CLIENT_PARAMS = (
    "host", "port", "db", "username", "password", "ssl", "ssl_ca_certs", "ssl_certfile",
    "ssl_keyfile", "ssl_cert_reqs", "ssl_check_hostname", "client_name",
)
KEY = pa.field("_key", pa.string())
#: columns each data type adds after ``_key``
TYPE_COLUMNS = {
    "list": [pa.field("_index", pa.int64())],
    "stream": [pa.field("_id", pa.string())],
    "zset": [pa.field("score", pa.float64())],
}


class RedisParams(ConnectorParams):
    """Connection parameters of Redis (Nexus ``connection_params``); unknown keys are errors.

    Example:
        >>> RedisParams.model_validate({"host": "cache", "port": "6380", "password": "s3cret"}).port
        6380
    """

    model_config = ConfigDict(extra="forbid")

    url: SecretStr | None = Field(
        None, description="redis:// or rediss:// URL, instead of host/port/db (may hold a password)"
    )
    host: str = Field("localhost", description="server host")
    port: int = Field(6379, ge=1, le=65535, description="server port")
    db: int = Field(0, ge=0, description="database number")
    username: str | None = Field(None, description="ACL user")
    password: SecretStr | None = Field(None, description="password")
    ssl: bool = Field(False, description="connect with TLS")
    ssl_ca_certs: str | None = Field(None, description="CA bundle path")
    ssl_certfile: str | None = Field(None, description="client certificate path")
    ssl_keyfile: str | None = Field(None, description="client key path")
    ssl_cert_reqs: str | None = Field(None, description="required | optional | none")
    ssl_check_hostname: bool | None = Field(None, description="verify the server host name")
    client_name: str | None = Field(None, description="name shown by CLIENT LIST")
    timeout: float = Field(10.0, gt=0, description="socket and connect timeout, seconds")
    retries: int = Field(2, ge=0, description="retries of transient errors, with backoff")


@dataclass(frozen=True)
class SourceOptions:
    """Validated ``options`` of a Redis source."""

    key_pattern: str
    data_type: str = "auto"
    value_format: str = "raw"
    scan_count: int = 1000

    @classmethod
    def parse(cls, options: Mapping[str, Any], table: str | None) -> SourceOptions:
        """Raises SpecError naming the option and the fix."""
        _unknown(options, SOURCE_OPTIONS, "source")
        pattern = options.get("key_pattern") or table
        if not pattern:
            raise SpecError(
                "a redis source needs options.key_pattern (e.g. 'user:*'; or table: <pattern>)"
            )
        data_type = options.get("data_type", "auto")
        if data_type not in DATA_TYPES:
            raise SpecError(
                f"options.data_type {data_type!r} is not a Redis type; use one of "
                f"{', '.join(DATA_TYPES)}"
            )
        value_format = options.get("value_format", "raw")
        if value_format not in ("raw", "json"):
            raise SpecError("options.value_format must be raw or json (objects become columns)")
        count = options.get("scan_count", 1000)
        if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
            raise SpecError(f"options.scan_count must be a positive integer, not {count!r}")
        column_types(options)
        return cls(str(pattern), data_type, value_format, count)


@dataclass(frozen=True)
class TargetOptions:
    """Validated ``options`` of a Redis target."""

    key_template: str
    data_type: str = "hash"
    ttl_seconds: int | None = None
    pipeline_size: int = 1000

    @classmethod
    def parse(
        cls, options: Mapping[str, Any], table: str | None, key_columns: tuple[str, ...]
    ) -> TargetOptions:
        """Raises SpecError naming the option and the fix."""
        _unknown(options, TARGET_OPTIONS, "target")
        template = options.get("key_template")
        if not template:
            if not key_columns:
                raise SpecError(
                    "a redis target needs options.key_template (e.g. 'user:{id}') or "
                    "key_columns (keys are <table>:<key values>)"
                )
            prefix = f"{table}:" if table else ""
            template = prefix + ":".join(f"{{{c}}}" for c in key_columns)
        fields = template_fields(str(template))
        if not fields:
            raise SpecError(
                f"options.key_template {template!r} names no column; use e.g. 'user:{{id}}'"
            )
        data_type = options.get("data_type", "hash")
        if data_type not in ("hash", "string"):
            raise SpecError("options.data_type of a redis target must be hash or string (JSON)")
        ttl = options.get("ttl_seconds")
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0):
            raise SpecError(f"options.ttl_seconds must be a positive integer, not {ttl!r}")
        size = options.get("pipeline_size", 1000)
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise SpecError(f"options.pipeline_size must be a positive integer, not {size!r}")
        return cls(str(template), data_type, ttl, size)


def _unknown(options: Mapping[str, Any], known: frozenset[str], role: str) -> None:
    unknown = sorted(set(options) - known)
    if unknown:
        raise SpecError(
            f"options.{unknown[0]} is not a Redis {role} option; known: {', '.join(sorted(known))}"
        )


def template_fields(template: str) -> list[str]:
    """Column names a key template uses; only plain ``{column}`` fields are allowed.

    Raises:
        SpecError: attribute/index access, conversions or format specs in a field.
    """
    names = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise SpecError(f"options.key_template {template!r}: {exc}") from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name or spec or conversion or any(c in name for c in ".[]"):
            raise SpecError(
                f"options.key_template {template!r}: use plain column names in braces, "
                "e.g. 'order:{customer_id}:{id}'"
            )
        names.append(name)
    return names


class RedisConnector(Connector):
    """Source and target for Redis.

    Params (Nexus ``connection_params``, :class:`RedisParams`): ``host`` (localhost), ``port``
    (6379), ``db`` (0),
    ``password``, ``username`` (ACL user), ``ssl`` (true for TLS), ``ssl_ca_certs``,
    ``ssl_certfile``, ``ssl_keyfile``, ``ssl_cert_reqs``, ``ssl_check_hostname``, ``timeout``
    (seconds, default 10), ``retries`` (2, with backoff), or a ``url`` (``redis://`` / ``rediss://``).

    Source options: ``key_pattern`` (or ``table``), ``data_type`` (auto | string | hash | list |
    set | zset | stream), ``value_format`` (raw | json: JSON objects in strings, lists and sets
    become columns), ``scan_count``, ``column_types`` (hash fields and strings arrive as text:
    ``{age: int64}`` types them). Columns: ``_key``; lists add ``_index``, streams ``_id``,
    sorted sets ``score``; values are in ``value`` unless they are hashes, stream entries or
    JSON objects.

    Target options: ``key_template`` (``"user:{id}"``; default ``<table>:<key_columns>``),
    ``data_type`` (hash | string, a JSON object per row), ``ttl_seconds``, ``pipeline_size``.
    Each key is replaced by its row (``DEL`` + ``HSET``/``SET`` + ``EXPIRE`` in one
    ``MULTI``/``EXEC`` per pipeline chunk).

    Example:
        >>> r = RedisConnector({"host": "127.0.0.1", "port": 6379, "password": "s3cret"})
        >>> users = r.read(ReadRequest(options={"key_pattern": "user:*",
        ...                                     "data_type": "hash"}))  # doctest: +SKIP
        >>> r.write(users, WriteRequest(write_mode="upsert", key_columns=("id",),
        ...         options={"key_template": "copy:{id}", "ttl_seconds": 3600}))  # doctest: +SKIP
    """

    kinds: ClassVar[tuple[str, ...]] = ("redis",)
    write_modes: ClassVar[frozenset[str]] = frozenset({"append", "upsert"})
    is_source: ClassVar[bool] = True
    is_target: ClassVar[bool] = True
    Params: ClassVar[type[ConnectorParams]] = RedisParams
    config: RedisParams

    def __init__(self, params: Mapping[str, Any]):
        super().__init__(params)
        for secret in (self.config.password, self.config.url):
            if secret is not None:
                secrets.register_secret(secret.get_secret_value())
        if self.config.url is not None:
            url_password = urlsplit(self.config.url.get_secret_value()).password
            if url_password:
                secrets.register_secret(url_password)
        self._client: Any = None

    @classmethod
    def spec_problems(
        cls, role: str, table: str | None, options: Mapping[str, Any], params: Mapping[str, Any]
    ) -> list[tuple[str, str, str]]:
        """Source/target options, checked at load time (the key template's columns at run
        time, when the data's columns are known)."""
        try:
            if role == "source":
                SourceOptions.parse(options, table)
            elif options.get("key_template"):
                TargetOptions.parse(options, table, ())
            else:
                _unknown(options, TARGET_OPTIONS, "target")
        except SpecError as exc:
            return [("options", exc.problems[0].message, "see the Redis section of the README")]
        return []

    @property
    def client(self) -> Any:
        """The redis-py client (text responses), created on first use."""
        if self._client is None:
            import redis
            from redis.backoff import ExponentialBackoff
            from redis.retry import Retry

            config = self.config
            kwargs = {k: getattr(config, k) for k in CLIENT_PARAMS if k in config.model_fields_set}
            if isinstance(kwargs.get("password"), SecretStr):
                kwargs["password"] = kwargs["password"].get_secret_value()
            # a few quick retries for transient errors, not redis-py's default ~15 s of them
            retry = Retry(ExponentialBackoff(cap=1.0, base=0.1), config.retries)
            common = {"decode_responses": True, "encoding_errors": "backslashreplace",
                      "socket_timeout": config.timeout,
                      "socket_connect_timeout": config.timeout, "retry": retry}
            if config.url is not None:
                self._client = redis.Redis.from_url(config.url.get_secret_value(), **common,
                                                    **kwargs)
            else:
                self._client = redis.Redis(**common, **kwargs)
        return self._client

    def describe(self) -> str:
        """``redis://host:port/db`` without credentials."""
        config = self.config
        if config.url is not None:
            parts = urlsplit(config.url.get_secret_value())
            port = f":{parts.port}" if parts.port else ""
            return secrets.mask(f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}")
        scheme = "rediss" if config.ssl else "redis"
        return f"{scheme}://{config.host}:{config.port}/{config.db}"

    def _fail(self, what: str, exc: BaseException) -> ConnectorError:
        import redis

        fix = "check connection_params host, port, ssl and that Redis is running"
        if isinstance(exc, redis.AuthenticationError | redis.exceptions.NoPermissionError):
            fix = "check connection_params.username and password"
        return ConnectorError(secrets.mask(f"redis at {self.describe()}: {what}: {exc} "
                                           f"(fix: {fix})"))

    def test_connection(self) -> bool:
        """True when the server answers PING (with the given credentials); never raises."""
        try:
            return bool(self.client.ping())
        except Exception:
            return False

    def close(self) -> None:
        """Release the connection pool."""
        if self._client is not None:
            self._client.close()
            self._client = None

    # --- source ----------------------------------------------------------------------------
    def read(self, request: ReadRequest) -> Relation:
        """Rows of the keys matching the pattern; streams continue after ``request.state``."""
        import redis

        opts = SourceOptions.parse(request.options, request.table)
        last_ids = dict(((request.state or {}).get("stream_ids")) or {})
        stats: dict[str, object] = {"state": {"stream_ids": last_ids}}
        leading = [KEY, *TYPE_COLUMNS.get(opts.data_type, [])]
        where = f"redis keys {opts.key_pattern!r}"
        builder = RecordSchema(leading, column_types(request.options), where)
        records = self._records(opts, last_ids)
        try:
            first = list(itertools.islice(records, request.batch_size))
        except redis.RedisError as exc:
            raise self._fail(f"reading {opts.key_pattern!r}", exc) from None
        schema = builder.infer(first, columns_from_state(request.state))
        stats["state"]["columns"] = columns_state(schema)  # type: ignore[index]

        def open_() -> Iterator[pa.RecordBatch]:
            chunk = first
            try:
                while chunk:
                    yield builder.batch(chunk)
                    chunk = list(itertools.islice(records, request.batch_size))
            except redis.RedisError as exc:
                raise self._fail(f"reading {opts.key_pattern!r}", exc) from None

        return Relation(schema, open_, where, stats)

    def _records(self, opts: SourceOptions, last_ids: dict[str, str]) -> Iterator[dict]:
        scan_type = None if opts.data_type == "auto" else opts.data_type
        keys = self.client.scan_iter(match=opts.key_pattern, count=opts.scan_count,
                                     _type=scan_type)
        while True:
            page = sorted(itertools.islice(keys, opts.scan_count))
            if not page:
                return
            if scan_type:
                types = [scan_type] * len(page)
            else:
                with self.client.pipeline(transaction=False) as pipe:
                    for key in page:
                        pipe.type(key)
                    types = pipe.execute()
            simple = [(k, t) for k, t in zip(page, types, strict=True) if t != "stream"]
            yield from self._simple_records(simple, opts)
            for key, type_ in zip(page, types, strict=True):
                if type_ == "stream":
                    yield from self._stream_records(key, last_ids)

    def _simple_records(self, keys: list[tuple[str, str]], opts: SourceOptions) -> Iterator[dict]:
        fetch = {
            "string": lambda p, k: p.get(k),
            "hash": lambda p, k: p.hgetall(k),
            "list": lambda p, k: p.lrange(k, 0, -1),
            "set": lambda p, k: p.smembers(k),
            "zset": lambda p, k: p.zrange(k, 0, -1, withscores=True),
        }
        with self.client.pipeline(transaction=False) as pipe:
            for key, type_ in keys:
                fetch.get(type_, lambda p, k: p.exists(k))(pipe, key)
            values = pipe.execute()
        for (key, type_), value in zip(keys, values, strict=True):
            if type_ == "hash":
                yield {"_key": key, **value}
            elif type_ == "string":
                yield {"_key": key, **self._value(value, opts, key)}
            elif type_ == "list":
                for index, item in enumerate(value):
                    yield {"_key": key, "_index": index, **self._value(item, opts, key)}
            elif type_ == "set":
                for item in sorted(value):
                    yield {"_key": key, **self._value(item, opts, key)}
            elif type_ == "zset":
                for item, score in value:
                    yield {"_key": key, **self._value(item, opts, key), "score": score}
            # keys that expired between SCAN and the fetch ("none") or other types are skipped

    @staticmethod
    def _value(text: str | None, opts: SourceOptions, key: str) -> dict[str, Any]:
        if opts.value_format == "raw" or text is None:
            return {"value": text}
        try:
            decoded = json.loads(text)
        except ValueError as exc:
            raise DataError(
                f"redis key {key!r}: value is not JSON ({exc}); set options.value_format: raw"
            ) from None
        if isinstance(decoded, dict):
            return {str(k): flatten_value(v) for k, v in decoded.items()}
        return {"value": flatten_value(decoded)}

    def _stream_records(self, key: str, last_ids: dict[str, str]) -> Iterator[dict]:
        start = f"({last_ids[key]}" if key in last_ids else "-"
        while True:
            entries = self.client.xrange(key, min=start, max="+", count=1000)
            if not entries:
                return
            for entry_id, fields in entries:
                yield {"_key": key, "_id": entry_id, **fields}
                last_ids[key] = entry_id
            start = f"({entries[-1][0]}"

    # --- target ----------------------------------------------------------------------------
    def read_back(self, request: WriteRequest) -> ReadRequest:
        """The keys the write's key template makes (``user:{id}`` -> pattern ``user:*``), as
        the data type it wrote."""
        opts = TargetOptions.parse(request.options, request.table, request.key_columns)
        pattern = "".join(
            literal.replace("*", "\\*") + ("*" if name is not None else "")
            for literal, name, _, _ in string.Formatter().parse(opts.key_template)
        )
        options = {"key_pattern": pattern, "data_type": opts.data_type}
        if opts.data_type == "string":
            options["value_format"] = "json"
        return ReadRequest(options=options, batch_size=request.batch_size)

    def write(self, relation: Relation, request: WriteRequest) -> LoadResult:
        """Replace one key per row (hash fields or a JSON string), pipelined in chunks."""
        import redis

        if request.write_mode not in self.write_modes:
            raise SpecError(
                f"redis write_mode {request.write_mode!r} is not supported (each row replaces "
                f"its key); use write_mode {' or '.join(sorted(self.write_modes))}"
            )
        opts = TargetOptions.parse(request.options, request.table, request.key_columns)
        missing = [c for c in template_fields(opts.key_template) if c not in relation.schema.names]
        if missing:
            raise SpecError(
                f"options.key_template {opts.key_template!r} uses column {missing[0]!r}, which "
                f"is not in the data; columns: {', '.join(relation.schema.names)}"
            )
        rows = 0
        try:
            for _, lines in json_rows(relation):
                for start in range(0, len(lines), opts.pipeline_size):
                    chunk = lines[start:start + opts.pipeline_size]
                    with self.client.pipeline(transaction=True) as pipe:
                        for line in chunk:
                            self._write_row(pipe, line, opts)
                        pipe.execute()
                    rows += len(chunk)
        except redis.RedisError as exc:
            raise LoadError(str(self._fail(f"writing {opts.key_template!r} (after {rows} rows)",
                                           exc))) from None
        return LoadResult(rows_loaded=rows, rows_inserted=None,
                          location=f"redis {self.describe()} keys {opts.key_template}")

    @staticmethod
    def _write_row(pipe: Any, line: str, opts: TargetOptions) -> None:
        row = json.loads(line, parse_float=decimal.Decimal)  # numbers keep their digits
        values = {k: _text(v) for k, v in row.items()}
        empty = [c for c in template_fields(opts.key_template) if row.get(c) is None]
        if empty:
            raise DataError(f"a row has no value for key column {empty[0]!r}: {line[:200]}")
        key = opts.key_template.format_map(values)
        pipe.delete(key)
        if opts.data_type == "string":
            pipe.set(key, line, ex=opts.ttl_seconds)
            return
        fields = {k: v for k, v in values.items() if v is not None}
        if fields:
            pipe.hset(key, mapping=fields)
        if opts.ttl_seconds:
            pipe.expire(key, opts.ttl_seconds)


def _text(value: Any) -> str | None:
    """A JSON value as hash field text: strings as they are, others as JSON (numbers with the
    digits they were written with)."""
    if value is None or isinstance(value, str):
        return value
    return json_text(value)
