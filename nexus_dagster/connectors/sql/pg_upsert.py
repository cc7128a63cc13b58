"""PostgreSQL upsert from a staging table in one statement that also counts what it did.

The general merge (``DatabaseConnector._merge``) de-duplicates the staged rows with
``DISTINCT ON`` (a sort of every staged row) and counts matched and unchanged rows with two
joins of the staging table against the target before merging. When the staged keys are unique,
which one cheap hash aggregate over the key columns tells, all of that collapses into::

    WITH merged AS (
        INSERT INTO target AS t (...) SELECT ... FROM staging
        ON CONFLICT (keys) DO UPDATE SET c = EXCLUDED.c, ...
        WHERE ROW(t.c, ...) IS DISTINCT FROM ROW(EXCLUDED.c, ...)
        RETURNING (xmax = 0) AS inserted)
    SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM merged

Inserted rows have ``xmax = 0``; updated rows carry the updating transaction in ``xmax``;
unchanged rows are not touched at all (no dead tuples, no index churn) and are the rest. The
target ends up exactly as with the general merge. Staged rows with duplicate keys return None
(the caller keeps its general merge, last staged row wins, and its counts): ``DO UPDATE``
refuses to touch a row twice, so the statement runs under a savepoint and that error rolls it
back (no separate pass over the keys); a key-only ``DO NOTHING`` checks the keys first.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

_ALIAS = "nexus_target"
#: "ON CONFLICT DO UPDATE command cannot affect row a second time" (cardinality_violation)
_AFFECT_TWICE = "21000"


def _keys_unique(connection: sa.Connection, staging_sql: str, keys_sql: Sequence[str]) -> bool:
    """Whether no key occurs twice in the staging table (a hash aggregate on the keys)."""
    keys = ", ".join(keys_sql)
    duplicate = connection.exec_driver_sql(
        f"SELECT 1 FROM {staging_sql} GROUP BY {keys} HAVING count(*) > 1 LIMIT 1"
    ).first()
    return duplicate is None


def merge(
    connection: sa.Connection, target: sa.Table, staging: sa.Table, columns: Sequence[str],
    keys: Sequence[str], rows: int,
) -> tuple[int, int, int, int] | None:  # fmt: skip
    """Merge ``staging`` into ``target`` and count inserted, updated and unchanged rows.

    Args:
        connection: the connection (and transaction) the staging table lives in.
        target: the target table (reflected).
        staging: the staging table holding the new rows.
        columns: the loaded columns.
        keys: the key columns (a primary key or unique constraint of the target).
        rows: how many rows were staged.

    Returns:
        (rows, inserted, updated, unchanged), or None when staged keys repeat (nothing was
        changed; use the general merge).
    """
    quote = connection.dialect.identifier_preparer.quote
    format_table = connection.dialect.identifier_preparer.format_table
    staging_sql, target_sql = format_table(staging), format_table(target)
    keys_sql = [quote(k) for k in keys]
    cols = ", ".join(quote(c) for c in columns)
    others = [quote(c) for c in columns if c not in keys]
    if others:
        assign = ", ".join(f"{c} = EXCLUDED.{c}" for c in others)
        old = ", ".join(f"{_ALIAS}.{c}" for c in others)
        new = ", ".join(f"EXCLUDED.{c}" for c in others)
        action = f"DO UPDATE SET {assign} WHERE ROW({old}) IS DISTINCT FROM ROW({new})"
    else:
        if not _keys_unique(connection, staging_sql, keys_sql):
            return None
        action = "DO NOTHING"
    statement = (
        f"WITH merged AS (INSERT INTO {target_sql} AS {_ALIAS} ({cols}) "
        f"SELECT {cols} FROM {staging_sql} ON CONFLICT ({', '.join(keys_sql)}) {action} "
        "RETURNING (xmax = 0) AS inserted) "
        "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) "
        "FROM merged"
    )
    try:
        with connection.begin_nested():
            inserted, updated = connection.exec_driver_sql(statement).one()
    except sa.exc.DBAPIError as exc:
        if getattr(exc.orig, "pgcode", None) != _AFFECT_TWICE:
            raise
        return None
    return rows, int(inserted), int(updated), rows - int(inserted) - int(updated)
