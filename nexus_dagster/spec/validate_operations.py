"""Project checks of the operational spec parts: checks, partitions, triggers.

Called from :mod:`nexus_dagster.spec.validate`; each problem names the file, line, field and
the fix, like every other spec problem.
"""

from __future__ import annotations

from nexus_dagster.connectors.registry import connector_class
from nexus_dagster.errors import SpecError, SpecProblem
from nexus_dagster.transforms.expressions import expression_error


def problem_at(spec, loc: tuple, message: str, fix: str) -> SpecProblem:
    file, line = spec.where(loc)
    field = ""
    for part in loc:
        field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else str(part))
    return SpecProblem(message, file=file, line=line, field=field, fix=fix)


def _connector(kind: str):
    try:
        return connector_class(kind)
    except (SpecError, ImportError):
        return None  # reported by the endpoint checks


def operations_problems(spec) -> list[SpecProblem]:
    """Problems of ``checks`` and ``partitions`` in one job."""
    job = spec.job
    problems: list[SpecProblem] = []
    targets = {t.name: t for t in job.targets}
    for index, check in enumerate(job.checks):
        if check.target is not None and check.target not in targets:
            problems.append(problem_at(
                spec, ("checks", index, "target"),
                f"check target {check.target!r} is not a target of this job",
                f"use one of: {', '.join(targets)}, or leave target out to check every target",
            ))
        if check.check.value == "expression":
            error = expression_error(check.expression or "")
            if error:
                problems.append(problem_at(spec, ("checks", index, "expression"), error,
                                         "use the filter condition syntax"))
    for name, target in targets.items():
        cls = _connector(target.target_type)
        if job.checks and cls is not None and not (cls.is_source and cls.supports_read_back):
            problems.append(problem_at(
                spec, ("checks",), f"target {name!r} cannot be read back, so it cannot be checked",
                "give the checks a target: that is readable (a database or file target)",
            ))
    if job.partitions is not None:
        loc = ("partitions",)
        if not any(s.incremental_column for s in job.sources):
            problems.append(problem_at(
                spec, loc, "partitions need a source with incremental_column (the time column)",
                "add incremental_column: <timestamp column> to the source",
            ))
        for index, target in enumerate(job.targets):
            cls = _connector(target.target_type)
            if cls is not None and not cls.supports_replace_range:
                problems.append(problem_at(
                    spec, ("targets", index, "target_type"),
                    f"{target.target_type} targets cannot replace a partition's rows",
                    "use a database target for partitioned jobs, or remove partitions",
                ))
            if target.write_mode.value == "overwrite":
                problems.append(problem_at(
                    spec, ("targets", index, "write_mode"),
                    "write_mode overwrite would delete the other partitions",
                    "use append (each partition run replaces its own window) or upsert",
                ))
        if job.trigger is not None:
            problems.append(problem_at(
                spec, ("trigger",), "a partitioned job cannot be triggered by another job",
                "remove trigger, or remove partitions and use the incremental cursor",
            ))
    return problems


def trigger_problems(spec, project) -> list[SpecProblem]:
    """``trigger.after`` must name other jobs of the project."""
    job = spec.job
    if job.trigger is None:
        return []
    keys = {s.job.key for s in project.jobs}
    problems = []
    for index, name in enumerate(job.trigger.after):
        if name == job.key or name not in keys:
            others = ", ".join(sorted(keys - {job.key})) or "none"
            problems.append(problem_at(
                spec, ("trigger", "after", index),
                f"trigger after {name!r}: " + ("a job cannot trigger itself" if name == job.key
                                               else "no such job in this project"),
                f"use one of: {others}",
            ))
    return problems
