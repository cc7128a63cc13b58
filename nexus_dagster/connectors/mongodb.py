"""MongoDB (and MongoDB wire-protocol servers such as FerretDB) through pymongo.

Source: a collection with a JSON ``filter`` and ``projection``, read with a cursor in
``batch_size`` batches; an incremental read adds ``{column: {$gt|$gte: cursor}}`` to the filter.
Documents become columns by the rule of :mod:`nexus_dagster.connectors.documents`.

Target: every mode first loads a staging collection (so a failing source or transformation never
touches the target), then ``append`` copies it with ``insert_many``, ``upsert`` applies
``bulk_write`` of ``ReplaceOne(..., upsert=True)`` on ``key_columns`` (the documents it replaces
are backed up first and put back if the load fails), and ``overwrite`` renames the staging
collection over the target.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar
from urllib.parse import quote_plus

import pyarrow as pa
from pydantic import AliasChoices, ConfigDict, Field, SecretStr

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
from nexus_dagster.errors import ConnectorError, LoadError, NexusError, RetriableError, SpecError
from nexus_dagster.relation import Relation

#: MongoDBParams field -> MongoClient option (passed when given)
CLIENT_OPTIONS = {
    "auth_source": "authSource",
    "auth_mechanism": "authMechanism",
    "tls": "tls",
    "tls_ca_file": "tlsCAFile",
    "tls_certificate_key_file": "tlsCertificateKeyFile",
    "tls_allow_invalid_certificates": "tlsAllowInvalidCertificates",
    "replica_set": "replicaSet",
    "direct_connection": "directConnection",
    "timeout_ms": "serverSelectionTimeoutMS",
}
NOT_IMPLEMENTED = 238


class MongoDBParams(ConnectorParams):
    """Connection parameters of MongoDB (Nexus ``connection_params``); unknown keys are
    errors. pymongo's names (``authSource``, ``tlsCAFile``, ``replicaSet`` ...) are accepted
    as well as the snake_case field names.

    Example:
        >>> MongoDBParams.model_validate({"uri": "mongodb://etl:pw@db:27017/",
        ...                               "database": "app", "authSource": "admin"}).auth_source
        'admin'
    """

    model_config = ConfigDict(extra="forbid")

    uri: SecretStr | None = Field(
        None, validation_alias=AliasChoices("uri", "url"),
        description="mongodb:// or mongodb+srv:// URI (may hold a password), instead of host",
    )
    host: str = Field("127.0.0.1", description="server host")
    port: int = Field(27017, ge=1, le=65535, description="server port")
    database: str = Field(min_length=1, description="the database (required)")
    username: str | None = Field(
        None, validation_alias=AliasChoices("username", "user"), description="user (alias: user)"
    )
    password: SecretStr | None = Field(None, description="password")
    auth_source: str | None = Field(
        None, validation_alias=AliasChoices("auth_source", "authSource"),
        description="the database holding the user",
    )
    auth_mechanism: str | None = Field(
        None, validation_alias=AliasChoices("auth_mechanism", "authMechanism"),
        description="SCRAM-SHA-256, MONGODB-X509 ...",
    )
    tls: bool | None = Field(
        None, validation_alias=AliasChoices("tls", "ssl"),
        description="connect with TLS (alias: ssl)",
    )
    tls_ca_file: str | None = Field(
        None, validation_alias=AliasChoices("tls_ca_file", "tlsCAFile", "ca_certs"),
        description="CA bundle path (aliases: tlsCAFile, ca_certs)",
    )
    tls_certificate_key_file: str | None = Field(
        None, validation_alias=AliasChoices("tls_certificate_key_file", "tlsCertificateKeyFile"),
        description="client certificate and key (PEM) path",
    )
    tls_allow_invalid_certificates: bool | None = Field(
        None,
        validation_alias=AliasChoices(
            "tls_allow_invalid_certificates", "tlsAllowInvalidCertificates"
        ),
        description="accept any server certificate (tests only)",
    )
    replica_set: str | None = Field(
        None, validation_alias=AliasChoices("replica_set", "replicaSet"),
        description="replica set name",
    )
    direct_connection: bool | None = Field(
        None, validation_alias=AliasChoices("direct_connection", "directConnection"),
        description="connect to this host only, not the replica set",
    )
    timeout_ms: int = Field(10_000, gt=0, description="server selection timeout, milliseconds")


class MongoDBConnector(Connector):
    """Source and target for MongoDB collections.

    Params (``connection_params``, :class:`MongoDBParams`): ``uri`` (``mongodb://...`` or
    ``mongodb+srv://...``) or
    ``host``/``port``/``username``/``password``; ``database`` (required); ``authSource``,
    ``authMechanism``, ``tls``, ``tlsCAFile`` (alias ``ca_certs``), ``tlsCertificateKeyFile``,
    ``replicaSet``, ``directConnection``, ``timeout_ms`` (server selection, default 10000).

    Source spec: ``table`` = collection; ``options.filter`` = the filter (a mapping or JSON
    text; ``query`` is accepted too when the spec API allows it);
    ``options``: ``projection``, ``sort``, ``nested`` (flatten|json), ``sample_size``,
    ``column_types``. Target spec: ``table`` = collection, ``write_mode`` append | upsert |
    overwrite, ``key_columns`` for upsert; ``options.object_id`` (default true) turns a 24-hex
    ``_id`` back into an ObjectId; ``options.unflatten`` (default true) folds ``a.b`` columns
    into sub-documents; ``options.decimal_as`` (decimal128 | float | string, default
    decimal128; FerretDB v1 has no Decimal128) says how decimals are stored.

    Example:
        >>> mongo = MongoDBConnector({"uri": "mongodb://127.0.0.1:27017", "database": "app"})
        >>> rel = mongo.read(ReadRequest(table="orders", query='{"status": "paid"}',
        ...                              cursor=Cursor("updated_at", "2024-01-01", True)))
        >>> mongo.write(rel, WriteRequest(table="orders_copy", write_mode="upsert",
        ...                               key_columns=("order_id",)))  # doctest: +SKIP
    """

    kinds: ClassVar[tuple[str, ...]] = ("mongodb",)
    supports_incremental: ClassVar[bool] = True
    write_modes: ClassVar[frozenset[str]] = frozenset({"append", "upsert", "overwrite"})
    is_source: ClassVar[bool] = True
    is_target: ClassVar[bool] = True
    source_requires: ClassVar[tuple[tuple[str, ...], ...]] = (("table",),)
    target_requires: ClassVar[tuple[tuple[str, ...], ...]] = (("table",),)
    Params: ClassVar[type[ConnectorParams]] = MongoDBParams
    config: MongoDBParams

    def __init__(self, params: Mapping[str, Any]):
        super().__init__(params)
        self.database_name = self.config.database
        if self.config.password is not None:
            secrets.register_secret(self.config.password.get_secret_value())
        uri = self.config.uri.get_secret_value() if self.config.uri is not None else ""
        if "@" in uri:  # the password in mongodb://user:password@host/
            secrets.register_secret(uri.split("://", 1)[-1].split("@", 1)[0].partition(":")[2])
        self._client: Any = None

    # --- connection ------------------------------------------------------------------------
    def _uri(self, *, credentials: bool = True) -> str:
        config = self.config
        if config.uri is not None:
            return config.uri.get_secret_value()
        auth = ""
        if config.username and credentials:
            auth = quote_plus(config.username)
            if config.password is not None:
                auth += ":" + quote_plus(config.password.get_secret_value())
            auth += "@"
        return f"mongodb://{auth}{config.host}:{config.port}/"

    def describe(self) -> str:
        """The server and database, with no credentials."""
        scheme, _, rest = self._uri(credentials=False).partition("://")
        hosts = rest.rsplit("@", 1)[-1].split("/", 1)[0].split("?", 1)[0]
        return secrets.mask(f"{scheme}://{hosts}/{self.database_name}")

    @property
    def client(self) -> Any:
        """The pymongo client, created on first use (timezone-aware datetimes)."""
        if self._client is None:
            import pymongo

            options: dict[str, Any] = {"tz_aware": True}
            for key, name in CLIENT_OPTIONS.items():
                value = getattr(self.config, key)
                if value is not None:
                    options[name] = value
            with self._errors("connecting to"):
                self._client = pymongo.MongoClient(self._uri(), **options)
        return self._client

    @property
    def db(self) -> Any:
        """The database named by the ``database`` param."""
        return self.client[self.database_name]

    def close(self) -> None:
        """Close the client's connections."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def test_connection(self) -> bool:
        """True when the server answers ``ping`` (with the given credentials); never raises."""
        try:
            self.db.command("ping")
            return True
        except Exception:
            return False

    @contextmanager
    def _errors(self, action: str, cls: type[ConnectorError] = ConnectorError) -> Iterator[None]:
        """pymongo errors as ``cls`` (or RetriableError when the server is unreachable)."""
        try:
            yield
        except NexusError:
            raise
        except Exception as exc:
            from pymongo.errors import ConnectionFailure

            detail = str(exc).split(", full error:")[0].split(" (configured timeouts")[0]
            text = secrets.mask(f"{action} {self.describe()} failed: {detail}")
            if cls is LoadError:
                text += " (the target was left as it was)"
            retriable = isinstance(exc, ConnectionFailure) and cls is not LoadError
            kind = RetriableError if retriable else cls
            raise kind(text) from None

    # --- read -------------------------------------------------------------------------------
    def read(self, request: ReadRequest) -> Relation:
        """A relation over the collection's matching documents (re-iterable, one query each).

        Raises:
            SpecError: no collection, or a filter/projection that is not a JSON object.
            ConnectorError: the server cannot be reached or refuses the query.
        """
        if not request.table:
            raise SpecError("a mongodb source needs 'table' (the collection name)")
        options = dict(request.options)
        filter_ = _json_option(request.query or options.pop("filter", None), "query/filter") or {}
        options.pop("filter", None)
        projection = _json_option(options.get("projection"), "options.projection")
        sort = options.get("sort")
        nested = options.get("nested", "flatten")
        sample_size = int(options.get("sample_size", min(request.batch_size, 1000)))
        collection = self.db[request.table]
        where = f"mongodb source {request.table!r}"
        if request.cursor is not None:
            with self._errors("reading from"):
                filter_ = self._with_cursor(collection, filter_, request.cursor)

        def find(limit: int = 0) -> Any:
            cursor = collection.find(
                filter_, projection, limit=limit, batch_size=request.batch_size
            )
            if sort:
                order = list(dict(sort).items()) if isinstance(sort, Mapping) else sort
                cursor = cursor.sort(order)
            elif request.cursor is not None:
                cursor = cursor.sort(request.cursor.column, 1)
            return cursor

        with self._errors("reading from"):
            sample = [documents.flatten(d, nested) for d in find(sample_size)]
        first = ("_id",) if not projection or projection.get("_id", 1) else ()
        schema = documents.infer_schema(sample, options.get("column_types"), first=first)

        def open_() -> Iterator[pa.RecordBatch]:
            with self._errors("reading from"):
                yield from documents.batches(find(), schema, request.batch_size, where, nested)

        return Relation(schema, open_, name=f"mongodb {request.table}")

    def _with_cursor(self, collection: Any, filter_: dict[str, Any], cursor: Cursor) -> dict:
        """The filter and ``cursor.column > value``, the value typed like the stored field."""
        probe = collection.find_one({cursor.column: {"$exists": True}}, {cursor.column: 1})
        value = _coerce_cursor(cursor.value, probe, cursor.column)
        bounds = {"$gte" if cursor.inclusive else "$gt": value}
        upper = getattr(cursor, "upper", None)  # a partition window's end (exclusive)
        if upper is not None:
            bounds["$lt"] = _coerce_cursor(upper, probe, cursor.column)
        condition = {cursor.column: bounds}
        return {"$and": [filter_, condition]} if filter_ else condition

    # --- write ------------------------------------------------------------------------------
    def write(self, relation: Relation, request: WriteRequest) -> LoadResult:
        """Load the relation into the collection ``request.table``.

        Raises:
            SpecError: no collection, or an unknown write mode.
            LoadError: key columns missing, or any server error (the target is left as it was).
        """
        mode = request.write_mode
        if mode not in self.write_modes:
            raise SpecError(f"mongodb write_mode {mode!r}; use one of {sorted(self.write_modes)}")
        if not request.table:
            raise SpecError("a mongodb target needs 'table' (the collection name)")
        keys = tuple(request.key_columns)
        if mode == "upsert" and not keys:
            raise LoadError(f"upsert into {request.table!r} needs key_columns")
        if getattr(request, "replace_range", None) and mode != "upsert":
            raise SpecError("a partitioned run into mongodb cannot replace its window; use "
                            "write_mode: upsert with key_columns")
        staging = self.db[f"{request.table}__nexus_stg_{uuid.uuid4().hex[:10]}"]
        try:
            with self._errors(f"staging {request.table!r} in", LoadError):
                rows = self._stage(relation, staging, request)
            with self._errors(f"loading {request.table!r} into", LoadError):
                if mode == "overwrite":
                    inserted, updated = self._swap(staging, request.table), 0
                elif mode == "append":
                    inserted, updated = self._append(staging, self.db[request.table]), 0
                else:
                    inserted, updated = self._upsert(
                        staging, self.db[request.table], keys, request.batch_size
                    )
        finally:
            staging.drop()
        return LoadResult(
            rows_loaded=rows,
            location=f"{self.describe()}.{request.table}",
            rows_inserted=inserted,
            rows_updated=updated,
            extra={"write_mode": mode},
        )

    def _stage(self, relation: Relation, staging: Any, request: WriteRequest) -> int:
        options, size = request.options, request.batch_size
        object_id = bool(options.get("object_id", True))
        fold = bool(options.get("unflatten", True))
        decimal_as = options.get("decimal_as", "decimal128")
        if decimal_as not in ("decimal128", "float", "string"):
            raise SpecError(f"options.decimal_as must be decimal128, float or string, "
                            f"not {decimal_as!r}")
        rows = 0
        for batch in relation:
            missing = [k for k in request.key_columns if k not in batch.schema.names]
            if missing and batch.num_rows:  # an empty read may lack every column
                raise LoadError(
                    f"key column(s) {missing} are not in the data loaded into "
                    f"{request.table!r}; data columns: {batch.schema.names}"
                )
            docs = [_to_document(row, object_id, fold, decimal_as) for row in batch.to_pylist()]
            for start in range(0, len(docs), size):
                chunk = docs[start:start + size]
                # staging keeps the data's own _id in _nexus_doc so duplicates cannot clash
                staging.insert_many([{"_nexus_doc": d} for d in chunk], ordered=True)
            rows += len(docs)
        return rows

    @staticmethod
    def _staged(staging: Any) -> Iterator[dict[str, Any]]:
        for wrapper in staging.find({}, sort=[("_id", 1)]):
            yield wrapper["_nexus_doc"]

    def _append(self, staging: Any, target: Any) -> int:
        from bson import ObjectId

        done: list[Any] = []

        def insert(chunk: list[dict[str, Any]]) -> None:
            ids = [d["_id"] for d in chunk]
            existing = {d["_id"] for d in target.find({"_id": {"$in": ids}}, {"_id": 1})}
            # what this chunk may add, known before the call: servers differ in what a
            # failed insert_many reports (FerretDB's reply breaks pymongo's error details)
            done.extend(i for i in ids if i not in existing)
            target.insert_many(chunk, ordered=True)

        try:
            chunk: list[dict[str, Any]] = []
            for doc in self._staged(staging):
                doc.setdefault("_id", ObjectId())
                chunk.append(doc)
                if len(chunk) >= 1000:
                    insert(chunk)
                    chunk = []
            if chunk:
                insert(chunk)
        except BaseException:
            for start in range(0, len(done), 1000):  # take back what this load inserted
                target.delete_many({"_id": {"$in": done[start:start + 1000]}})
            raise
        return len(done)

    def _upsert(
        self, staging: Any, target: Any, keys: tuple[str, ...], size: int
    ) -> tuple[int, int]:
        from pymongo import ReplaceOne

        backup = self.db[f"{target.name}__nexus_bak_{uuid.uuid4().hex[:10]}"]
        created: list[dict[str, Any]] = []  # key filters of documents this load adds
        inserted = updated = 0
        try:
            ops: list[Any] = []
            filters: list[dict[str, Any]] = []

            def flush() -> None:
                nonlocal inserted, updated
                before = list(target.find({"$or": filters}))
                if before:
                    backup.insert_many([{"_nexus_doc": d} for d in before])
                present = {tuple(_get(d, k) for k in keys) for d in before}
                created.extend(f for f in filters if tuple(f.values()) not in present)
                result = target.bulk_write(ops, ordered=True)
                inserted += result.upserted_count
                updated += result.matched_count

            for doc in self._staged(staging):
                key = {k: _get(doc, k) for k in keys}
                if "_id" not in keys:
                    doc.pop("_id", None)  # keep the stored document's own _id
                ops.append(ReplaceOne(key, doc, upsert=True))
                filters.append(key)
                if len(ops) >= size:
                    flush()
                    ops, filters = [], []
            if ops:
                flush()
        except BaseException:
            for start in range(0, len(created), 1000):
                target.delete_many({"$or": created[start:start + 1000]})
            for wrapper in backup.find({}):
                original = wrapper["_nexus_doc"]
                target.replace_one({"_id": original["_id"]}, original, upsert=True)
            raise
        finally:
            backup.drop()
        return inserted, updated

    def _swap(self, staging: Any, name: str) -> int:
        """Rename a copy of the staged documents over ``name``."""
        from pymongo.errors import OperationFailure

        ready = self.db[f"{name}__nexus_new_{uuid.uuid4().hex[:10]}"]
        count = 0
        chunk: list[dict[str, Any]] = []
        for doc in self._staged(staging):
            chunk.append(doc)
            if len(chunk) >= 1000:
                ready.insert_many(chunk)
                count, chunk = count + len(chunk), []
        if chunk:
            ready.insert_many(chunk)
            count += len(chunk)
        if not count:
            ready.insert_one({"_nexus_empty": True})  # so the collection exists to be renamed
            ready.delete_many({})
        try:
            ready.rename(name, dropTarget=True)
        except OperationFailure as exc:
            if exc.code != NOT_IMPLEMENTED:  # FerretDB v1 has no dropTarget: drop, then rename
                ready.drop()
                raise
            self.db[name].drop()
            ready.rename(name)
        return count


def _json_option(value: Any, field: str) -> dict[str, Any] | None:
    if value is None or isinstance(value, Mapping):
        return dict(value) if value is not None else None
    try:
        parsed = json.loads(value)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"mongodb {field} must be a JSON object: {exc}") from None
    if not isinstance(parsed, dict):
        raise SpecError(f"mongodb {field} must be a JSON object, not {type(parsed).__name__}")
    return parsed


def _get(doc: Mapping[str, Any], dotted: str) -> Any:
    value: Any = doc
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value if value is not None else doc.get(dotted)


def _to_document(
    row: dict[str, Any], object_id: bool, fold: bool, decimal_as: str = "decimal128"
) -> dict[str, Any]:
    """A row as a BSON-ready document (decimals as Decimal128, dates as datetimes)."""
    import datetime as dt
    import decimal

    from bson import Decimal128, ObjectId

    for key, value in row.items():
        if isinstance(value, decimal.Decimal):
            converted = {"decimal128": Decimal128, "float": float, "string": str}[decimal_as]
            row[key] = converted(value)
        elif isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            row[key] = dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
        elif isinstance(value, dt.time):
            row[key] = value.isoformat()
    if object_id and isinstance(row.get("_id"), str) and ObjectId.is_valid(row["_id"]):
        row["_id"] = ObjectId(row["_id"])
    return documents.unflatten(row) if fold else row


def _coerce_cursor(value: Any, probe: Mapping[str, Any] | None, column: str) -> Any:
    """The cursor value in the stored field's BSON type (ISO text -> datetime, hex -> ObjectId)."""
    import datetime as dt

    from bson import ObjectId

    sample = _get(probe, column) if probe else None
    if isinstance(sample, ObjectId) and isinstance(value, str) and ObjectId.is_valid(value):
        return ObjectId(value)
    if isinstance(sample, dt.datetime) and isinstance(value, str):
        parsed = dt.datetime.fromisoformat(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    if isinstance(sample, dt.datetime) and isinstance(value, dt.date):
        if not isinstance(value, dt.datetime):
            value = dt.datetime(value.year, value.month, value.day)
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(sample, int | float) and isinstance(value, str):
        try:
            return float(value) if "." in value else int(value)
        except ValueError:
            return value
    return value
