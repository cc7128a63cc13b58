"""``write_mode: sync``: delete the target rows whose keys a full extract no longer has, in the
load's transaction, with a safety limit on how much one load may delete.

The rows are compared with the staging table the load filled (the same one the upsert merges
from), so the DELETE and the merge see the same extract::

    DELETE FROM target WHERE NOT EXISTS (SELECT 1 FROM staging WHERE staging.k = target.k)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from nexus_dagster.errors import LoadError

__all__ = ["check_fraction", "delete_missing", "keys_match"]


def keys_match(left: sa.Table, right: sa.Table | sa.Alias, keys: Sequence[str]) -> sa.ColumnElement:
    """``left.k = right.k AND ...`` for every key column."""
    return sa.and_(*[left.c[k] == right.c[k] for k in keys])


def check_fraction(removed: int, total: int, limit: float, what: str, label: str) -> None:
    """Refuse a load that would remove more than ``limit`` of ``total`` rows.

    Raises:
        LoadError: ``removed / total > limit``; the caller's transaction rolls back.
    """
    if total and removed / total > limit:
        raise LoadError(
            f"{what} {removed} of the {total} rows of {label} ({removed / total:.0%}), more "
            f"than max_delete_fraction {limit:g} allows; the load was refused and the target "
            "left as it was. If the extract really is complete, raise max_delete_fraction on "
            "the target (1 allows any share)"
        )


def delete_missing(
    connection: sa.Connection, target: sa.Table, staging: sa.Table, keys: Sequence[str],
    max_fraction: float, label: str,
) -> int:  # fmt: skip
    """Delete the rows of ``target`` whose keys are not in ``staging``; returns how many.

    Raises:
        LoadError: more than ``max_fraction`` of the target's rows would go.
    """
    missing = ~sa.exists(sa.select(sa.literal(1)).select_from(staging)
                         .where(keys_match(staging, target, keys)))
    total = connection.execute(sa.select(sa.func.count()).select_from(target)).scalar_one()
    gone = connection.execute(
        sa.select(sa.func.count()).select_from(target).where(missing)
    ).scalar_one()
    check_fraction(int(gone), int(total), max_fraction, "sync would delete", label)
    if not gone:
        return 0
    return int(connection.execute(sa.delete(target).where(missing)).rowcount or 0)
