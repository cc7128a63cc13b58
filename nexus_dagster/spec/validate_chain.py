"""Checks of what each step and target reads: a join's ``left``/``right``, a step's ``input``
and a target's ``input`` must name a source or an earlier step that is available there.

A step reads sources and earlier steps; after a custom_code step, steps read sources, that
step and the steps after it (the chain is split there). A target reads any source (its raw
rows) or any enabled step. Each problem names the field, the value and the valid names.

Example:
    >>> problems = []
    >>> chain_problems(job, lambda loc, message, fix: problems.append((loc, message, fix)))
"""

from __future__ import annotations

from collections.abc import Callable

from nexus_dagster.spec.models import ETLJob, TransformationType
from nexus_dagster.transforms.steps import step_reads

__all__ = ["chain_problems"]

#: (field path, message, fix) -> records one problem
Report = Callable[[tuple, str, str], None]


def chain_problems(job: ETLJob, problem: Report) -> None:
    """Report every reference to an unknown, later or unavailable source or step."""
    sources = [s.name for s in job.sources]
    steps = job.ordered_transformations()
    positions = {id(t): i for i, t in enumerate(job.transformations)}
    disabled = {t.name for t in job.transformations if not t.enabled}
    later = {s.name: s for s in steps}
    available: list[str] = list(sources)
    hidden: dict[str, str] = {}  # step name -> the custom_code step that hides it
    for step in steps:
        loc = ("transformations", positions[id(step)])
        del later[step.name]
        for field, ref in step_reads(step).items():
            if ref in available:
                continue
            what = "join " + field[-1] if field[0] == "config" else "input"
            if ref in hidden:
                message = (
                    f"transformation {step.name!r}: {what} {ref!r} runs before custom_code "
                    f"step {hidden[ref]!r}, which splits the chain"
                )
            elif ref in later:
                message = (
                    f"transformation {step.name!r}: {what} {ref!r} is a later step (it runs "
                    f"after {step.name!r})"
                )
            elif ref in disabled:
                message = f"transformation {step.name!r}: {what} {ref!r} is disabled"
            elif ref == step.name:
                message = f"transformation {step.name!r}: {what} is the step itself"
            else:
                message = (
                    f"transformation {step.name!r}: {what} {ref!r} is not a source or an "
                    "earlier step"
                )
            problem((*loc, *field), message, f"use one of: {', '.join(available)}")
        if step.transformation_type == TransformationType.CUSTOM_CODE:
            for name in available:
                if name not in sources:
                    hidden[name] = step.name
            available = list(sources)
        available.append(step.name)
    readable = [*sources, *(s.name for s in steps)]
    for index, target in enumerate(job.targets):
        if target.input is None or target.input in readable:
            continue
        reason = "is disabled" if target.input in disabled else "is not a source or a step"
        problem(
            ("targets", index, "input"),
            f"target {target.name!r}: input {target.input!r} {reason}",
            f"use one of: {', '.join(readable)} (default: the last step)",
        )
