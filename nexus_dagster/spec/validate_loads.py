"""Checks of what loads do besides adding rows: ``sync`` and ``scd2`` write modes,
``delete_where`` retention on targets and ``after_load`` on sources.

Each problem names the file, line and field and says how to fix it; capabilities come from the
connector registry (``supports_delete_where``, ``after_load_actions``).
"""

from __future__ import annotations

from collections.abc import Callable

from nexus_dagster.connectors.registry import connector_class
from nexus_dagster.spec.connections import endpoint_type
from nexus_dagster.spec.models import WriteMode
from nexus_dagster.transforms.expressions import expression_error

__all__ = ["load_problems"]

Problem = Callable[[tuple, str, str], None]


def _capabilities(endpoint) -> type | None:
    try:
        return connector_class(endpoint_type(endpoint))
    except Exception:  # an unknown or broken type is reported by the endpoint checks
        return None


def load_problems(job, problem: Problem) -> None:
    """Report (through ``problem(loc, message, fix)``) every misuse of sync, scd2,
    delete_where and after_load in ``job``."""
    incremental = [s.name for s in job.sources if s.incremental_column]
    for index, target in enumerate(job.targets):
        loc = ("targets", index)
        full_extract = target.write_mode == WriteMode.SYNC or (
            target.write_mode == WriteMode.SCD2 and target.scd2_settings().close_missing
        )
        what = ("write_mode sync" if target.write_mode == WriteMode.SYNC
                else "scd2 close_missing")
        if full_extract and incremental:
            problem(
                (*loc, "write_mode"),
                f"{what} deletes the rows a full extract no longer has, but source(s) "
                f"{incremental} read incrementally, so every row they skip would be removed",
                "remove incremental_column from the sources, or use write_mode upsert",
            )
        if full_extract and job.partitions is not None:
            problem(
                (*loc, "write_mode"),
                f"{what} needs a full extract, and a partitioned job reads one window per run",
                "remove partitions, or use write_mode upsert",
            )
        cls = _capabilities(target)
        if target.delete_where is not None:
            if cls is not None and not cls.supports_delete_where:
                problem(
                    (*loc, "delete_where"),
                    f"{target.target_type} targets cannot delete rows (delete_where)",
                    "remove delete_where; it is for database targets",
                )
            error = expression_error(target.delete_where)
            if error:
                problem((*loc, "delete_where"), error,
                        "write a condition such as: order_date < '2024-01-01'")
    for index, source in enumerate(job.sources):
        action = source.after_load
        if action is None:
            continue
        loc = ("sources", index, "after_load")
        cls = _capabilities(source)
        wanted = "delete" if action.delete else "move_to"
        if cls is not None and wanted not in cls.after_load_actions:
            can = ", ".join(sorted(cls.after_load_actions)) or "nothing"
            problem(
                (*loc, wanted),
                f"after_load {wanted} is not possible on a {source.source_type} source "
                f"(it can do: {can})",
                "remove after_load, or use an action the source supports",
            )
            continue
        if action.key_columns and not source.table:
            problem(
                (*loc, "key_columns"),
                "after_load key_columns are for database table sources",
                "remove key_columns",
            )
        if cls is not None and "move_to" not in cls.after_load_actions and action.delete:
            # a row source: it deletes the rows it read, so it must know which
            if not source.table:
                problem(
                    loc,
                    "after_load delete on a database source needs table (a query's rows "
                    "cannot be deleted)",
                    "read with table: instead of query:, or remove after_load",
                )
            elif not (action.key_columns or source.incremental_column):
                problem(
                    loc,
                    "after_load delete must know which rows this run read: give "
                    "after_load.key_columns or the source's incremental_column",
                    "add key_columns: [id] under after_load",
                )
