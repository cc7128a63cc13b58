"""A decoder of PostgreSQL's built-in ``pgoutput`` logical replication messages (protocol 1).

Only what change data capture needs: Begin, Commit, Relation, Insert, Update, Delete (Origin,
Type and Truncate are recognised; a Truncate is an error for the reader to report). Values
arrive as text, as PostgreSQL prints them; :class:`Change` keeps them as ``str`` (or None for
SQL NULL, :data:`UNCHANGED` for a TOASTed value an UPDATE did not touch), and the reader parses
them with the driver's own type casters so they match a plain read of the table.

Why pgoutput rather than ``test_decoding`` (both are built in): its messages are length-framed
binary (no parsing of quoted text that a value could imitate), and its Relation message names
each column's type OID and whether it belongs to the replica identity, which is what typing the
values and deleting by key need; ``wal2json`` is not installed on a stock server.

Message layout: https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html

Example:
    >>> decoder = PgOutputDecoder()
    >>> message = decoder.decode(payload)  # doctest: +SKIP
    >>> if isinstance(message, Change): print(message.op, message.values)  # doctest: +SKIP
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "UNCHANGED",
    "Begin",
    "Change",
    "Commit",
    "PgOutputDecoder",
    "RelationInfo",
    "Truncate",
]


class _Unchanged:
    """A TOASTed column value an UPDATE left as it was; pgoutput does not send it."""

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED = _Unchanged()


@dataclass(frozen=True)
class RelationInfo:
    """A table as the stream describes it: ``columns`` (name, type OID) and ``key`` (the
    replica identity columns)."""

    oid: int
    namespace: str
    name: str
    replica_identity: str
    columns: tuple[tuple[str, int], ...]
    key: tuple[str, ...]


@dataclass(frozen=True)
class Begin:
    """A transaction starts; ``final_lsn`` is where it commits."""

    final_lsn: int
    xid: int


@dataclass(frozen=True)
class Commit:
    """A transaction ended; the slot may be confirmed up to ``end_lsn``."""

    commit_lsn: int
    end_lsn: int


@dataclass(frozen=True)
class Change:
    """One row change: ``op`` is ``insert``, ``update`` or ``delete``; ``values`` maps column
    names to text values (a delete carries only the key columns); ``old_key`` is the previous
    key of an update that changed the key (None otherwise)."""

    relation: RelationInfo
    op: str
    values: dict[str, object]
    old_key: dict[str, object] | None = None


@dataclass(frozen=True)
class Truncate:
    """The tables with these OIDs were truncated."""

    oids: tuple[int, ...]


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.at = 0

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.at)
        self.at += struct.calcsize(fmt)
        return value

    def byte(self) -> str:
        value = self.data[self.at : self.at + 1].decode("ascii")
        self.at += 1
        return value

    def string(self) -> str:
        end = self.data.index(b"\x00", self.at)
        value = self.data[self.at : end].decode("utf-8")
        self.at = end + 1
        return value

    def tuple_data(self, names: list[str]) -> dict[str, object]:
        count = self.take("!h")
        values: dict[str, object] = {}
        for index in range(count):
            kind = self.byte()
            name = names[index] if index < len(names) else f"#{index}"
            if kind == "n":
                values[name] = None
            elif kind == "u":
                values[name] = UNCHANGED
            elif kind == "t":
                length = self.take("!i")
                values[name] = self.data[self.at : self.at + length].decode("utf-8")
                self.at += length
            else:
                raise ValueError(f"pgoutput: unknown tuple value kind {kind!r}")
        return values


class PgOutputDecoder:
    """Turns pgoutput payloads into :class:`Begin`, :class:`Commit`, :class:`Change`,
    :class:`Truncate` (or None for messages CDC ignores), remembering Relation messages."""

    def __init__(self) -> None:
        self.relations: dict[int, RelationInfo] = {}

    def decode(self, payload: bytes) -> Begin | Commit | Change | Truncate | None:
        """One message; Relation messages are remembered and give None."""
        reader = _Reader(payload)
        kind = reader.byte()
        if kind == "B":
            final_lsn, _timestamp, xid = reader.take("!Q"), reader.take("!q"), reader.take("!I")
            return Begin(final_lsn, xid)
        if kind == "C":
            reader.take("!B")
            return Commit(reader.take("!Q"), reader.take("!Q"))
        if kind == "R":
            self._relation(reader)
            return None
        if kind in "IUD":
            return self._change(kind, reader)
        if kind == "T":
            count = reader.take("!i")
            reader.take("!B")
            return Truncate(tuple(reader.take("!I") for _ in range(count)))
        if kind in "OYM":  # origin, type, generic logical message: nothing to apply
            return None
        raise ValueError(f"pgoutput: unknown message type {kind!r}")

    def _relation(self, reader: _Reader) -> None:
        oid = reader.take("!I")
        namespace, name = reader.string(), reader.string()
        identity = reader.byte()
        columns, key = [], []
        for _ in range(reader.take("!h")):
            flags = reader.take("!B")
            column = reader.string()
            type_oid = reader.take("!I")
            reader.take("!i")  # type modifier
            columns.append((column, type_oid))
            if flags & 1:
                key.append(column)
        self.relations[oid] = RelationInfo(oid, namespace, name, identity, tuple(columns),
                                           tuple(key))  # fmt: skip

    def _change(self, kind: str, reader: _Reader) -> Change:
        relation = self.relations[reader.take("!I")]
        names = [name for name, _ in relation.columns]
        marker = reader.byte()
        if kind == "I":
            return Change(relation, "insert", reader.tuple_data(names))
        old: dict[str, object] | None = None
        if marker in "KO":
            old = reader.tuple_data(names)
            if kind == "U":
                marker = reader.byte()
        if kind == "D":  # the replica identity's columns; the others arrive as nulls
            return Change(relation, "delete", old or {})
        values = reader.tuple_data(names)
        for name, value in values.items():  # REPLICA IDENTITY FULL sends the old values too
            if value is UNCHANGED and old is not None and old.get(name) is not UNCHANGED:
                values[name] = old.get(name)
        old_key = None
        if old is not None and relation.key:
            before = {k: old.get(k) for k in relation.key}
            if before != {k: values.get(k) for k in relation.key}:
                old_key = before
        return Change(relation, "update", values, old_key)
