"""The Dagster-free run: open endpoints, cursors, events, and an ordered list of plans.

Example:
    >>> from nexus_dagster.run import execute
    >>> events = list(execute(spec, project.connections))  # doctest: +SKIP
"""

from nexus_dagster.run.events import Event, SourceExtracted, TargetLoaded
from nexus_dagster.run.plan import RunContext, execute, register_plan

__all__ = ["Event", "RunContext", "SourceExtracted", "TargetLoaded", "execute", "register_plan"]
