"""Row rules in a run: which output each target loads, and in which order targets commit.

The rows the good targets load (one output of the chain) are split once by
:func:`~nexus_dagster.transforms.rules_sql.split_rows` before any target is written: the good
rows become that output, the rejected rows the output :data:`QUARANTINE_OUTPUT` that the
``quarantine_target`` loads. An ``action: fail`` rule that rows break raises there, so no
target is touched. The quarantine target commits first: when it fails, no other target has
been written.

Example:
    >>> [t.name for t in load_order(job)]  # doctest: +SKIP
    ['rejects', 'orders_clean']
"""

from __future__ import annotations

from nexus_dagster.spec.models import DataTarget, ETLJob

__all__ = ["QUARANTINE_OUTPUT", "load_order", "output_key"]

#: the output key of the rejected rows (a name no step or source can have)
QUARANTINE_OUTPUT = "<quarantine>"


def load_order(job: ETLJob) -> list[DataTarget]:
    """The job's targets in commit order: the quarantine target first, then spec order."""
    return sorted(job.targets, key=lambda t: t.name != job.quarantine_target)


def output_key(job: ETLJob, target: DataTarget, last: str | None) -> str | None:
    """The output a target loads: the rejected rows for the quarantine target, else its
    ``input`` (the last step by default)."""
    if job.rules and target.name == job.quarantine_target:
        return QUARANTINE_OUTPUT
    return target.input or last

