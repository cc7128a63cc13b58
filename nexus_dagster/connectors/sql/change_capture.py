"""Change data capture from PostgreSQL logical replication (``cdc: true`` on a database source).

A run reads the changes of one table from a logical replication slot with the built-in
``pgoutput`` plugin (:mod:`.pgoutput` decodes it), over psycopg2's replication protocol, up to
the server's WAL position when the read started, so a run always ends. Each change is a row of
the table's columns (typed like a plain read: the text values are parsed by psycopg2's own type
casters) plus :data:`.change_apply.OP_COLUMN` (``insert``, ``update`` or ``delete``); a delete
carries the replica identity's columns (the primary key under ``REPLICA IDENTITY DEFAULT``) and
nulls elsewhere; an update that changed the key is a delete of the old key followed by the update.

Nothing is confirmed while reading: the slot keeps every change until :func:`confirm` moves it
to the last commit read (the connector's ``acknowledge()``, called only after every target
committed), so a failed load reads the same changes again. The position reached is also the
source's state kept by Dagster, and the next read starts at it (changes the slot still holds
below it were applied already).

Confirming is ``pg_replication_slot_advance`` on a plain connection, not a ``flush_lsn``
feedback message on the replication connection: the replication connection is closed when the
read ends (kept open through a long load, the server's ``wal_sender_timeout`` would cut it),
and the function returns only once the slot has moved, so a run that reports success has
confirmed.

The publication and the slot are created when missing (the role needs ``REPLICATION`` and must
own the table for ``CREATE PUBLICATION``), else their names are only checked.
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import psycopg2.extras
import pyarrow as pa
import sqlalchemy as sa

from nexus_dagster.connectors.sql.change_apply import OP_COLUMN
from nexus_dagster.connectors.sql.pgoutput import (
    UNCHANGED,
    Change,
    Commit,
    PgOutputDecoder,
    Truncate,
)
from nexus_dagster.connectors.sql.types import ColumnInfo, rows_to_batch
from nexus_dagster.errors import ConnectorError, DataError
from nexus_dagster.relation import Relation

__all__ = [
    "CaptureTarget",
    "change_relation",
    "confirm",
    "fill_unchanged",
    "format_lsn",
    "parse_lsn",
    "prepare",
    "read_changes",
]

#: seconds without any message before the server is asked where it stands
_ASK_AFTER = 0.5
#: seconds without progress after which a read ends at the last commit it saw
_IDLE_LIMIT = 10.0
#: JSON values stay the text the server printed, as in a plain read
_TEXT_OIDS = frozenset({114, 3802})


def parse_lsn(text: str) -> int:
    """``'0/16B3748'`` -> the LSN as an integer."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


def format_lsn(lsn: int) -> str:
    """The integer LSN as PostgreSQL prints it (``'0/16B3748'``)."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


@dataclass(frozen=True)
class CaptureTarget:
    """What one CDC read follows: ``schema``.``table`` through ``publication`` and ``slot``."""

    schema: str
    table: str
    publication: str
    slot: str

    @property
    def label(self) -> str:
        return f"{self.schema}.{self.table}"


def _one(connection: sa.Connection, sql: str, **params: Any) -> Any:
    row = connection.execute(sa.text(sql), params).first()
    return None if row is None else row[0]


def prepare(engine: sa.Engine, target: CaptureTarget) -> int:
    """Check the server and the table, create the publication and the slot when missing, and
    return the WAL position the read goes up to (the server's current one).

    Raises:
        ConnectorError: ``wal_level`` is not ``logical``, the table cannot be captured (no
            replica identity), the publication or slot exist but do not fit, or the role lacks
            the rights to create them (the message says which).
    """
    with engine.connect() as connection:
        level = _one(connection, "SHOW wal_level")
        if level != "logical":
            raise ConnectorError(
                f"cdc on {target.label}: the server has wal_level={level}; logical replication "
                "needs wal_level=logical (postgresql.conf, then restart the server)"
            )
        identity = _one(connection, "SELECT c.relreplident FROM pg_class c JOIN pg_namespace n "
                        "ON n.oid = c.relnamespace WHERE n.nspname = :s AND c.relname = :t",
                        s=target.schema, t=target.table)  # fmt: skip
        has_key = _one(connection, "SELECT count(*) FROM pg_index i JOIN pg_class c ON "
                       "c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE "
                       "n.nspname = :s AND c.relname = :t AND (i.indisprimary OR "
                       "i.indisreplident)", s=target.schema, t=target.table)  # fmt: skip
        if identity is None:
            raise ConnectorError(f"cdc: table {target.label} does not exist")
        if identity == "n" or (identity == "d" and not has_key):
            raise ConnectorError(
                f"cdc on {target.label}: the table has no replica identity (no primary key), so "
                "its updates and deletes cannot be captured; add a primary key or run "
                f"ALTER TABLE {target.label} REPLICA IDENTITY FULL"
            )
        published = _one(connection, "SELECT count(*) FROM pg_publication WHERE pubname = :p",
                         p=target.publication)  # fmt: skip
        if not published:
            _create(connection, target, "publication",
                    f"CREATE PUBLICATION {_quote(target.publication)} FOR TABLE "
                    f"{_quote(target.schema)}.{_quote(target.table)}")  # fmt: skip
        elif not _one(connection, "SELECT count(*) FROM pg_publication_tables WHERE "
                      "pubname = :p AND schemaname = :s AND tablename = :t",
                      p=target.publication, s=target.schema, t=target.table):  # fmt: skip
            raise ConnectorError(
                f"cdc: publication {target.publication!r} does not publish {target.label}; run "
                f"ALTER PUBLICATION {target.publication} ADD TABLE {target.label}, or name "
                "another publication"
            )
        slot = connection.execute(
            sa.text("SELECT plugin, database FROM pg_replication_slots WHERE slot_name = :n"),
            {"n": target.slot},
        ).first()
        database = _one(connection, "SELECT current_database()")
        if slot is None:
            _create(connection, target, "slot",
                    f"SELECT pg_create_logical_replication_slot('{target.slot}', 'pgoutput')")
        elif slot.plugin != "pgoutput" or slot.database != database:
            raise ConnectorError(
                f"cdc: replication slot {target.slot!r} exists for plugin {slot.plugin!r} in "
                f"database {slot.database!r}; a cdc source needs a pgoutput slot in "
                f"{database!r}: name another slot"
            )
        return parse_lsn(_one(connection, "SELECT pg_current_wal_lsn()::text"))


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _create(connection: sa.Connection, target: CaptureTarget, what: str, sql: str) -> None:
    try:
        connection.exec_driver_sql(sql)
        connection.commit()
    except sa.exc.DBAPIError as exc:
        connection.rollback()
        name = target.publication if what == "publication" else target.slot
        rights = ("own the table (CREATE PUBLICATION ... FOR TABLE)" if what == "publication"
                  else "have the REPLICATION attribute (ALTER ROLE ... REPLICATION)")
        raise ConnectorError(
            f"cdc: creating the {what} {name!r} for {target.label} failed: "
            f"{str(exc.orig).strip()}; the connection's role must {rights}, or an "
            f"administrator creates the {what} beforehand"
        ) from None


def read_changes(
    connect_params: dict[str, Any], target: CaptureTarget, columns: Sequence[ColumnInfo],
    schema: pa.Schema, end_lsn: int, start_lsn: int, batch_size: int, stats: dict[str, Any],
    fill: Callable[[list[list[Any]], Sequence[str]], None] | None = None,
) -> Iterator[pa.RecordBatch]:  # fmt: skip
    """The table's changes from ``start_lsn`` (0: where the slot stands) to ``end_lsn``, as
    batches of ``schema`` (the columns plus :data:`OP_COLUMN`), read over a replication
    connection opened with psycopg2 ``connect_params``. ``fill(rows, key_columns)`` replaces
    the :data:`~.pgoutput.UNCHANGED` values of a batch's rows before they become Arrow.

    ``stats["lsn"]`` is the end of the last commit read (where :func:`confirm` may move the
    slot), ``stats["changes"]`` counts by operation. The replication connection is closed
    when the read ends.

    Raises:
        DataError: a truncate of the table, or a column added while reading.
    """
    connection = psycopg2.connect(
        connection_factory=psycopg2.extras.LogicalReplicationConnection, **connect_params
    )
    try:
        cursor = connection.cursor()
        deadline = time.monotonic() + 10
        while True:  # a slot stays in use for a moment after the last run's connection closed
            try:
                cursor.start_replication(
                    slot_name=target.slot, decode=False, start_lsn=start_lsn,
                    options={"proto_version": "1", "publication_names": target.publication},
                )  # fmt: skip
                break
            except psycopg2.errors.ObjectInUse:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        for rows, key in _stream(cursor, target, columns, end_lsn, batch_size, stats):
            if fill is not None:
                fill(rows, key)
            yield rows_to_batch(rows, _with_op(columns), schema)
    finally:
        connection.close()


def _stream(
    cursor: Any, target: CaptureTarget, columns: Sequence[ColumnInfo], end_lsn: int,
    batch_size: int, stats: dict[str, Any],
) -> Iterator[tuple[list[list[Any]], tuple[str, ...]]]:  # fmt: skip
    """Batches of change rows (column values, then the operation) and the replica identity
    columns of the table, up to ``end_lsn`` and ending at a commit."""
    decoder = PgOutputDecoder()
    names = [c.name for c in columns]
    rows: list[list[Any]] = []
    key: tuple[str, ...] = ()
    in_transaction = False
    last_progress = quiet_since = time.monotonic()
    while True:
        message = cursor.read_message()
        if message is None:
            now = time.monotonic()
            reached = cursor.wal_end >= end_lsn
            if not in_transaction and (reached or now - last_progress > _IDLE_LIMIT):
                break
            if now - quiet_since > _ASK_AFTER:
                cursor.send_feedback(reply=True)  # the server answers with where it stands
                quiet_since = now
            select.select([cursor], [], [], _ASK_AFTER)
            continue
        quiet_since = last_progress = time.monotonic()
        decoded = decoder.decode(message.payload)
        if isinstance(decoded, Commit):
            in_transaction = False
            stats["lsn"] = decoded.end_lsn
            if len(rows) >= batch_size:
                yield rows, key
                rows = []
            continue
        if decoded is None:
            continue
        in_transaction = True
        if isinstance(decoded, Truncate):
            if any(decoder.relations[oid].name == target.table
                   and decoder.relations[oid].namespace == target.schema
                   for oid in decoded.oids if oid in decoder.relations):  # fmt: skip
                raise DataError(
                    f"cdc: {target.label} was truncated, and a truncate is not a row change; "
                    f"drop the slot (SELECT pg_drop_replication_slot('{target.slot}')) and "
                    "start over as with a new slot: a cdc run creates it, then a full "
                    "(non-cdc) sync run reloads the target"
                )
            continue
        if not isinstance(decoded, Change):
            continue
        relation = decoded.relation
        if (relation.namespace, relation.name) != (target.schema, target.table):
            continue
        unknown = [n for n, _ in relation.columns if n not in names]
        if unknown:
            raise DataError(
                f"cdc: {target.label} has new column(s) {unknown} since the read started; "
                "run the job again (it reads the new columns)"
            )
        key = relation.key
        if decoded.old_key is not None:
            rows.append(_row(decoded.old_key, names, relation.columns, cursor, "delete"))
        rows.append(_row(decoded.values, names, relation.columns, cursor, decoded.op))
        counts = stats.setdefault("changes", {})
        counts[decoded.op] = counts.get(decoded.op, 0) + 1
    if rows:
        yield rows, key


def _with_op(columns: Sequence[ColumnInfo]) -> list[ColumnInfo]:
    return [*columns, ColumnInfo(OP_COLUMN, pa.string())]


def _row(
    values: dict[str, object], names: Sequence[str], types: Sequence[tuple[str, int]],
    cursor: Any, op: str,
) -> list[Any]:  # fmt: skip
    """One change as a row: each text value parsed by psycopg2's caster for its type OID
    (``cursor`` gives casters their session settings), ``op`` last; an unsent TOASTed value
    stays :data:`~.pgoutput.UNCHANGED`."""
    oids = dict(types)
    row: list[Any] = []
    for name in names:
        value = values.get(name)
        if isinstance(value, str) and oids.get(name) not in _TEXT_OIDS:
            caster = psycopg2.extensions.string_types.get(oids.get(name))
            if caster is not None:
                value = caster(value, cursor)
        row.append(value)
    row.append(op)
    return row


def fill_unchanged(
    engine: sa.Engine, target: CaptureTarget, names: Sequence[str], rows: list[list[Any]],
    key: Sequence[str],
) -> None:  # fmt: skip
    """Replace the TOASTed values an update left unchanged (PostgreSQL does not send them under
    ``REPLICA IDENTITY DEFAULT``) by the row's current value in the table, in one query per
    batch; a row gone since gets nulls (its later delete is in the stream).

    The current value may be newer than the change: targets apply the last change of each key,
    and every later change of the row comes after it in the stream, so the target converges
    to the table all the same (a change log written with ``append`` shows the newer value).
    """
    wanted = [i for i, row in enumerate(rows) if any(v is UNCHANGED for v in row)]
    if not wanted:
        return
    positions = [names.index(k) for k in key]
    table = sa.table(target.table, *[sa.column(n) for n in names], schema=target.schema)
    keys = sa.tuple_(*[table.c[k] for k in key])
    wanted_keys = {tuple(rows[i][p] for p in positions) for i in wanted}
    with engine.connect() as connection:
        current = {
            tuple(found[: len(key)]): found[len(key):]
            for found in connection.execute(
                sa.select(*[table.c[k] for k in key], *[table.c[n] for n in names])
                .where(keys.in_(list(wanted_keys)))
            )
        }  # fmt: skip
    for index in wanted:
        row = rows[index]
        now = current.get(tuple(row[p] for p in positions))
        for column, value in enumerate(row[: len(names)]):
            if value is UNCHANGED:
                row[column] = None if now is None else now[column]


def confirm(engine: sa.Engine, slot: str, lsn: int) -> None:
    """Move ``slot`` to ``lsn``: the server may now drop the WAL before it.

    Raises:
        ConnectorError: the slot is in use by another connection for longer than 10 seconds
            or does not exist.
    """
    deadline = time.monotonic() + 10
    with engine.connect() as connection:
        while True:
            try:
                connection.execute(
                    sa.text("SELECT pg_replication_slot_advance(:slot, CAST(:lsn AS pg_lsn))"),
                    {"slot": slot, "lsn": format_lsn(lsn)},
                )
                connection.commit()
                return
            except sa.exc.DBAPIError as exc:
                connection.rollback()
                active = getattr(exc.orig, "pgcode", None) == "55006"  # object in use
                if not active or time.monotonic() > deadline:
                    raise ConnectorError(
                        f"cdc: confirming replication slot {slot!r} at {format_lsn(lsn)} "
                        f"failed: {str(exc.orig).strip()}"
                    ) from None
                time.sleep(0.1)


def change_relation(
    engine: sa.Engine, connect_params: dict[str, Any], target: CaptureTarget,
    columns: Sequence[ColumnInfo], request_state: Any, batch_size: int,
) -> Relation:  # fmt: skip
    """The lazy relation of a CDC read: the table's ``columns`` plus :data:`OP_COLUMN`.

    The publication and slot are prepared now (:func:`prepare`), not when the relation is
    iterated: creating a slot waits for every open transaction of the server to end, and by
    then a target on the same server may hold one open (its load reads this relation). The
    changes are read while the relation is iterated. Afterwards ``relation.stats["state"]``
    is ``{"slot", "lsn"}`` (the position reached, kept by Dagster; the next read starts
    there) and ``stats["confirm"]`` the ``(slot, lsn)`` the source's ``acknowledge()``
    confirms; ``stats["changes"]`` counts the changes by operation.
    """
    end_lsn = prepare(engine, target)
    start_lsn = 0
    if isinstance(request_state, dict) and request_state.get("slot") == target.slot:
        start_lsn = parse_lsn(str(request_state["lsn"]))
    fields = [pa.field(c.name, c.arrow) for c in columns]
    schema = pa.schema([*fields, pa.field(OP_COLUMN, pa.string())])
    stats: dict[str, Any] = {"rows_read": 0, "batches": 0, "changes": {},
                             "state": None if not start_lsn else dict(request_state)}

    def open_batches() -> Iterator[pa.RecordBatch]:
        position: dict[str, Any] = {}
        names = [c.name for c in columns]

        def fill(rows: list[list[Any]], key: Sequence[str]) -> None:
            fill_unchanged(engine, target, names, rows, key)

        for batch in read_changes(connect_params, target, columns, schema, end_lsn, start_lsn,
                                  batch_size, position, fill):  # fmt: skip
            stats["rows_read"] += batch.num_rows
            stats["batches"] += 1
            yield batch
        stats["changes"] = position.get("changes", {})
        if position.get("lsn", 0) > start_lsn:
            stats["state"] = {"slot": target.slot, "lsn": format_lsn(position["lsn"])}
            stats["confirm"] = (target.slot, position["lsn"])

    return Relation(schema, open_batches, name=f"changes of {target.label}", stats=stats)
