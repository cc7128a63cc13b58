"""Apache Kafka: bounded, at-least-once topic reads and transactional JSON writes.

Built on ``confluent-kafka`` (librdkafka, shipped inside the wheel): its consumer lets us store
and commit exact offsets ourselves (never auto-commit), and its producer gives idempotent,
transactional writes, which kafka-python does not. A source reads what the topic holds when
the run starts (bounded by ``max_messages`` / ``max_seconds``) from the consumer group's
committed offsets, and commits the new offsets only in :meth:`KafkaConnector.acknowledge`,
which the runner calls once every target committed: a failed load re-reads the same messages
on the next run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyarrow as pa
from pydantic import AliasChoices, ConfigDict, Field, SecretStr, field_validator, model_validator

from nexus_dagster import secrets
from nexus_dagster.connectors.base import (
    Connector,
    ConnectorParams,
    LoadResult,
    ReadRequest,
    WriteRequest,
)
from nexus_dagster.connectors.formats.values import json_rows
from nexus_dagster.connectors.message_records import (
    RecordSchema,
    column_types,
    columns_from_state,
    columns_state,
    flatten_value,
)
from nexus_dagster.errors import ConnectorError, DataError, LoadError, SpecError
from nexus_dagster.relation import Relation

_log = logging.getLogger("nexus_dagster.kafka")

#: friendly connection param -> librdkafka setting (dotted librdkafka names pass through as-is)
PARAM_ALIASES = {
    "security_protocol": "security.protocol",
    "sasl_mechanism": "sasl.mechanism",
    "sasl_mechanisms": "sasl.mechanism",
    "sasl_username": "sasl.username",
    "sasl_password": "sasl.password",
    "ssl_cafile": "ssl.ca.location",
    "ssl_ca_location": "ssl.ca.location",
    "ssl_certfile": "ssl.certificate.location",
    "ssl_keyfile": "ssl.key.location",
    "ssl_password": "ssl.key.password",
    "ssl_key_password": "ssl.key.password",
    "ssl_check_hostname": "ssl.endpoint.identification.algorithm",
    "client_id": "client.id",
}
SOURCE_OPTIONS = frozenset(
    {"topic", "consumer_group", "max_messages", "max_seconds", "metadata_columns",
     "value_format", "start_from", "column_types"}
)
TARGET_OPTIONS = frozenset({"topic", "key_column", "transactional", "partitions"})
METADATA_COLUMNS = {
    "key": pa.field("_key", pa.string()),
    "topic": pa.field("_topic", pa.string()),
    "partition": pa.field("_partition", pa.int32()),
    "offset": pa.field("_offset", pa.int64()),
    "timestamp": pa.field("_timestamp", pa.timestamp("ms", tz="UTC")),
}


@dataclass(frozen=True)
class SourceOptions:
    """Source ``options`` of a Kafka source, validated."""

    max_messages: int = 100_000
    max_seconds: float = 60.0
    metadata_columns: tuple[str, ...] = ()
    value_format: str = "json"
    start_from: str = "earliest"

    @classmethod
    def parse(cls, options: Mapping[str, Any]) -> SourceOptions:
        """Raises SpecError naming the option and the fix."""
        unknown = sorted(set(options) - SOURCE_OPTIONS)
        if unknown:
            raise SpecError(
                f"options.{unknown[0]} is not a Kafka source option; "
                f"known: {', '.join(sorted(SOURCE_OPTIONS))}"
            )
        kwargs: dict[str, Any] = {}
        for name, kind in (("max_messages", int), ("max_seconds", float)):
            if options.get(name) is not None:
                value = options[name]
                if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                    raise SpecError(f"options.{name} must be a positive number, not {value!r}")
                kwargs[name] = kind(value)
        columns = options.get("metadata_columns") or ()
        if isinstance(columns, str):
            columns = (columns,)
        bad = [c for c in columns if c not in METADATA_COLUMNS]
        if bad:
            raise SpecError(
                f"options.metadata_columns: {bad[0]!r} is not a message attribute; "
                f"use any of: {', '.join(METADATA_COLUMNS)}"
            )
        kwargs["metadata_columns"] = tuple(columns)
        for name, allowed in (("value_format", ("json", "string")),
                              ("start_from", ("earliest", "latest"))):
            if options.get(name) is not None:
                if options[name] not in allowed:
                    raise SpecError(
                        f"options.{name} must be one of {', '.join(allowed)}, not "
                        f"{options[name]!r}"
                    )
                kwargs[name] = options[name]
        column_types(options)
        return cls(**kwargs)


def check_options(role: str, options: Mapping[str, Any]) -> None:
    """Validate a Kafka endpoint's ``options`` (load time and run time).

    Raises:
        SpecError: an unknown or ill-typed option.
    """
    if role == "source":
        SourceOptions.parse(options)
        return
    unknown = sorted(set(options) - TARGET_OPTIONS)
    if unknown:
        raise SpecError(
            f"options.{unknown[0]} is not a Kafka target option; "
            f"known: {', '.join(sorted(TARGET_OPTIONS))}"
        )
    if "key_column" in options and not isinstance(options["key_column"], str):
        raise SpecError("options.key_column must be one column name")
    if "transactional" in options and not isinstance(options["transactional"], bool):
        raise SpecError("options.transactional must be true or false")


class KafkaParams(ConnectorParams):
    """Connection parameters of Kafka (Nexus ``connection_params``).

    Unknown keys are errors, except librdkafka settings: a dotted key
    (``ssl.endpoint.identification.algorithm: none``) is passed to the client as it is,
    collected into :attr:`config` (which wins over the named fields). Sensitive librdkafka
    settings (``sasl.password`` ...) are kept as ``SecretStr``.

    Example:
        >>> KafkaParams.model_validate({"brokers": ["k1:9092", "k2:9092"],
        ...                             "sasl_password": "s3cret"}).bootstrap_servers
        'k1:9092,k2:9092'
    """

    model_config = ConfigDict(extra="forbid")

    bootstrap_servers: str | None = Field(
        None, validation_alias=AliasChoices("bootstrap_servers", "brokers"),
        description="brokers, 'host:port,host:port' or a list (alias: brokers)",
    )
    topic: str | None = Field(None, description="default topic (else the endpoint's table)")
    consumer_group: str | None = Field(
        None, validation_alias=AliasChoices("consumer_group", "group_id"),
        description="consumer group of sources; offsets are committed to it (alias: group_id)",
    )
    timeout: float = Field(10.0, gt=0, description="seconds to wait for the brokers")
    security_protocol: str | None = Field(None, description="PLAINTEXT, SSL, SASL_SSL ...")
    sasl_mechanism: str | None = Field(
        None, validation_alias=AliasChoices("sasl_mechanism", "sasl_mechanisms"),
        description="PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 ...",
    )
    sasl_username: str | None = Field(None, description="SASL user")
    sasl_password: SecretStr | None = Field(None, description="SASL password")
    ssl_cafile: str | None = Field(
        None, validation_alias=AliasChoices("ssl_cafile", "ssl_ca_location"),
        description="CA bundle path (alias: ssl_ca_location)",
    )
    ssl_certfile: str | None = Field(None, description="client certificate path")
    ssl_keyfile: str | None = Field(None, description="client key path")
    ssl_password: SecretStr | None = Field(
        None, validation_alias=AliasChoices("ssl_password", "ssl_key_password"),
        description="password of the client key (alias: ssl_key_password)",
    )
    ssl_check_hostname: bool | None = Field(None, description="verify the broker host name")
    client_id: str | None = Field(None, description="client id shown to the brokers")
    config: dict[str, Any] = Field(
        default_factory=dict, description="librdkafka settings, e.g. {'linger.ms': 50}"
    )

    @model_validator(mode="before")
    @classmethod
    def _dotted_settings(cls, data: Any) -> Any:
        """Dotted keys are librdkafka settings: gathered into ``config`` (config wins)."""
        if not isinstance(data, Mapping) or not any("." in str(k) for k in data):
            return data
        data = dict(data)
        dotted = {str(k): data.pop(k) for k in list(data) if "." in str(k)}
        config = data.get("config")
        if config is None or isinstance(config, Mapping):
            data["config"] = {**dotted, **(config or {})}
        return data

    @field_validator("bootstrap_servers", mode="before")
    @classmethod
    def _broker_list(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return ",".join(str(b) for b in value)
        return value

    @field_validator("config")
    @classmethod
    def _librdkafka_settings(cls, value: dict[str, Any]) -> dict[str, Any]:
        settings: dict[str, Any] = {}
        for key, item in value.items():
            name = PARAM_ALIASES.get(key, key)
            if "." not in name:
                raise ValueError(
                    f"{key} is not a librdkafka setting; use a dotted librdkafka name such as "
                    "ssl.endpoint.identification.algorithm"
                )
            if secrets.is_sensitive(name) and isinstance(item, str):
                item = SecretStr(item)
            settings[key] = item
        return settings


@dataclass
class _Read:
    """One bounded read: the consumer, where each partition started, ends and got to."""

    consumer: Any
    ends: dict[tuple[str, int], int]
    positions: dict[tuple[str, int], int]
    starts: dict[tuple[str, int], int]
    done: set[tuple[str, int]] = field(default_factory=set)
    consumed: int = 0
    opened: bool = False


class KafkaConnector(Connector):
    """Source and target for Kafka topics (JSON messages).

    Params (Nexus ``connection_params``, :class:`KafkaParams`): ``brokers`` or
    ``bootstrap_servers`` (a "host:port,host:port" string or a list), ``topic`` (or the
    endpoint's ``table``; a topic starting with ``^`` is a regular expression),
    ``consumer_group`` (sources; offsets are committed to it), ``security_protocol``,
    ``sasl_mechanism``, ``sasl_username``, ``sasl_password``, ``ssl_cafile``, ``ssl_certfile``,
    ``ssl_keyfile``, ``ssl_password``, ``client_id``, ``timeout`` (seconds, default 10),
    ``config`` (a dict of librdkafka settings); any dotted librdkafka setting
    (``ssl.endpoint.identification.algorithm``) passes through.

    Source options: ``max_messages`` (100000), ``max_seconds`` (60), ``metadata_columns``
    (any of key, topic, partition, offset, timestamp -> ``_key``, ``_topic`` ...),
    ``value_format`` (json: object fields become columns; string: one ``value`` column),
    ``start_from`` (earliest | latest, when the group has no committed offset),
    ``column_types``, ``consumer_group`` (overrides the connection's).
    Target options: ``key_column``, ``transactional`` (default true: the rows of a run become
    visible to read_committed consumers all at once or not at all), ``partitions`` (for a
    topic the target creates).

    Example:
        >>> kafka = KafkaConnector({"bootstrap_servers": "127.0.0.1:9092",
        ...                         "consumer_group": "orders_sync"})
        >>> relation = kafka.read(ReadRequest(table="orders",
        ...                       options={"max_messages": 1000}))  # doctest: +SKIP
        >>> ...  # load it somewhere, then:
        >>> kafka.acknowledge(relation)  # commit the offsets  # doctest: +SKIP
    """

    kinds: ClassVar[tuple[str, ...]] = ("kafka",)
    write_modes: ClassVar[frozenset[str]] = frozenset({"append"})
    is_source: ClassVar[bool] = True
    is_target: ClassVar[bool] = True
    Params: ClassVar[type[ConnectorParams]] = KafkaParams
    config: KafkaParams

    def __init__(self, params: Mapping[str, Any]):
        super().__init__(params)
        if not self.config.bootstrap_servers:
            raise SpecError(
                "a kafka connection needs bootstrap_servers (or brokers), e.g. "
                "bootstrap_servers: kafka1:9092,kafka2:9092"
            )
        self.brokers = self.config.bootstrap_servers
        self.timeout = self.config.timeout
        #: librdkafka settings of every client (secrets as SecretStr, unwrapped in _conf)
        self.client_config = self.client_settings()
        self._reads: dict[int, _Read] = {}
        self._errors: list[str] = []

    @classmethod
    def spec_problems(
        cls, role: str, table: str | None, options: Mapping[str, Any], params: Mapping[str, Any]
    ) -> list[tuple[str, str, str]]:
        """Options, topic, brokers and (sources) consumer group, checked at load time."""
        problems = []
        try:
            check_options(role, options)
        except SpecError as exc:
            message = exc.problems[0].message
            problems.append(("options", message, "see the Kafka section of the README"))
        if not (params.get("bootstrap_servers") or params.get("brokers")):
            problems.append(("connection_params", "a kafka connection needs bootstrap_servers",
                             "add bootstrap_servers: host:9092 (or brokers: [...])"))
        if not (table or options.get("topic") or params.get("topic")):
            problems.append(("table", f"a kafka {role} needs a topic",
                             "add table: <topic> (or connection_params.topic)"))
        group = options.get("consumer_group") or params.get("consumer_group")
        if role == "source" and not (group or params.get("group_id")):
            problems.append((
                "connection_params",
                "a kafka source needs consumer_group: offsets are committed to it",
                "add consumer_group: <name> to connection_params (or options)",
            ))
        return problems

    # --- configuration ---------------------------------------------------------------------
    def client_settings(self) -> dict[str, Any]:
        """The librdkafka settings of this connection: the named params under their librdkafka
        names, then :attr:`KafkaParams.config`. Secrets stay ``SecretStr`` (registered for
        masking) until a client is created."""
        config = self.config
        settings: dict[str, Any] = {"bootstrap.servers": self.brokers}
        for key, name in PARAM_ALIASES.items():
            value = getattr(config, key) if key in KafkaParams.model_fields else None
            if value is None:
                continue
            if key == "ssl_check_hostname":
                value = "https" if value else "none"
            settings[name] = value
        for key, value in config.config.items():
            settings[PARAM_ALIASES.get(key, key)] = value
        for value in settings.values():
            if isinstance(value, SecretStr):
                secrets.register_secret(value.get_secret_value())
        return settings

    def _conf(self, **extra: Any) -> dict[str, Any]:
        def on_error(error: Any) -> None:
            self._errors.append(str(error))

        plain = {k: v.get_secret_value() if isinstance(v, SecretStr) else v
                 for k, v in self.client_config.items()}
        return {
            **plain,
            "error_cb": on_error,
            "logger": _log,
            "socket.connection.setup.timeout.ms": int(self.timeout * 1000),
            **extra,
        }

    def describe(self) -> str:
        """The brokers (no credentials)."""
        return secrets.mask(f"kafka://{self.brokers}")

    def _fail(self, what: str, exc: BaseException | None = None) -> ConnectorError:
        detail = str(exc) if exc is not None else ""
        if self._errors:
            detail = f"{detail}; {self._errors[-1]}" if detail else self._errors[-1]
        return ConnectorError(secrets.mask(
            f"kafka at {self.brokers}: {what}: {detail or 'no answer'} (fix: check "
            "connection_params.bootstrap_servers, security settings and that Kafka is running)"
        ))

    def _metadata(self, client: Any) -> Any:
        from confluent_kafka import KafkaException

        try:
            return client.list_topics(timeout=self.timeout)
        except KafkaException as exc:
            raise self._fail(f"cannot reach the brokers within {self.timeout:g}s", exc) from None

    def test_connection(self) -> bool:
        """True when a broker answers a metadata request; never raises."""
        try:
            from confluent_kafka.admin import AdminClient

            self._metadata(AdminClient(self._conf()))
            return True
        except Exception:
            return False

    def topic(self, table: str | None, options: Mapping[str, Any]) -> str:
        """The endpoint's topic: ``table``, ``options.topic`` or the connection's ``topic``."""
        topic = table or options.get("topic") or self.config.topic
        if not topic:
            raise SpecError(
                "a kafka endpoint needs a topic: set table: <topic> (or connection_params.topic)"
            )
        return str(topic)

    # --- source ----------------------------------------------------------------------------
    def read(self, request: ReadRequest) -> Relation:
        """A bounded read from the group's committed offsets up to the end seen at start."""
        from confluent_kafka import Consumer, TopicPartition

        opts = SourceOptions.parse(request.options)
        topic = self.topic(request.table, request.options)
        group = request.options.get("consumer_group") or self.config.consumer_group
        if not group:
            raise SpecError(
                "a kafka source needs consumer_group (connection_params.consumer_group or "
                "options.consumer_group): its committed offsets say where the next run starts"
            )
        consumer = Consumer(self._conf(**{
            "group.id": str(group),
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
            "auto.offset.reset": opts.start_from,
        }))
        try:
            partitions = self._partitions(consumer, topic)
            committed = consumer.committed(partitions, timeout=self.timeout)
            read = _Read(consumer, ends={}, positions={}, starts={})
            assignment = []
            for tp in committed:
                low, high = consumer.get_watermark_offsets(tp, timeout=self.timeout)
                start = tp.offset if tp.offset >= 0 else (
                    low if opts.start_from == "earliest" else high)
                start = max(start, low)
                key = (tp.topic, tp.partition)
                read.starts[key] = read.positions[key] = start
                read.ends[key] = high
                if start >= high:
                    read.done.add(key)
                assignment.append(TopicPartition(tp.topic, tp.partition, start))
            consumer.assign(assignment)
        except Exception as exc:
            consumer.close()
            if isinstance(exc, SpecError | ConnectorError):
                raise
            raise self._fail(f"cannot read topic {topic!r}", exc) from None

        where = f"kafka topic {topic}"
        explicit = column_types(request.options)
        schema_builder = RecordSchema(
            [METADATA_COLUMNS[c] for c in opts.metadata_columns], explicit, where
        )
        deadline = time.monotonic() + opts.max_seconds
        first = self._records(read, opts, request.batch_size, deadline)
        schema = schema_builder.infer(first, columns_from_state(request.state))

        def open_() -> Iterator[pa.RecordBatch]:
            if read.opened:
                raise ConnectorError(f"{where}: a Kafka read can be iterated once only")
            read.opened = True
            records = first
            while records:
                yield schema_builder.batch(records)
                records = self._records(read, opts, request.batch_size, deadline)

        relation = Relation(schema, open_, f"{where} ({group})",
                            {"state": {"columns": columns_state(schema)}})
        self._reads[id(relation)] = read
        return relation

    def _partitions(self, consumer: Any, topic: str) -> list[Any]:
        from confluent_kafka import TopicPartition

        metadata = self._metadata(consumer)
        if topic.startswith("^"):
            pattern = re.compile(topic)
            names = sorted(t for t in metadata.topics
                           if pattern.search(t) and not t.startswith("__"))
        else:
            names = [topic] if topic in metadata.topics else []
        if not names:
            known = ", ".join(sorted(t for t in metadata.topics if not t.startswith("__")))
            raise ConnectorError(
                f"kafka at {self.brokers}: no topic matches {topic!r}; topics: {known or 'none'}"
            )
        return [
            TopicPartition(name, p)
            for name in names
            for p in sorted(metadata.topics[name].partitions)
        ]

    def _records(
        self, read: _Read, opts: SourceOptions, limit: int, deadline: float
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` decoded messages, until every partition reached its end."""
        from confluent_kafka import KafkaError

        records: list[dict[str, Any]] = []
        while (
            len(records) < limit
            and len(read.done) < len(read.ends)
            and read.consumed < opts.max_messages
            and time.monotonic() < deadline
        ):
            want = min(limit - len(records), opts.max_messages - read.consumed, 10_000)
            wait = max(0.0, min(1.0, deadline - time.monotonic()))
            for message in read.consumer.consume(num_messages=want, timeout=wait):
                key = (message.topic(), message.partition())
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        read.done.add(key)
                        continue
                    raise self._fail(f"reading {key[0]}[{key[1]}]", Exception(error.str()))
                read.positions[key] = message.offset() + 1
                if read.positions[key] >= read.ends.get(key, 0):
                    read.done.add(key)
                read.consumed += 1
                records.append(self._decode(message, opts))
        return records

    def _decode(self, message: Any, opts: SourceOptions) -> dict[str, Any]:
        record: dict[str, Any] = {}
        for name in opts.metadata_columns:
            if name == "key":
                key = message.key()
                record["_key"] = None if key is None else key.decode("utf-8", "backslashreplace")
            elif name == "topic":
                record["_topic"] = message.topic()
            elif name == "partition":
                record["_partition"] = message.partition()
            elif name == "offset":
                record["_offset"] = message.offset()
            else:
                _, millis = message.timestamp()
                record["_timestamp"] = dt.datetime.fromtimestamp(millis / 1000, dt.UTC)
        value = message.value()
        if value is None:
            return record
        text = value.decode("utf-8", "backslashreplace")
        if opts.value_format == "string":
            record["value"] = text
            return record
        try:
            decoded = json.loads(text)
        except ValueError as exc:
            raise DataError(
                f"kafka topic {message.topic()} partition {message.partition()} offset "
                f"{message.offset()}: value is not JSON ({exc}); set options.value_format: "
                "string to read values as text"
            ) from None
        if isinstance(decoded, dict):
            record.update({str(k): flatten_value(v) for k, v in decoded.items()})
        else:
            record["value"] = flatten_value(decoded)
        return record

    def acknowledge(self, relation: Relation) -> None:
        """Commit the offsets after the messages this relation yielded (synchronously)."""
        from confluent_kafka import KafkaException, TopicPartition

        read = self._reads.pop(id(relation), None)
        if read is None:
            return
        offsets = [
            TopicPartition(topic, partition, position)
            for (topic, partition), position in read.positions.items()
            if position > read.starts[(topic, partition)]
        ]
        if not offsets:
            return
        try:
            read.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            raise self._fail("committing consumer offsets", exc) from None

    def close(self) -> None:
        """Leave every consumer this connector opened (nothing is committed here)."""
        reads, self._reads = list(self._reads.values()), {}
        for read in reads:
            read.consumer.close()

    # --- target ----------------------------------------------------------------------------
    def read_back(self, request: WriteRequest) -> ReadRequest:
        """The whole topic from the earliest offset, through a consumer group of its own that
        is never committed (checks do not move any group's offsets)."""
        options: dict[str, Any] = {
            "consumer_group": f"nexus-read-back-{uuid.uuid4().hex}",
            "start_from": "earliest",
            "max_messages": 2**62,
            "max_seconds": 3600.0,
        }
        if request.options.get("topic"):
            options["topic"] = request.options["topic"]
        return ReadRequest(table=request.table, options=options, batch_size=request.batch_size)

    def write(self, relation: Relation, request: WriteRequest) -> LoadResult:
        """Produce every row as a JSON object (``acks=all``, idempotent), flushed before
        returning; in one transaction unless ``options.transactional`` is false."""
        from confluent_kafka import KafkaException, Producer

        if request.write_mode not in self.write_modes:
            raise SpecError(
                f"kafka write_mode {request.write_mode!r} is not supported: a topic only takes "
                f"new messages; use write_mode {', '.join(sorted(self.write_modes))}"
            )
        check_options("target", request.options)
        topic = self.topic(request.table, request.options)
        key_column = request.options.get("key_column")
        if key_column and key_column not in relation.schema.names:
            raise SpecError(
                f"options.key_column {key_column!r} is not a column; columns: "
                f"{', '.join(relation.schema.names)}"
            )
        transactional = request.options.get("transactional", True)
        self._ensure_topic(topic, int(request.options.get("partitions") or 1))
        extra: dict[str, Any] = {"acks": "all", "enable.idempotence": True, "linger.ms": 20}
        if transactional:
            extra["transactional.id"] = f"nexus-{topic}-{uuid.uuid4().hex[:12]}"
        producer = Producer(self._conf(**extra))
        failures: list[str] = []

        def delivered(error: Any, message: Any) -> None:
            if error is not None:
                failures.append(str(error))

        rows = 0
        try:
            if transactional:
                producer.init_transactions(self.timeout)
                producer.begin_transaction()
            for batch, lines in json_rows(relation):
                keys = batch.column(key_column).to_pylist() if key_column else None
                for index, line in enumerate(lines):
                    key = None if keys is None or keys[index] is None else str(keys[index])
                    self._produce(producer, topic, line, key, delivered)
                rows += batch.num_rows
                producer.poll(0)
            left = producer.flush(max(self.timeout, 30))
            if left or failures:
                detail = failures[0] if failures else f"{left} messages not acknowledged"
                raise LoadError(secrets.mask(
                    f"kafka topic {topic}: {detail}; nothing of this run was committed"
                    if transactional else f"kafka topic {topic}: {detail}"
                ))
            if transactional:
                producer.commit_transaction(max(self.timeout, 30))
        except Exception as exc:
            if transactional:
                with contextlib.suppress(KafkaException):
                    producer.abort_transaction(self.timeout)
            if isinstance(exc, LoadError | SpecError | DataError):
                raise
            raise LoadError(str(self._fail(f"producing to topic {topic!r}", exc))) from None
        return LoadResult(rows_loaded=rows, location=f"kafka topic {topic} at {self.brokers}",
                          rows_inserted=rows)

    @staticmethod
    def _produce(producer: Any, topic: str, line: str, key: str | None, callback: Any) -> None:
        while True:
            try:
                producer.produce(topic, value=line.encode("utf-8"),
                                 key=None if key is None else key.encode("utf-8"),
                                 on_delivery=callback)
                return
            except BufferError:  # local queue full: let deliveries drain
                producer.poll(0.1)

    def _ensure_topic(self, topic: str, partitions: int) -> None:
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient(self._conf())
        if topic in self._metadata(admin).topics:
            return
        future = admin.create_topics([NewTopic(topic, num_partitions=partitions)])[topic]
        try:
            future.result(self.timeout)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise LoadError(str(self._fail(f"creating topic {topic!r}", exc))) from None
