"""Checks of change data capture sources (``cdc: true``): a PostgreSQL table read through a
named publication and slot, the only source of its job, loaded into targets that apply changes.

Each problem names the file, line and field and says how to fix it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from nexus_dagster.spec.connections import resolve_connection
from nexus_dagster.spec.models import WriteMode

__all__ = ["cdc_problems"]

Problem = Callable[[tuple, str, str], None]

#: what a target of a cdc job may do with the changes: apply them (upsert, sync) or keep the
#: change log (append)
CDC_WRITE_MODES = (WriteMode.UPSERT, WriteMode.SYNC, WriteMode.APPEND)
_POSTGRES = ("postgresql", "postgres", "pg")


def _backend(params: Mapping[str, Any]) -> str | None:
    """The connection's database system as written (``type``, else the URL's scheme)."""
    kind = params.get("type")
    if not kind and isinstance(params.get("url"), str):
        kind = params["url"].split(":", 1)[0].split("+", 1)[0]
    return str(kind).lower() if kind else None


def cdc_problems(job: Any, connections: Mapping[str, Any], problem: Problem) -> None:
    """Report (through ``problem(loc, message, fix)``) every misuse of ``cdc`` in ``job``."""
    cdc_sources = [(i, s) for i, s in enumerate(job.sources) if s.cdc]
    for index, source in enumerate(job.sources):
        loc = ("sources", index)
        if not source.cdc:
            for name in ("publication", "slot"):
                if getattr(source, name) is not None:
                    problem((*loc, name), f"{name} is for change data capture (cdc: true)",
                            f"remove {name}, or add cdc: true")  # fmt: skip
            continue
        if source.source_type != "database":
            problem((*loc, "cdc"), f"cdc reads PostgreSQL tables, not {source.source_type} "
                    "sources", "use source_type: database with a PostgreSQL connection")
            continue
        known = source.connection is None or source.connection in connections
        backend = _backend(resolve_connection(source, connections)) if known else None
        if backend is not None and backend not in _POSTGRES:
            problem((*loc, "cdc"),
                    f"cdc needs PostgreSQL logical replication; connection "
                    f"{source.connection or 'connection_params'!r} is {backend}",
                    "use a PostgreSQL connection, or remove cdc and read with "
                    "incremental_column")  # fmt: skip
        if source.query:
            problem((*loc, "query"), "cdc reads the changes of a table, not of a query",
                    "give table: <the table> instead of query:")  # fmt: skip
        elif not source.table:
            problem(loc, "a cdc source needs table", "add table: <the table>")
        if source.incremental_column:
            problem((*loc, "incremental_column"),
                    "cdc keeps its position in the replication slot; incremental_column "
                    "would skip changes", "remove incremental_column (and incremental_value)")
        for name, example in (("publication", "orders_pub"), ("slot", "nexus_orders")):
            if getattr(source, name) is None:
                problem((*loc, "cdc"), f"a cdc source needs a {name} name (created when "
                        "missing)", f"add {name}: {example}")  # fmt: skip
        if source.after_load is not None:
            problem((*loc, "after_load"), "after_load is not for cdc sources (the slot is "
                    "confirmed once the targets committed)", "remove after_load")  # fmt: skip
    if not cdc_sources:
        return
    if len(job.sources) > 1:
        problem(("sources", cdc_sources[0][0], "cdc"),
                "a cdc source must be its job's only source (its rows are changes, not rows)",
                "move the other sources to a job of their own")  # fmt: skip
    if job.partitions is not None:
        problem(("partitions",), "a job with a cdc source cannot be partitioned",
                "remove partitions")  # fmt: skip
    for index, target in enumerate(job.targets):
        applies = target.write_mode in (WriteMode.UPSERT, WriteMode.SYNC)
        if applies and target.target_type != "database":
            problem(("targets", index, "write_mode"),
                    f"only database targets apply changes by _op; a {target.target_type} "
                    f"target with write_mode {target.write_mode.value} would store deletes as "
                    "rows", "use a database target, or write_mode append to keep the change "
                    "log")  # fmt: skip
        if target.write_mode not in CDC_WRITE_MODES:
            problem(("targets", index, "write_mode"),
                    f"write_mode {target.write_mode.value} cannot apply changes from a cdc "
                    "source", "use write_mode sync or upsert (inserts and updates upserted, "
                    "deletes deleted by key_columns), or append to keep the change log")
