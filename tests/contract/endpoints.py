"""The endpoint factory table: one entry per name of the connector registry.

An :class:`Entry` names a system and a factory. For one test, the factory makes a fresh place on
the system's real test server (a database, a bucket, a topic, an index, a key prefix, an API
collection), and returns an :class:`Endpoint`: the connection params, where a target writes,
how a source reads back what the target wrote, how values come back (the normalizations are
written next to each factory), how a wrong secret is given, and how to clean up. The contracts
(``test_*.py`` here) are written once against the public Connector contract and run for every
entry; ``test_registry.py`` fails when a registered connector has no entry.

Contracts that need a server (round trips, cursors, acknowledgements, read-back) run for the
entries whose ``server_free`` is None; an entry whose connector cannot talk to its test server
says why in ``server_free`` and runs the server-free contracts only (secrets, close, refused
write modes). A case that fails because of a known connector defect is listed in the entry's
``defects`` (``"<contract>[<write mode>]"`` -> the defect) and runs as a strict xfail.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy.engine import make_url

from nexus_dagster.connectors.base import Connector, LoadResult, ReadRequest, WriteRequest
from nexus_dagster.connectors.registry import connector_class
from tests.contract.rows import ALL_TYPES, TYPES, relation
from tests.support import (
    cleanup,
    drop_redis_keys,
    drop_topics,
    kafka_bootstrap,
    make_store,
    redis_params,
)

#: write modes in the order a contract picks one to seed a target
MODES = ("append", "overwrite", "upsert")
#: the connection settings that keep the REST API connector quick against the local server
FAST_API = {"allow_http": True, "backoff_seconds": 0.01, "max_retries": 2, "timeout_seconds": 5}


def new_secret() -> str:
    """A distinctive secret that is valid base64 and URL-safe (it is an Azure account key too)."""
    while True:
        value = base64.b64encode(os.urandom(33)).decode()
        if value.isalnum():
            return value


def unique(prefix: str) -> str:
    """A fresh lowercase name (tables, topics, indices and keys of one test)."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True)
class Target:
    """Where a target writes: the WriteRequest fields besides the write mode."""

    table: str | None = None
    path: str | None = None
    file_format: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    key_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class Secret:
    """How a connection holds a secret: ``params(secret)`` are params with a wrong one;
    ``refused`` says the test server checks it, so an operation must fail."""

    params: Callable[[str], dict[str, Any]]
    refused: bool = True


@dataclass(frozen=True)
class Stream:
    """A source with acknowledge semantics: ``seed(start)`` adds rows with ids ``start`` ..
    ``start + 5`` and returns those ids; ``request(state)`` is the source's read, given the state
    the runner kept from the last committed run."""

    seed: Callable[[int], list[int]]
    request: Callable[[Mapping[str, Any] | None], ReadRequest]


@dataclass
class Endpoint:
    """A fresh place on one system's test server, for one test."""

    type_name: str
    #: connection params as a run hands them to the connector (resolved, absolute paths)
    params: dict[str, Any]
    target: Target
    #: write mode -> the read of everything the target holds after loads in that mode
    read_back: Callable[[str], ReadRequest]
    #: the same place as a spec writes it: connection_params and DataTarget fields (RELATIVE
    #: file paths, resolved by the connector against the project root)
    spec_params: dict[str, Any] = field(default_factory=dict)
    spec_target: dict[str, Any] = field(default_factory=dict)
    secret: Secret | None = None
    #: columns the system adds to what was written (``_id``, ``_key``)
    drop: tuple[str, ...] = ()
    #: columns the system gives back as text, compared as the type they were written with
    as_text: tuple[str, ...] = ()
    #: timestamp precision the system keeps (``us`` or ``ms``)
    ts_unit: str = "us"
    #: set when an append cannot add a row under an existing key (key-value stores): why
    keyed_append: str | None = None
    stream: Stream | None = None
    cleanups: list[Callable[[], None]] = field(default_factory=list)
    opened: list[Connector] = field(default_factory=list)

    @property
    def cls(self) -> type[Connector]:
        """The registered connector class."""
        return connector_class(self.type_name)

    def first_mode(self) -> str:
        """The write mode contracts seed a target with."""
        return next(m for m in MODES if m in self.cls.write_modes)

    def connector(self, params: Mapping[str, Any] | None = None) -> Connector:
        """A new connector (closed again by :meth:`close`)."""
        connector = self.cls(dict(self.params if params is None else params))
        self.opened.append(connector)
        return connector

    def write_request(self, mode: str, batch_size: int = 4) -> WriteRequest:
        """The target's WriteRequest in ``mode`` (upsert on ``id``), with a run id of its own."""
        keys = ("id",) if mode == "upsert" else self.target.key_columns
        return WriteRequest(
            table=self.target.table, path=self.target.path, file_format=self.target.file_format,
            write_mode=mode, key_columns=keys, options=dict(self.target.options),
            batch_size=batch_size, run_id=uuid.uuid4().hex,
        )

    def write(self, table: pa.Table, mode: str, batch_size: int = 4) -> LoadResult:
        """Load ``table`` with a connector of its own, as one run does."""
        connector = self.connector()
        try:
            return connector.write(relation(table, batch_size), self.write_request(mode,
                                                                                   batch_size))
        finally:
            connector.close()

    def read(self, mode: str, **changes: Any) -> pa.Table:
        """Everything the target holds (``changes`` alter the read request: a cursor ...)."""
        connector = self.connector()
        try:
            return connector.read(replace(self.read_back(mode), **changes)).to_table()
        finally:
            connector.close()

    def close(self) -> None:
        """Close every connector made here (again: close twice is safe) and remove the place."""
        for connector in self.opened:
            connector.close()
        for step in reversed(self.cleanups):
            step()


Factory = Callable[[pytest.FixtureRequest], Endpoint]


# ----------------------------------------------------------------------------- databases
def database(
    url_fixture: str, spec_database: str | None = None, naive_utc: bool = False
) -> Factory:
    """A table in a fresh database (``pg_url``, ``mariadb_url``, ``sqlite_url`` fixtures).

    Normalization: none for PostgreSQL (timestamptz). MariaDB DATETIME and SQLite have no time
    zone: the connector stores UTC, so they are read with ``assume_timezone: UTC``.
    ``spec_database``: the spec gives a relative SQLite ``database`` instead of the URL.
    """

    def make(request: pytest.FixtureRequest) -> Endpoint:
        url = request.getfixturevalue(url_fixture)
        table = unique("contract_")
        options = {"assume_timezone": "UTC"} if naive_utc else {}
        secret = None
        if spec_database is None:
            secret = Secret(lambda s: {"url": make_url(url).set(password=s)
                                       .render_as_string(hide_password=False)})
        return Endpoint(
            "database", {"url": url}, Target(table=table),
            lambda mode: ReadRequest(table=table, options=options, batch_size=4),
            spec_params=({"type": "sqlite", "database": spec_database} if spec_database
                         else {"url": url}),
            spec_target={"table": table},
            secret=secret,
        )

    return make


# ----------------------------------------------------------------------------- local files
def local_file(fmt: str) -> Factory:
    """A file under a fresh ``base_dir``; the spec gives a path relative to the project root.

    Normalization: CSV and JSON Lines carry no types, so they are read with
    ``column_types`` (decimal amount, UTC timestamp); Parquet keeps them.
    """

    def make(request: pytest.FixtureRequest) -> Endpoint:
        base = request.getfixturevalue("tmp_path") / "files"
        base.mkdir()
        path = f"out/contract.{fmt}"
        options = {} if fmt == "parquet" else {"column_types": TYPES}
        return Endpoint(
            "file", {"base_dir": str(base)}, Target(path=path, file_format=fmt),
            lambda mode: ReadRequest(path=path, file_format=fmt, options=options, batch_size=4),
            spec_target={"file_path": path, "file_format": fmt},
        )

    return make


# ----------------------------------------------------------------------------- object stores
def _store_secret(kind: str, params: dict[str, Any], folder: Any) -> Secret:
    if kind == "s3":
        return Secret(lambda s: {**params, "secret_key": s})
    if kind == "azure_blob":
        return Secret(lambda s: {**params, "account_key": s})
    if kind == "gcs":
        def key_file(secret: str) -> dict[str, Any]:
            # a service-account key file named by the secret and holding it as its private key
            path = folder / f"{secret}.json"
            path.write_text(json.dumps({"type": "service_account", "private_key": secret,
                                        "client_email": "contract@nexus-test.iam"}))
            return {**params, "credentials": str(path)}

        return Secret(key_file)
    return Secret(lambda s: {**params, "password": s})  # sftp, ftp


def remote(kind: str, fmt: str) -> Factory:
    """An object under a fresh bucket/container (SFTP/FTP: folder) of the store's test server.

    Normalization: as for local files of ``fmt``. ``append`` writes part files under
    ``exports/contract/`` (remote stores never rewrite an object): the appended rows are read
    back from that prefix; ``overwrite`` replaces ``exports/contract.<fmt>``.
    """

    def make(request: pytest.FixtureRequest) -> Endpoint:
        store = make_store(kind)
        path, parts = f"exports/contract.{fmt}", "exports/contract/"
        options = {} if fmt == "parquet" else {"column_types": TYPES}
        endpoint = Endpoint(
            kind, store.params, Target(path=path, file_format=fmt),
            lambda mode: ReadRequest(path=parts if mode == "append" else path, file_format=fmt,
                                     options=options, batch_size=4),
            spec_params=store.params,
            spec_target={"file_path": path, "file_format": fmt},
            secret=_store_secret(kind, store.params, request.getfixturevalue("tmp_path")),
        )
        endpoint.cleanups.append(lambda: cleanup(store))
        return endpoint

    return make


# ----------------------------------------------------------------------------- streams
def kafka(request: pytest.FixtureRequest) -> Endpoint:
    """A fresh topic; messages keyed by ``id`` (``options.key_column``).

    Normalization: messages are JSON, so they are read with ``column_types``. Every read-back
    uses a fresh consumer group (it sees the whole topic) and raises ``max_messages`` (a run
    reads at most 100,000 messages by default); the acknowledge contract uses one group
    throughout.
    """
    bootstrap = kafka_bootstrap()
    topic, group = unique("contract_"), unique("contract_ack_")
    params = {"bootstrap_servers": bootstrap, "consumer_group": unique("contract_g_")}

    def seed(start: int) -> list[int]:
        ids = list(range(start, start + 6))
        endpoint.write(pa.table({"id": ids, "n": [f"event {i}" for i in ids]}), "append")
        return ids

    endpoint = Endpoint(
        "kafka", params, Target(table=topic, options={"key_column": "id"}),
        lambda mode: ReadRequest(table=topic, batch_size=4, options={
            "consumer_group": unique("contract_g_"), "column_types": TYPES,
            "max_messages": 1_000_000}),
        spec_params=params, spec_target={"table": topic, "options": {"key_column": "id"}},
        secret=Secret(lambda s: {**params, "security_protocol": "SASL_PLAINTEXT",
                                 "sasl_mechanism": "PLAIN", "sasl_username": "contract",
                                 "sasl_password": s, "timeout": 2}),
        stream=Stream(seed, lambda state: ReadRequest(
            table=topic, batch_size=4, state=state, options={"consumer_group": group})),
    )
    endpoint.cleanups.append(lambda: drop_topics(bootstrap, topic))
    return endpoint


def redis(request: pytest.FixtureRequest) -> Endpoint:
    """Hashes ``<prefix>:<id>`` (the target's table is the key prefix, ``key_columns: [id]``);
    the acknowledge contract reads the stream ``<prefix>_events``.

    Normalization: every hash field is text: read with ``column_types`` for every column; the
    ``_key`` column is dropped.
    """
    params = redis_params()
    prefix = unique("contract")
    stream_key = f"{prefix}_events"

    def seed(start: int) -> list[int]:
        ids = list(range(start, start + 6))
        client = endpoint.connector().client
        for i in ids:
            client.xadd(stream_key, {"id": str(i), "n": f"event {i}"})
        return ids

    def drop_keys() -> None:
        connector = endpoint.connector()
        drop_redis_keys(connector.client, prefix)
        connector.close()

    endpoint = Endpoint(
        "redis", params, Target(table=prefix, key_columns=("id",)),
        lambda mode: ReadRequest(batch_size=4, options={
            "key_pattern": f"{prefix}:*", "data_type": "hash", "column_types": ALL_TYPES}),
        spec_params=params, spec_target={"table": prefix, "key_columns": ["id"]},
        secret=Secret(lambda s: {**params, "password": s}),
        drop=("_key",),
        keyed_append="Redis holds one key per row: an append of a row whose key exists "
                     "replaces it (append and upsert both replace whole keys)",
        stream=Stream(seed, lambda state: ReadRequest(batch_size=4, state=state, options={
            "key_pattern": stream_key, "data_type": "stream"})),
    )
    endpoint.cleanups.append(drop_keys)
    return endpoint


# ----------------------------------------------------------------------------- documents
def mongodb(request: pytest.FixtureRequest) -> Endpoint:
    """A collection in a fresh database of the FerretDB server.

    Normalization: FerretDB has no Decimal128, so decimals are stored as text
    (``options.decimal_as: string``) and compared as decimals (``column_types`` of a document
    source types values, it does not parse text); BSON datetimes keep milliseconds; the ``_id``
    column MongoDB adds is dropped.
    """
    uri, database_name = request.getfixturevalue("mongo_uri"), request.getfixturevalue("mongo_db")
    params = {"uri": uri, "database": database_name}
    return Endpoint(
        "mongodb", params, Target(table="contract", options={"decimal_as": "string"}),
        lambda mode: ReadRequest(table="contract", batch_size=4),
        spec_params=params,
        spec_target={"table": "contract", "options": {"decimal_as": "string"}},
        secret=Secret(lambda s: {**params, "uri": uri.replace("mongodb://",
                                                              f"mongodb://contract:{s}@")}),
        drop=("_id",), as_text=("amount",), ts_unit="ms",
    )


def search(type_name: str) -> Factory:
    """An index under a fresh prefix of the OpenSearch node (``opensearch``) or the
    Elasticsearch node (``elasticsearch``).

    Normalization: decimals are indexed as JSON numbers, read back as floats and compared as
    decimals; timestamps come back typed through the index's date mapping; the ``_id`` column
    of each hit is dropped. Neither node runs a security plugin, so neither checks credentials
    (``refused`` is False).
    """
    prefix_fixture = "index_prefix" if type_name == "opensearch" else "elasticsearch_index_prefix"

    def make(request: pytest.FixtureRequest) -> Endpoint:
        url = request.getfixturevalue(f"{type_name}_url")
        index = f"{request.getfixturevalue(prefix_fixture)}_contract"
        params = {"type": type_name, "url": url}
        return Endpoint(
            type_name, params, Target(table=index),
            lambda mode: ReadRequest(table=index, batch_size=4),
            spec_params=params, spec_target={"table": index},
            secret=Secret(lambda s: {**params, "username": "contract", "password": s,
                                     "api_key": s}, refused=False),
            drop=("_id",), as_text=("amount",),
        )

    return make


# ----------------------------------------------------------------------------- REST API
def api(request: pytest.FixtureRequest) -> Endpoint:
    """A collection of the local test API: POSTs to ``/collections/<name>`` are listed by a
    GET of the same URL (tests/integration/api/server.py).

    Normalization: JSON has no decimal or timestamp type, so the read uses ``column_types``.
    """
    server = request.getfixturevalue("api")
    name = unique("contract")
    url = f"{server.url}/collections/{name}"
    params = {**FAST_API, "api_endpoint": url}
    return Endpoint(
        "api", params, Target(),
        lambda mode: ReadRequest(options={"column_types": TYPES}, batch_size=4),
        spec_target={**FAST_API, "api_endpoint": url},
        secret=Secret(lambda s: {**params, "api_endpoint": f"{server.url}/bearer/collections/x",
                                 "api_auth": {"type": "bearer", "token": s}}),
    )


# ----------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Entry:
    """One system the contracts run against (see the module docstring)."""

    id: str
    type_name: str
    make: Factory
    marks: tuple[pytest.MarkDecorator, ...] = ()
    #: None, or why the connector cannot talk to its test server (server-free contracts only)
    server_free: str | None = None
    #: True: the many-rows round trip runs; else why not (not cheap on the test server)
    large: bool | str = True
    #: None, or why the connection takes no secret (the secrets contract does not apply)
    no_secret: str | None = None
    #: ``"<contract>[<write mode>]"`` or ``"<contract>"`` -> the connector defect (strict xfail)
    defects: Mapping[str, str] = field(default_factory=dict)

    @property
    def cls(self) -> type[Connector]:
        return connector_class(self.type_name)

    def modes(self) -> list[str]:
        return [m for m in MODES if m in self.cls.write_modes]

    def refused_modes(self) -> list[str]:
        return [m for m in MODES if m not in self.cls.write_modes]


ENTRIES: tuple[Entry, ...] = (
    Entry("database-postgresql", "database", database("pg_url"), (pytest.mark.postgres,)),
    Entry("database-mariadb", "database", database("mariadb_url", naive_utc=True),
          (pytest.mark.mariadb,)),
    Entry("database-sqlite", "database",
          database("sqlite_url", spec_database="data/contract.db", naive_utc=True),
          no_secret="SQLite files take no credential"),
    Entry("file-csv", "file", local_file("csv"), no_secret="local files take no credential"),
    Entry("file-parquet", "file", local_file("parquet"),
          no_secret="local files take no credential"),
    Entry("file-jsonl", "file", local_file("jsonl"), no_secret="local files take no credential"),
    Entry("s3", "s3", remote("s3", "parquet"), (pytest.mark.s3,)),
    Entry("azure_blob", "azure_blob", remote("azure_blob", "csv"), (pytest.mark.azurite,)),
    Entry("gcs", "gcs", remote("gcs", "jsonl"), (pytest.mark.gcs,)),
    Entry("sftp", "sftp", remote("sftp", "parquet"), (pytest.mark.sftp,)),
    Entry("ftp", "ftp", remote("ftp", "csv"), (pytest.mark.ftp,)),
    Entry("kafka", "kafka", kafka, (pytest.mark.kafka,)),
    Entry("redis", "redis", redis, (pytest.mark.redis,),
          large="120k keys take ~11 s to write and ~8 s to delete again on the test server"),
    Entry("mongodb", "mongodb", mongodb, (pytest.mark.mongodb,),
          large="FerretDB loads slow down with the collection size (20k rows: 15 s; 120k "
                "rows: minutes)"),
    Entry("opensearch", "opensearch", search("opensearch"), (pytest.mark.opensearch,),
          large="bulk indexing 120k documents into the single test node takes ~13 s"),
    Entry("elasticsearch", "elasticsearch", search("elasticsearch"),
          (pytest.mark.elasticsearch,),
          large="bulk indexing 120k documents into the single test node takes ~24 s"),
    Entry("api", "api", api, (pytest.mark.api,)),
)


def cases(
    contract: str,
    entries: Iterable[Entry] = ENTRIES,
    *,
    server: bool = True,
    modes: Callable[[Entry], Iterable[str]] | None = None,
) -> list[Any]:
    """``pytest.param`` s of a contract: one per entry (``server``: only entries that talk to
    their server), or one per entry and write mode of ``modes(entry)``; a listed defect makes
    its case a strict xfail."""
    params = []
    for entry in entries:
        if server and entry.server_free:
            continue
        for mode in (modes(entry) if modes else [None]):
            key = f"{contract}[{mode}]" if mode else contract
            marks = list(entry.marks)
            defect = entry.defects.get(key) or entry.defects.get(contract)
            if defect:
                marks.append(pytest.mark.xfail(strict=True, reason=defect))
            values = (entry, mode) if modes else (entry,)
            ident = f"{entry.id}-{mode}" if mode else entry.id
            params.append(pytest.param(*values, id=ident, marks=marks))
    return params
