"""Unknown columns in a job's steps and target keys, against the known columns of its sources.

Given the columns of the sources whose schema could be read (``nexus validate`` reads local
files, and database tables with ``--connect``: see
:func:`nexus_dagster.run.source_schemas.column_check`), the columns flow through the steps by
the column lineage rules of the step table (a map adds its outputs, an aggregate keeps its
keys and outputs, a join combines its sides, ...). Every column an expression or a config
field names must exist where the step reads it; a source whose columns are not known, a pivot
and custom code make the columns after them unknown, and nothing is reported there.

Example:
    >>> problems = column_problems(spec, {"orders": ["id", "amount"]})  # doctest: +SKIP
    >>> print(problems[0])  # doctest: +SKIP
    job.yaml:9: transformations[0].config.condition: transformation 'paid': unknown column
    'amout' (fix: did you mean 'amount'? columns here: id, amount)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from nexus_dagster.errors import ExpressionError, SpecProblem, did_you_mean, field_path
from nexus_dagster.spec.validate_rules import rule_columns
from nexus_dagster.transforms.expressions import referenced_columns
from nexus_dagster.transforms.steps import ColumnSources, step_kind

__all__ = ["column_problems"]

_SHOWN = 30  # columns listed in a fix


def _unknown() -> ColumnSources:
    return ColumnSources({}, set())


def _known(columns: Iterable[str]) -> ColumnSources:
    return ColumnSources({c: set() for c in columns})


def column_problems(spec, source_columns: Mapping[str, Sequence[str] | None]) -> list[SpecProblem]:
    """Every column a step or a target's ``key_columns`` names that does not exist there.

    Args:
        spec: the loaded job (:class:`~nexus_dagster.spec.loader.JobSpec`).
        source_columns: source name -> its columns; None (or missing) when not known.
    """
    job = spec.job
    problems: list[SpecProblem] = []

    def report(loc: tuple, owner: str, column: str, frame: ColumnSources) -> None:
        names = list(frame.deps)
        hint = did_you_mean(column, names)
        shown = ", ".join(names[:_SHOWN]) + (", ..." if len(names) > _SHOWN else "")
        file, line = spec.where(loc)
        field = field_path(loc)
        problems.append(SpecProblem(f"{owner}: unknown column {column!r}", file=file, line=line,
                                    field=field, fix=f"{hint}columns here: {shown or 'none'}"))

    named = {s.name: (_known(source_columns[s.name]) if source_columns.get(s.name) is not None
                      else _unknown()) for s in job.sources}
    current = ColumnSources.union(named.values())
    if any(f.rest is not None for f in named.values()):
        current = _unknown()
    positions = {id(t): i for i, t in enumerate(job.transformations)}
    for step in job.ordered_transformations():
        loc = ("transformations", positions[id(step)])
        owner = f"transformation {step.name!r}"
        kind = step_kind(step)
        if step.input is not None:
            current = named.get(step.input, _unknown())
        sides = {side: named.get(name, _unknown())
                 for side, name in kind.inputs(step.config).items()}
        if current.rest is None:
            visible = list(current.deps)  # a map's expressions see the mappings before them
            for expression in kind.expressions(step.config):
                try:
                    used = referenced_columns(expression.text)
                except ExpressionError:
                    used = set()  # reported by the expression check
                for column in sorted(used - set(visible)):
                    report((*loc, "config", *expression.field), owner, column, _known(visible))
                if expression.output is not None and expression.output not in visible:
                    visible.append(expression.output)
        for use in kind.columns(step.config):
            frame = sides.get(use.side, _unknown()) if use.side else current
            if frame.rest is None and use.column not in frame.deps:
                report((*loc, "config", *use.field), owner, use.column, frame)
        try:
            after = kind.lineage(current, named, step.config)
        except ExpressionError:
            after = _unknown()  # the expression check reports it; columns unknown from here
        if any(f.rest is not None for f in sides.values()) and after.rest is None:
            after = _unknown()
        current = named[step.name] = after
    for index, target in enumerate(job.targets):
        frame = current if target.input is None else named.get(target.input, _unknown())
        if frame.rest is not None:
            continue
        for position, key in enumerate(target.key_columns):
            if key not in frame.deps:
                report(("targets", index, "key_columns", position),
                       f"target {target.name!r}", key, frame)
    # rules check the rows of the targets other than the quarantine target
    good = [t for t in job.targets if t.name != job.quarantine_target] or job.targets
    frame = current if good[0].input is None else named.get(good[0].input, _unknown())
    for index, rule in enumerate(job.rules if frame.rest is None else []):
        for field, column in rule_columns(rule):
            if column not in frame.deps:
                report(("rules", index, *field), f"rule {rule.key!r}", column, frame)
    return problems
