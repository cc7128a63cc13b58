"""Project checks of a job's ``rules`` and ``quarantine_target``.

Called from :mod:`nexus_dagster.spec.validate`; each problem names the file, line, field and the
fix. Unknown columns in rules are checked with the other columns, when the sources' columns are
known (:mod:`nexus_dagster.spec.validate_columns`).

Example:
    >>> for problem in rules_problems(spec):  # doctest: +SKIP
    ...     print(problem)
    job.yaml:14: quarantine_target: 'reject' is not a target of this job (fix: use one of: ...)
"""

from __future__ import annotations

from nexus_dagster.errors import ExpressionError, SpecProblem
from nexus_dagster.spec.rules import RuleAction, RuleCheck, RuleSpec
from nexus_dagster.spec.validate_operations import problem_at
from nexus_dagster.transforms.expressions import expression_error, referenced_columns

__all__ = ["rule_columns", "rules_problems"]


def rule_columns(rule: RuleSpec) -> list[tuple[tuple, str]]:
    """(field path inside the rule, column) of every column the rule reads; an expression
    that does not parse names none (its own check reports it)."""
    fields: list[tuple[tuple, str]] = [(("column",), rule.column)] if rule.column else []
    fields += [(("columns", i), c) for i, c in enumerate(rule.columns or [])]
    if rule.expression:
        try:
            fields += [(("expression",), c) for c in sorted(referenced_columns(rule.expression))]
        except ExpressionError:
            return fields
    return fields


def rules_problems(spec) -> list[SpecProblem]:
    """Problems of ``rules`` and ``quarantine_target`` in one job."""
    job = spec.job
    problems: list[SpecProblem] = []

    def add(loc: tuple, message: str, fix: str) -> None:
        problems.append(problem_at(spec, loc, message, fix))

    names = [t.name for t in job.targets]
    quarantine = job.quarantine_target
    if quarantine is not None and quarantine not in names:
        add(("quarantine_target",), f"quarantine_target {quarantine!r} is not a target of this job",
            f"use one of: {', '.join(names)}")
        quarantine = None
    quarantining = [i for i, r in enumerate(job.rules) if r.action == RuleAction.QUARANTINE]
    if quarantining and job.quarantine_target is None:
        add(("rules", quarantining[0], "action"),
            "a rule with action quarantine needs quarantine_target: <target name>",
            "add quarantine_target: naming the target that receives the rejected rows, or set "
            "action: fail")
    if job.quarantine_target is not None and not quarantining:
        add(("quarantine_target",), "quarantine_target is set but no rule has action quarantine",
            "add rules with action: quarantine, or remove quarantine_target")
    if quarantine is not None and job.rules:
        index = names.index(quarantine)
        if job.targets[index].input is not None:
            add(("targets", index, "input"),
                "the quarantine target loads the rejected rows; it cannot have an input",
                "remove input from the quarantine target")
        if len(names) == 1:
            add(("quarantine_target",),
                "the quarantine target is the job's only target: the good rows go nowhere",
                "add a target for the good rows")
    good = [(i, t) for i, t in enumerate(job.targets) if t.name != quarantine]
    inputs = {t.input for _, t in good}
    if job.rules and len(inputs) > 1:
        index = next(i for i, t in good if t.input != good[0][1].input)
        add(("targets", index, "input"),
            "with rules, every target but the quarantine target loads the same rows",
            "give those targets the same input (the rules check the rows they load)")
    seen: dict[str, str] = {c.key: "check" for c in job.checks}
    for index, rule in enumerate(job.rules):
        if rule.key in seen:
            add(("rules", index), f"rule name {rule.key!r} is also the name of a {seen[rule.key]}",
                "give the rule a unique name: <name>")
        seen.setdefault(rule.key, "rule")
        if rule.check == RuleCheck.EXPRESSION:
            error = expression_error(rule.expression or "")
            if error:
                add(("rules", index, "expression"), error, "use the filter condition syntax")
    return problems
