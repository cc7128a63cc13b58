"""Checks across a whole project: references, connector capabilities, schedules, code.

The models check each field; these checks need the connector registry and the other files
(connections.yaml, the other jobs). Each problem names the file, line, field and the fix.
"""

from __future__ import annotations

import ast

from nexus_dagster.connectors.registry import ENTRY_POINT_GROUP, connector_class, connector_types
from nexus_dagster.errors import SpecError, SpecProblem, UnsupportedError, did_you_mean
from nexus_dagster.spec.api_fields import api_problems
from nexus_dagster.spec.connections import endpoint_type, resolve_connection
from nexus_dagster.spec.models import DataSource, TransformationType
from nexus_dagster.spec.validate_cdc import cdc_problems
from nexus_dagster.spec.validate_chain import chain_problems
from nexus_dagster.spec.validate_execution import execution_problems
from nexus_dagster.spec.validate_loads import load_problems
from nexus_dagster.spec.validate_operations import operations_problems, trigger_problems
from nexus_dagster.spec.validate_rules import rules_problems
from nexus_dagster.spec.validate_sensor import sensor_problems
from nexus_dagster.transforms.code_policy import CUSTOM_CODE_ENV, custom_code_allowed
from nexus_dagster.transforms.expressions import expression_error
from nexus_dagster.transforms.steps import step_kind


def valid_cron(expression: str) -> bool:
    """True for a five-field cron expression that can fire (Dagster's schedule rules)."""
    from croniter import croniter

    if not croniter.is_valid(expression):
        return False
    expanded, *_ = croniter.expand(expression)
    if len(expanded) != 5:
        return False
    # the 30th or 31st of February never comes
    return not (len(expanded[3]) == 1 and expanded[3][0] == 2
                and len(expanded[2]) == 1 and expanded[2][0] in {30, 31})


def check_project(project) -> list[SpecProblem]:
    """Every cross-field and cross-file problem of a loaded project."""
    problems: list[SpecProblem] = []
    seen: dict[str, str] = {}
    for spec in project.jobs:
        key = spec.job.key
        file, line = spec.where(("name",))
        if key in seen:
            problems.append(
                SpecProblem(
                    f"job name {key!r} is already used by {seen[key]}",
                    file=file,
                    line=line,
                    field="name",
                    fix="give every job a unique name",
                )
            )
        seen[key] = file
        problems += check_job(spec, project.connections)
        problems += trigger_problems(spec, project)
    return problems + named_connection_problems(project)


def named_connection_problems(project) -> list[SpecProblem]:
    """Params of connections.yaml entries checked by the connector of each endpoint using
    them (``${ENV}``/``enc:`` values are checked at run time), reported at connections.yaml."""
    problems: list[SpecProblem] = []
    checked: set[tuple[str, str]] = set()
    spec_file = project.connections_file
    data = spec_file.data if spec_file is not None and isinstance(spec_file.data, dict) else {}
    prefix: tuple[str, ...] = ("connections",) if set(data) == {"connections"} else ()
    for spec in project.jobs:
        for endpoint in (*spec.job.sources, *spec.job.targets):
            name, kind = endpoint.connection, endpoint_type(endpoint)
            if not name or name not in project.connections or (name, kind) in checked:
                continue
            checked.add((name, kind))
            try:
                cls = connector_class(kind)
            except SpecError:
                continue  # reported by the endpoint checks
            raw = project.connections[name]
            for field, message, fix in cls.params_problems(resolve_connection(endpoint,
                                                                              project.connections)):
                key = field.removeprefix("connection_params").lstrip(".")
                loc = (*prefix, name, *(("params",) if "params" in (data.get(name) or {})
                                       else ()), *key.split("."))
                problems.append(SpecProblem(
                    f"connection {name!r} ({raw.type}, used as {kind} by job "
                    f"{spec.job.key}): {message}",
                    file=str(spec_file.path) if spec_file else None,
                    line=spec_file.line(loc) if spec_file else None,
                    field=".".join(str(p) for p in (name, *key.split("."))).rstrip("."),
                    fix=fix,
                ))
    return problems


def check_job(spec, connections) -> list[SpecProblem]:
    """The problems of one job (see :func:`check_project`)."""
    job = spec.job
    problems: list[SpecProblem] = []

    def problem(loc: tuple, message: str, fix: str) -> None:
        file, line = spec.where(loc)
        field = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc)
        problems.append(
            SpecProblem(message, file=file, line=line, field=field.replace(".[", "["), fix=fix)
        )

    for index, source in enumerate(job.sources):
        _check_endpoint(("sources", index), source, connections, problem)
    for index, target in enumerate(job.targets):
        _check_endpoint(("targets", index), target, connections, problem)
    load_problems(job, problem)
    cdc_problems(job, connections, problem)

    chain_problems(job, problem)
    positions = {id(t): i for i, t in enumerate(job.transformations)}
    for step in job.ordered_transformations():
        loc = ("transformations", positions[id(step)])
        kind = step_kind(step)
        if step.transformation_type == TransformationType.CUSTOM_CODE:
            if not custom_code_allowed():
                problem(
                    (*loc, "custom_code"),
                    f"custom code is disabled in this deployment ({CUSTOM_CODE_ENV}=0)",
                    "replace it with built-in transformations or enable custom code",
                )
            try:
                ast.parse(step.custom_code or "", filename=f"<custom_code {step.name}>")
            except SyntaxError as exc:
                problem(
                    (*loc, "custom_code"),
                    f"Python syntax error in custom code line {exc.lineno}: {exc.msg}",
                    "fix the code; it runs with df, pd, np, datetime, timedelta",
                )
        for expression in kind.expressions(step.config):
            error = expression_error(expression.text)
            if error:
                problem((*loc, "config", *expression.field), error, _EXPRESSION_FIX)

    if job.schedule is not None and not valid_cron(job.schedule):
        problem(
            ("schedule",),
            f"{job.schedule!r} is not a valid cron expression",
            'use five fields, e.g. "0 2 * * *" for 02:00 every day',
        )
    if job.timezone is not None:
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(job.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            problem(
                ("timezone",), f"unknown time zone {job.timezone!r}", 'use e.g. "Europe/Berlin"'
            )
    return (problems + operations_problems(spec) + rules_problems(spec) + sensor_problems(spec)
            + execution_problems(spec, connections))


def unregistered_type(field: str, value: str) -> tuple[str, str]:
    """(message, fix) for a type name no connector serves, with the known names in the fix."""
    return (
        f"{field} {value!r} is not a registered connector",
        f"{did_you_mean(value, connector_types())}use one of: {', '.join(connector_types())}; "
        f"or install/register a connector for it (entry-point group {ENTRY_POINT_GROUP})",
    )


_EXPRESSION_FIX = (
    "use column names, literals, arithmetic, comparisons, and/or/not, in [...] "
    "and the documented functions"
)


def _check_endpoint(loc, endpoint, connections, problem) -> None:
    is_source = isinstance(endpoint, DataSource)
    kind = endpoint_type(endpoint)
    type_field = "source_type" if is_source else "target_type"
    if endpoint.connection and endpoint.connection not in connections:
        known = ", ".join(sorted(connections)) or "none defined"
        problem(
            (*loc, "connection"),
            f"connection {endpoint.connection!r} is not in connections.yaml",
            f"{did_you_mean(endpoint.connection, connections)}use one of: {known}, or add it "
            "to connections.yaml",
        )
    known_connection = endpoint.connection is None or endpoint.connection in connections
    for field, message, fix in api_problems(
        endpoint, resolve_connection(endpoint, connections) if known_connection else {}
    ):
        problem((*loc, *field.split(".")), message, fix)
    try:
        cls = connector_class(kind)
    except UnsupportedError:
        problem((*loc, type_field), *unregistered_type(type_field, kind))
        return
    except (ImportError, SpecError) as exc:
        problem((*loc, type_field), f"connector for {kind!r} cannot load: {exc}", "reinstall")
        return
    role = "source" if is_source else "target"
    if not (cls.is_source if is_source else cls.is_target):
        problem((*loc, type_field), f"{kind!r} cannot be used as a {role}", "pick another type")
        return
    for alternatives in cls.source_requires if is_source else cls.target_requires:
        if not any(getattr(endpoint, name, None) for name in alternatives):
            problem(
                loc,
                f"a {kind} {role} needs {' or '.join(alternatives)}",
                f"add {alternatives[0]}: ...",
            )
    if not is_source and endpoint.write_mode.value not in cls.write_modes:
        problem(
            (*loc, "write_mode"),
            f"{kind} targets do not support write_mode {endpoint.write_mode.value!r}",
            f"use one of: {', '.join(sorted(cls.write_modes))}",
        )
    params = resolve_connection(endpoint, connections) if known_connection else {}
    if known_connection and not endpoint.connection:
        for field, message, fix in cls.params_problems(params):
            problem((*loc, *field.split(".")), message, fix)
    for field, message, fix in cls.spec_problems(role, endpoint.table, endpoint.options, params):
        problem((*loc, *field.split(".")), message, fix)
