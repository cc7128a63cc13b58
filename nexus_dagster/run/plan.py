"""A run as an ordered list of plans: the first plan that takes the job runs it.

Each planner answers ``planner(context) -> Plan | None``; a plan's :meth:`Plan.run` yields the
run's events (:mod:`nexus_dagster.run.events`): a ``TargetLoaded`` per committed target, then a
``SourceExtracted`` per source. The PostgreSQL COPY pipe (:mod:`.pg_pipe`) comes first, the
general Arrow/DuckDB path (:mod:`.general`) last; it takes every job. A new fast path is a new
planner put before the general one with :func:`register_plan`, not a special case elsewhere.

Example:
    >>> from nexus_dagster.run import execute
    >>> for event in execute(spec, project.connections, run_id="r1"):  # doctest: +SKIP
    ...     print(event)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from nexus_dagster.connectors.base import Connector
from nexus_dagster.run.endpoints import open_endpoint
from nexus_dagster.run.events import Event
from nexus_dagster.spec.models import DataSource, DataTarget

__all__ = ["PLANNERS", "Plan", "Planner", "RunContext", "execute", "register_plan"]


@dataclass
class RunContext:
    """Everything a plan may use to decide and to run.

    Attributes:
        spec: the job and where it came from (a loaded ``JobSpec``).
        connections: the project's named connections.
        stored_cursors: source name -> the cursor kept from the last committed run.
        stored_states: source name -> the connector state kept from the last committed run.
        run_id: the Dagster run id (names appended part files), or None.
        idempotency_scope: the root run id of a retried or re-executed run (scopes the
            idempotency keys targets send; see ``WriteRequest.idempotency_scope``), or None
            for ``run_id``.
        log: a logger-like object with ``info``/``warning``, or None.
        window: (start, end) of a partition run; sources read ``start <= column < end`` and
            targets replace that window; cursors are not advanced.
        source_files: source name -> the one file to read instead of its ``file_path``.
        opener: how an endpoint becomes a connector; by default
            :func:`~nexus_dagster.run.endpoints.open_endpoint` (the Dagster layer passes one
            that asks its resources).
        staged: source name -> its staged extraction (a
            :class:`~nexus_dagster.run.staging.StagedSource`) in the load step of a job split
            into steps: the general plan loads those rows instead of reading the source, after
            checking that the source's stored cursor is still the one the extraction started
            from.
    """

    spec: Any
    connections: Mapping[str, Any] = field(default_factory=dict)
    stored_cursors: Mapping[str, Mapping[str, Any] | None] = field(default_factory=dict)
    stored_states: Mapping[str, Mapping[str, Any] | None] = field(default_factory=dict)
    run_id: str | None = None
    idempotency_scope: str | None = None
    log: Any = None
    window: tuple[Any, Any] | None = None
    source_files: Mapping[str, str] = field(default_factory=dict)
    opener: Callable[[DataSource | DataTarget], Connector] | None = None
    staged: Mapping[str, Any] = field(default_factory=dict)

    def open(self, endpoint: DataSource | DataTarget) -> Connector:
        """The connector of one of the job's sources or targets."""
        if self.opener is not None:
            return self.opener(endpoint)
        return open_endpoint(endpoint, self.spec, self.connections)


class Plan(Protocol):
    """A way to run one job; :meth:`run` yields its events and releases what it opened."""

    def run(self) -> Iterator[Event]: ...


Planner = Callable[[RunContext], Plan | None]

#: planners tried in order, as "module:function" (imported on first use); the general path,
#: which takes every job, is last
PLANNERS: list[str | Planner] = [
    "nexus_dagster.run.pg_pipe:plan",
    "nexus_dagster.run.general:plan",
]


GENERAL_PLANNER = "nexus_dagster.run.general:plan"


def register_plan(planner: str | Planner, *, before: str = GENERAL_PLANNER) -> None:
    """Try ``planner`` (a function or ``"module:function"``) before ``before`` (the general
    path by default)."""
    PLANNERS.insert(PLANNERS.index(before), planner)


def _load(planner: str | Planner) -> Planner:
    if callable(planner):
        return planner
    module, _, name = planner.partition(":")
    return getattr(importlib.import_module(module), name)


def execute(
    spec: Any,
    connections: Mapping[str, Any] | None = None,
    *,
    stored_cursors: Mapping[str, Mapping[str, Any] | None] | None = None,
    stored_states: Mapping[str, Mapping[str, Any] | None] | None = None,
    run_id: str | None = None,
    idempotency_scope: str | None = None,
    log: Any = None,
    window: tuple[Any, Any] | None = None,
    source_files: Mapping[str, str] | None = None,
    opener: Callable[[DataSource | DataTarget], Connector] | None = None,
    staged: Mapping[str, Any] | None = None,
) -> Iterator[Event]:
    """Run one job with the first plan that takes it (see :class:`RunContext` for the
    arguments): yields a ``TargetLoaded`` per committed target, then a ``SourceExtracted`` per
    source, only after every target committed, so cursors never run ahead of the data."""
    context = RunContext(
        spec=spec,
        connections=connections or {},
        stored_cursors=stored_cursors or {},
        stored_states=stored_states or {},
        run_id=run_id,
        idempotency_scope=idempotency_scope,
        log=log,
        window=window,
        source_files=source_files or {},
        opener=opener,
        staged=staged or {},
    )
    for planner in PLANNERS:
        chosen = _load(planner)(context)
        if chosen is not None:
            yield from chosen.run()
            return
    raise RuntimeError("no plan took the job; the general plan must be the last planner")
