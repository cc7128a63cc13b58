"""The pgoutput decoder: relations remembered, inserts/updates/deletes as changes, a key
change carries the old key, and an unchanged TOASTed value is taken from the old row when
REPLICA IDENTITY FULL sends it (and stays UNCHANGED otherwise)."""

from __future__ import annotations

import struct

from nexus_dagster.connectors.sql.pgoutput import (
    UNCHANGED,
    Begin,
    Change,
    Commit,
    PgOutputDecoder,
)


def _relation(identity: bytes = b"d") -> bytes:
    columns = [(1, b"id", 23), (0, b"body", 25)]
    body = b"".join(struct.pack("!B", f) + n + b"\0" + struct.pack("!Ii", oid, -1)
                    for f, n, oid in columns)
    return b"R" + struct.pack("!I", 7) + b"public\0orders\0" + identity + \
        struct.pack("!h", len(columns)) + body


def _tuple(*values: str | None) -> bytes:
    out = struct.pack("!h", len(values))
    for value in values:
        if value is None:
            out += b"n"
        elif value == "<u>":
            out += b"u"
        else:
            out += b"t" + struct.pack("!i", len(value.encode())) + value.encode()
    return out


def test_begin_commit_and_row_changes_decode() -> None:
    decoder = PgOutputDecoder()
    assert decoder.decode(_relation()) is None
    assert decoder.relations[7].key == ("id",)
    assert decoder.decode(b"B" + struct.pack("!QqI", 100, 0, 5)) == Begin(100, 5)
    insert = decoder.decode(b"I" + struct.pack("!I", 7) + b"N" + _tuple("1", "héllo"))
    assert isinstance(insert, Change)
    assert (insert.op, insert.values) == ("insert", {"id": "1", "body": "héllo"})
    delete = decoder.decode(b"D" + struct.pack("!I", 7) + b"K" + _tuple("1", None))
    assert (delete.op, delete.values) == ("delete", {"id": "1", "body": None})
    assert decoder.decode(b"C" + struct.pack("!BQQq", 0, 100, 120, 0)) == Commit(100, 120)


def test_an_update_of_the_key_carries_the_old_key() -> None:
    decoder = PgOutputDecoder()
    decoder.decode(_relation())
    update = decoder.decode(b"U" + struct.pack("!I", 7) + b"K" + _tuple("1", None) + b"N"
                            + _tuple("2", "x"))
    assert (update.op, update.values, update.old_key) == ("update", {"id": "2", "body": "x"},
                                                          {"id": "1"})
    same_key = decoder.decode(b"U" + struct.pack("!I", 7) + b"N" + _tuple("2", "y"))
    assert same_key.old_key is None


def test_an_unchanged_toasted_value_comes_from_the_old_row_when_it_is_sent() -> None:
    decoder = PgOutputDecoder()
    decoder.decode(_relation(b"f"))
    full = decoder.decode(b"U" + struct.pack("!I", 7) + b"O" + _tuple("1", "long text") + b"N"
                          + _tuple("1", "<u>"))
    assert full.values == {"id": "1", "body": "long text"}
    default = PgOutputDecoder()
    default.decode(_relation())
    bare = default.decode(b"U" + struct.pack("!I", 7) + b"N" + _tuple("1", "<u>"))
    assert bare.values["body"] is UNCHANGED
