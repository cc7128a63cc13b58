"""``write_mode: scd2``: slowly changing dimension, type 2, merged from the staging table in the
load's transaction.

The target keeps every version of a key: ``valid_from``/``valid_to`` bound its life and
``is_current`` marks the open one. With the extract staged (keys unique and not null), three
statements do the load, NULL-safe (``IS NOT DISTINCT FROM``, ``<=>`` on MySQL/MariaDB, whose
string comparison is made exact with ``BINARY``)::

    -- 1. a changed key closes its current version
    UPDATE target SET valid_to = :now, is_current = false
     WHERE is_current AND EXISTS (SELECT 1 FROM staging s
                                   WHERE s.k = target.k AND NOT (s.c <=> target.c AND ...))
    -- 2. close_missing: a key the extract no longer has closes its current version
    UPDATE target SET valid_to = :now, is_current = false
     WHERE is_current AND NOT EXISTS (SELECT 1 FROM staging s WHERE s.k = target.k)
    -- 3. every staged key without a current version (new or just closed) gets one
    INSERT INTO target (cols, valid_from, valid_to, is_current)
    SELECT cols, :now, NULL, true FROM staging s
     WHERE NOT EXISTS (SELECT 1 FROM target t WHERE t.k = s.k AND t.is_current)

Unchanged keys are not touched. ``:now`` is one timestamp for the whole load.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import sqlalchemy as sa

from nexus_dagster.connectors.base import Scd2Options
from nexus_dagster.connectors.sql.sync import check_fraction, keys_match
from nexus_dagster.errors import LoadError

__all__ = ["Scd2Counts", "merge", "version_fields"]


@dataclass(frozen=True)
class Scd2Counts:
    """What an SCD2 load did: staged rows, versions inserted, versions closed (changed keys
    plus missing keys), staged rows unchanged, keys closed because the extract lacks them."""

    rows: int
    inserted: int
    closed: int
    unchanged: int
    closed_missing: int


def version_fields(options: Scd2Options) -> list[pa.Field]:
    """The version columns a new SCD2 table gets after the data columns."""
    return [
        pa.field(options.valid_from, pa.timestamp("us", tz="UTC")),
        pa.field(options.valid_to, pa.timestamp("us", tz="UTC")),
        pa.field(options.is_current, pa.bool_()),
    ]


def _now(backend: str) -> dt.datetime:
    """The load time: aware UTC for PostgreSQL, naive UTC wall time elsewhere (the sessions
    run in UTC; SQLite and MySQL drivers drop the zone)."""
    now = dt.datetime.now(dt.UTC)
    return now if backend == "postgresql" else now.replace(tzinfo=None)


def merge(
    connection: sa.Connection, target: sa.Table, staging: sa.Table, columns: Sequence[str],
    keys: Sequence[str], rows: int, options: Scd2Options, backend: str, label: str,
    max_fraction: float,
) -> Scd2Counts:  # fmt: skip
    """Apply the staged extract to ``target`` as SCD2 versions (see the module docstring).

    Raises:
        LoadError: a version column is missing from the table or present in the data,
            ``compare_columns`` names a column the data lacks, a staged key is null or
            repeats, or close_missing would close more than ``max_fraction`` of the current
            versions. The caller's transaction rolls back, leaving the target as it was.
    """
    versions = (options.valid_from, options.valid_to, options.is_current)
    clash = [c for c in versions if c in columns]
    if clash:
        raise LoadError(
            f"the data loaded into {label!r} has column(s) {clash}, which scd2 uses for "
            "versions; rename them in a map step or set other names under scd2:"
        )
    absent = [c for c in versions if c not in target.c]
    if absent:
        raise LoadError(
            f"table {label!r} has no version column(s) {absent} for write_mode scd2; add them "
            f"(timestamps and a boolean) or name the existing ones under scd2:"
        )
    compare = list(options.compare_columns or [c for c in columns if c not in keys])
    unknown = [c for c in compare if c not in columns]
    if unknown:
        raise LoadError(
            f"scd2 compare_columns {unknown} are not in the data loaded into {label!r}; data "
            f"columns: {list(columns)}"
        )
    _check_keys(connection, staging, keys, label)

    def exact(column: sa.ColumnElement) -> sa.ColumnElement:
        # MySQL collations compare 'b' = 'B': compare bytes
        if backend != "mysql":
            return column
        from sqlalchemy.dialects import mysql as mysql_dialect

        return sa.cast(column, mysql_dialect.BINARY())

    now = sa.bindparam("nexus_now", _now(backend), type_=target.c[options.valid_from].type)
    current = target.c[options.is_current] == sa.true()
    close = {options.valid_to: now, options.is_current: sa.false()}
    same = [exact(staging.c[c]).is_not_distinct_from(exact(target.c[c])) for c in compare]
    closed = 0
    if same:
        changed = sa.exists(sa.select(sa.literal(1)).select_from(staging).where(
            keys_match(staging, target, keys), sa.not_(sa.and_(*same))))
        closed = _rowcount(connection.execute(
            sa.update(target).where(current, changed).values(close)))
    closed_missing = 0
    if options.close_missing:
        missing = ~sa.exists(sa.select(sa.literal(1)).select_from(staging)
                             .where(keys_match(staging, target, keys)))
        total = connection.execute(
            sa.select(sa.func.count()).select_from(target).where(current)).scalar_one()
        gone = connection.execute(
            sa.select(sa.func.count()).select_from(target).where(current, missing)).scalar_one()
        check_fraction(int(gone), int(total), max_fraction, "scd2 close_missing would close",
                       f"the current versions of {label!r}")
        if gone:
            closed_missing = _rowcount(connection.execute(
                sa.update(target).where(current, missing).values(close)))
    other = target.alias("nexus_current")
    has_current = sa.exists(sa.select(sa.literal(1)).select_from(other).where(
        keys_match(other, staging, keys), other.c[options.is_current] == sa.true()))
    source = sa.select(
        *[staging.c[c] for c in columns], now, sa.null(), sa.true()
    ).where(~has_current)
    inserted = _rowcount(connection.execute(
        sa.insert(target).from_select([*columns, *versions], source)))
    return Scd2Counts(rows=rows, inserted=inserted, closed=closed + closed_missing,
                      unchanged=rows - inserted, closed_missing=closed_missing)


def _rowcount(result: sa.CursorResult) -> int:
    return int(result.rowcount or 0)


def _check_keys(
    connection: sa.Connection, staging: sa.Table, keys: Sequence[str], label: str
) -> None:
    """Staged keys must be unique and not null: one new version per key and load."""
    key_cols = [staging.c[k] for k in keys]
    null = connection.execute(
        sa.select(sa.literal(1)).select_from(staging)
        .where(sa.or_(*[c.is_(None) for c in key_cols])).limit(1)
    ).first()
    if null is not None:
        raise LoadError(
            f"the data loaded into {label!r} has a null in key column(s) {list(keys)}; an scd2 "
            "key must not be null (filter those rows or fill the key)"
        )
    repeated = connection.execute(
        sa.select(*key_cols).group_by(*key_cols).having(sa.func.count() > 1).limit(1)
    ).first()
    if repeated is not None:
        raise LoadError(
            f"the data loaded into {label!r} has key {tuple(repeated)} more than once; an scd2 "
            "load takes one row per key (add a deduplicate step on the key columns)"
        )
