"""Load job specs from YAML: every problem found, each with file, line, field path and fix.

A spec folder holds ``connections.yaml`` (named connections shared by jobs) and one
``<job>.yaml`` per job. Values stay unresolved (``${ENV}``, ``enc:``): secrets are resolved
at run time only (see :mod:`nexus_dagster.secrets`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from nexus_dagster.connectors.registry import connector_types
from nexus_dagster.errors import SpecError, SpecProblem, closest, did_you_mean, field_path
from nexus_dagster.spec.engine_settings import EngineSettings
from nexus_dagster.spec.load_options import AfterLoadSpec, Scd2Spec
from nexus_dagster.spec.models import (
    AggregateConfig,
    Connection,
    CustomCodeConfig,
    DataSource,
    DataTarget,
    DeduplicateConfig,
    ETLJob,
    FilterConfig,
    JoinConfig,
    MapConfig,
    PivotConfig,
    RetryPolicySpec,
    SensorSpec,
    SortConfig,
    Transformation,
)
from nexus_dagster.spec.operations import CheckSpec, FreshnessSpec, PartitionsSpec, TriggerSpec
from nexus_dagster.spec.rules import RuleSpec
from nexus_dagster.spec.select_config import SelectConfig
from nexus_dagster.spec.validate import check_project, unregistered_type
from nexus_dagster.spec.validate_partial import PartialJob, partial_job
from nexus_dagster.spec.validate_values import shown_value
from nexus_dagster.spec.window_config import WindowConfig

CONNECTIONS_FILE = "connections.yaml"
SPEC_SUFFIXES = (".yaml", ".yml")

Path_ = tuple[str | int, ...]

_CONFIG_MODELS: dict[str, type[BaseModel]] = {
    "filter": FilterConfig,
    "map": MapConfig,
    "aggregate": AggregateConfig,
    "sort": SortConfig,
    "deduplicate": DeduplicateConfig,
    "pivot": PivotConfig,
    "join": JoinConfig,
    "custom_code": CustomCodeConfig,
    "window": WindowConfig,
    "select": SelectConfig,
}
_CHILD_MODELS: dict[str, type[BaseModel]] = {
    "sources": DataSource,
    "targets": DataTarget,
    "transformations": Transformation,
    "retries": RetryPolicySpec,
    "engine": EngineSettings,
    "partitions": PartitionsSpec,
    "trigger": TriggerSpec,
    "sensor": SensorSpec,
    "checks": CheckSpec,
    "rules": RuleSpec,
    "freshness": FreshnessSpec,
    "scd2": Scd2Spec,
    "after_load": AfterLoadSpec,
}


@dataclass
class SpecFile:
    """A parsed YAML file: its data and the line of every field path."""

    path: Path
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)

    def line(self, loc: Iterable[str | int]) -> int | None:
        """The line of the deepest known prefix of ``loc``."""
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), None)


@dataclass
class JobSpec:
    """A validated job with where it came from.

    Attributes:
        job: the model.
        file: the spec file (None for a job built in Python and never saved).
        root: folder that relative file paths in the spec are resolved against (the parent of
            the spec folder: the project root).
        spec_hash: sha256 of the spec's canonical JSON, for code versions and the audit log.
    """

    job: ETLJob
    file: Path | None
    root: Path
    source: SpecFile | None = None

    @property
    def spec_hash(self) -> str:
        text = self.job.model_dump_json(exclude_none=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def where(self, loc: Iterable[str | int] = ()) -> tuple[str, int | None]:
        """(file name, line) of a field path, for messages."""
        name = str(self.file) if self.file else f"<job {self.job.name}>"
        return name, self.source.line(loc) if self.source else None


@dataclass
class Project:
    """Every job and connection of a spec folder."""

    jobs: list[JobSpec]
    connections: dict[str, Connection]
    connections_file: SpecFile | None = None
    root: Path = Path(".")

    def job(self, name: str) -> JobSpec:
        for spec in self.jobs:
            if spec.job.key == name or spec.job.name == name:
                return spec
        keys = sorted(s.job.key for s in self.jobs)
        hint = did_you_mean(name, keys)
        raise SpecError(f"no job named {name!r}; {hint}jobs: {', '.join(keys) or 'none'}")


# ------------------------------------------------------------------------------- YAML parsing
class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of keeping the last one silently."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False):
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first at line {seen[key]})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


class _FastUniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """The same loader on libyaml's parser (about 15x faster; PyYAML's own parser without it).

    Its error messages differ from the pure-Python parser's, so a file it refuses is parsed
    again with :class:`_UniqueKeyLoader` for the message users see.
    """


# YAML 1.2 booleans only: `on: id` (a join key) must stay the string "on", not True.
_BOOL_TAG = "tag:yaml.org,2002:bool"
for _loader in (_UniqueKeyLoader, _FastUniqueKeyLoader):
    _loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
    _loader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL_TAG]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    _loader.add_implicit_resolver(
        _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
    )


def _record_lines(node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[(*path, key)] = key_node.start_mark.line + 1
            _record_lines(value_node, (*path, key), lines)
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_lines(item, (*path, index), lines)


def _compose_and_construct(text: str, loader_class: type) -> tuple[yaml.Node | None, Any]:
    """One parse of ``text``: its node tree (with the line of every node) and its data."""
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    finally:
        loader.dispose()


def parse_yaml(path: Path) -> SpecFile:
    """Parse one YAML file, keeping the line of every field.

    Raises:
        SpecError: unreadable file or invalid YAML, with the line and column.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([SpecProblem(f"cannot read: {exc}", file=str(path))]) from None
    try:
        try:
            node, data = _compose_and_construct(text, _FastUniqueKeyLoader)
        except yaml.YAMLError:
            node, data = _compose_and_construct(text, _UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        message = f"invalid YAML: {problem}" + (f" ({context})" if context else "")
        raise SpecError(
            [
                SpecProblem(
                    message,
                    file=str(path),
                    line=mark.line + 1 if mark else None,
                    fix="check indentation and quoting on that line",
                )
            ]
        ) from None
    lines: dict[Path_, int] = {}
    if node is not None:
        _record_lines(node, (), lines)
    return SpecFile(path=path, data=data, lines=lines)


# --------------------------------------------------------------------------- error reporting
def _clean_loc(loc: Iterable[str | int]) -> tuple[str | int, ...]:
    """Drop pydantic's union tags (``config.filter.condition`` -> ``config.condition``)."""
    out: list[str | int] = []
    for part in loc:
        if out and out[-1] == "config" and part in _CONFIG_MODELS:
            continue
        if isinstance(part, str) and part.startswith("function-"):
            continue
        out.append(part)
    return tuple(out)


def _model_at(root: type[BaseModel], loc: tuple[str | int, ...], data: Any) -> type[BaseModel]:
    """The model class that holds the last element of ``loc`` (for 'did you mean')."""
    model: type[BaseModel] = root
    node = data
    for part in loc[:-1]:
        if isinstance(node, dict | list):
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                node = None
        if isinstance(part, int):
            continue
        if part == "config" and isinstance(node, dict):
            continue
        if part in _CHILD_MODELS:
            model = _CHILD_MODELS[part]
    if loc and len(loc) >= 2 and "config" in loc[:-1]:
        index = loc.index("config")
        owner = data
        for part in loc[:index]:
            try:
                owner = owner[part]
            except (KeyError, IndexError, TypeError):
                owner = None
        kind = owner.get("transformation_type") if isinstance(owner, dict) else None
        model = _CONFIG_MODELS.get(str(kind), model)
    return model


def suggested_field(data: Any, loc: Iterable[str | int]) -> str | None:
    """The field of the job model a misspelled key at ``loc`` most likely means (difflib)."""
    loc = _clean_loc(loc)
    if not loc:
        return None
    model = _model_at(ETLJob, loc, data)
    known = [n for n in model.model_fields if n != "kind"]
    return closest(loc[-1], known)


def _fix_for(error: dict[str, Any], loc: tuple[str | int, ...], model: type[BaseModel]) -> str:
    kind = error["type"]
    last = loc[-1] if loc else ""
    if kind == "extra_forbidden":
        known = sorted(n for n in model.model_fields if n != "kind")
        return f"{did_you_mean(last, known)}remove {last!r}; allowed fields: {', '.join(known)}"
    if kind == "missing":
        return f"add {last!r}"
    if kind in ("enum", "literal_error"):
        expected = re.findall(r"'([^']*)'", str(error.get("ctx", {}).get("expected", "")))
        return f"{did_you_mean(error.get('input'), expected)}use one of the listed values"
    if kind == "string_pattern_mismatch":
        return "use letters, digits and underscores, starting with a letter"
    if kind.startswith(("int_", "float_", "bool_", "string_", "list_", "dict_")):
        return f"give {last!r} the expected type"
    return "see the field's description in the README"


def problems_from_validation(
    exc: ValidationError, spec: SpecFile, root_model: type[BaseModel], prefix: Path_ = ()
) -> list[SpecProblem]:
    """Turn a pydantic error into one SpecProblem per error, with file, line and fix."""
    problems = []
    by_field: dict[str, SpecProblem] = {}
    errors = exc.errors()
    bad_types = {_clean_loc(e["loc"])[:-1] for e in errors
                 if _clean_loc(e["loc"])[-1:] == ("transformation_type",)}
    for error in errors:
        loc = _union_member_stripped(_clean_loc(error["loc"]), error, _at(spec.data, prefix))
        if error["type"].startswith("union_tag") and loc[:-1] in bad_types:
            continue  # the config's kind follows transformation_type: one problem is enough
        full = (*prefix, *loc)
        model = _model_at(root_model, loc, _at(spec.data, prefix))
        message = error["msg"].removeprefix("Value error, ")
        if field_path(full) in by_field:  # the members of a union (bool | list[bool]) refused it
            by_field[field_path(full)].message += f", or {message[0].lower()}{message[1:]}"
            continue
        problems.append(
            SpecProblem(
                message,
                file=str(spec.path),
                line=spec.line(full),
                field=field_path(full) or None,
                fix=_fix_for(error, loc, model),
            )
        )
        by_field[field_path(full)] = problems[-1]
    return problems


def _union_member_stripped(loc: tuple[str | int, ...], error: dict, data: Any) -> tuple:
    """Drop a trailing union member tag (``ascending.bool``) that is not a key of the data."""
    if not loc or error["type"] == "missing" or not isinstance(loc[-1], str):
        return loc
    try:
        parent = _at(data, loc[:-1])
    except (KeyError, IndexError, TypeError):
        return loc
    if isinstance(parent, dict) and loc[-1] in parent:
        return loc
    return loc[:-1] if len(loc) > 1 and not isinstance(parent, dict) else loc


def _at(data: Any, path: Path_) -> Any:
    for part in path:
        data = data[part]
    return data


# ------------------------------------------------------------------------------- loading
def load_connections(path: Path) -> tuple[dict[str, Connection], SpecFile, list[SpecProblem]]:
    """Parse ``connections.yaml``: a mapping of name -> connection (optionally under
    a top-level ``connections:`` key)."""
    spec = parse_yaml(path)
    problems: list[SpecProblem] = []
    data = spec.data or {}
    prefix: Path_ = ()
    if isinstance(data, dict) and set(data) == {"connections"}:
        data, prefix = data["connections"] or {}, ("connections",)
    if not isinstance(data, dict):
        problems.append(
            SpecProblem(
                "expected a mapping of connection name -> settings",
                file=str(path),
                line=spec.line(prefix),
                fix="write `app_db: {type: postgresql, host: ..., ...}`",
            )
        )
        return {}, spec, problems
    connections: dict[str, Connection] = {}
    for name, settings in data.items():
        try:
            connections[str(name)] = Connection.model_validate(settings)
        except ValidationError as exc:
            problems += problems_from_validation(exc, spec, Connection, (*prefix, name))
    return connections, spec, problems


def load_job_file(path: Path, root: Path) -> tuple[JobSpec | None, list[SpecProblem]]:
    """Parse and validate one job spec file (model-level checks only)."""
    job, problems, _ = _load_job_file(parse_yaml(path), root)
    return job, problems


def _load_job_file(
    spec: SpecFile, root: Path
) -> tuple[JobSpec | None, list[SpecProblem], tuple[JobSpec, PartialJob] | None]:
    """(job, model problems, the valid part of a job with model errors and its mapping)."""
    path = spec.path
    if not isinstance(spec.data, dict):
        return None, [
            SpecProblem(
                "a job spec must be a mapping with name, sources, transformations, targets",
                file=str(path),
                line=1,
                fix="start the file with `name: my_job`",
            )
        ], None
    try:
        job = ETLJob.model_validate(spec.data)
    except ValidationError as exc:
        problems = problems_from_validation(exc, spec, ETLJob)
        part = partial_job(spec.data, suggested_field)
        if part is None:  # the project checks need a model: report unknown types now
            return None, problems + type_name_problems(spec), None
        partial_file = SpecFile(path=path, data=part.data, lines=part.original_lines(spec.lines))
        partial = JobSpec(job=part.job, file=path, root=root, source=partial_file)
        dropped = {(g, i) for g, items in part.kept.items()
                   for i in range(len(spec.data.get(g) or [])) if i not in items}
        # a dropped item gets no project checks: its unknown type is reported here
        problems += [p for p in type_name_problems(spec) if _item_of(p.field) in dropped]
        return None, problems, (partial, part)
    return JobSpec(job=job, file=path, root=root, source=spec), [], None


def _item_of(field: str | None) -> tuple[str, int] | None:
    """``("sources", 1)`` for a field ``sources[1].x``."""
    match = re.match(r"^(\w+)\[(\d+)\]", field or "")
    return (match.group(1), int(match.group(2))) if match else None


def type_name_problems(spec: SpecFile) -> list[SpecProblem]:
    """``source_type``/``target_type`` values of a parsed job file that no connector serves."""
    known = connector_types()
    problems = []
    for group, name in (("sources", "source_type"), ("targets", "target_type")):
        items = spec.data.get(group) if isinstance(spec.data, dict) else None
        for index, item in enumerate(items if isinstance(items, list) else []):
            value = item.get(name) if isinstance(item, dict) else None
            if isinstance(value, str) and value not in known:
                message, fix = unregistered_type(name, value)
                problems.append(SpecProblem(message, file=str(spec.path), fix=fix,
                                            line=spec.line((group, index, name)),
                                            field=f"{group}[{index}].{name}"))
    return problems



def spec_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[Path]]:
    """(job spec files, connection files) under the given files or folders."""
    jobs: list[Path] = []
    connections: list[Path] = []
    for raw in paths:
        path = Path(raw)
        candidates = (
            sorted(p for p in path.iterdir() if p.suffix in SPEC_SUFFIXES)
            if path.is_dir()
            else [path]
        )
        for candidate in candidates:
            if candidate.name.startswith("."):
                continue
            if candidate.stem == Path(CONNECTIONS_FILE).stem:
                connections.append(candidate)
            else:
                jobs.append(candidate)
    return jobs, connections


def collect(
    paths: Iterable[str | Path], *, values: bool = False
) -> tuple[Project, list[SpecProblem]]:
    """Load everything under ``paths`` and return the project and ALL problems found.

    Problems include model errors, YAML errors, and the semantic checks of
    :mod:`nexus_dagster.spec.validate` (references, connector capabilities, cron, ...); a job
    file with model errors is checked too, on the part of it that validates
    (:mod:`nexus_dagster.spec.validate_partial`).

    Args:
        paths: spec files or folders.
        values: set each problem's ``value`` to the offending value of the spec (secrets
            masked), as ``nexus validate`` shows it.
    """
    paths = [Path(p) for p in paths]
    problems: list[SpecProblem] = []
    for path in paths:
        if not path.exists():
            problems.append(
                SpecProblem("no such file or folder", file=str(path), fix="check the path")
            )
    existing = [p for p in paths if p.exists()]
    job_files, connection_files = spec_files(existing)
    connections: dict[str, Connection] = {}
    connections_spec: SpecFile | None = None
    files: dict[str, SpecFile] = {}
    invalid_connections: set[str] = set()
    for path in connection_files:
        try:
            found, connections_spec, issues = load_connections(path)
        except SpecError as exc:
            problems += exc.problems
            continue
        connections.update(found)
        problems += issues
        files[str(path)] = connections_spec
        data = connections_spec.data if isinstance(connections_spec.data, dict) else {}
        named = data.get("connections", data) if set(data) == {"connections"} else data
        invalid_connections |= {str(n) for n in named or {}} - set(found)
    jobs: list[JobSpec] = []
    partials: list[tuple[JobSpec, PartialJob]] = []
    for path in job_files:
        root = path.resolve().parent.parent
        try:
            spec = parse_yaml(path)
        except SpecError as exc:
            problems += exc.problems
            continue
        files[str(path)] = spec
        job, issues, partial = _load_job_file(spec, root)
        problems += issues
        if job:
            jobs.append(job)
        if partial:
            partials.append(partial)
    root = existing[0].resolve() if existing else Path(".").resolve()
    if root.is_file():
        root = root.parent
    project = Project(jobs, connections, connections_spec, root.parent)
    problems += check_project(project)
    problems += _partial_problems(project, partials, {str(p) for p in problems})
    problems = [p for p in problems if not _unknown_connection_of(p, invalid_connections)]
    if values:
        for problem in problems:
            spec_file = files.get(problem.file or "")
            problem.value = shown_value(spec_file.data if spec_file else None, problem.field)
    return project, problems


def _partial_problems(
    project: Project, partials: list[tuple[JobSpec, PartialJob]], known: set[str]
) -> list[SpecProblem]:
    """The project checks of the valid parts of job files with model errors, at their original
    lines and indices (problems already in ``known`` are left out)."""
    if not partials:
        return []
    checked = Project([*project.jobs, *(spec for spec, _ in partials)], project.connections,
                      project.connections_file, project.root)
    parts = {str(spec.file): part for spec, part in partials}
    found = []
    for problem in check_project(checked):
        part = parts.get(problem.file or "")
        if part is not None:
            problem = part.remap(problem)
            if part.follows_from_dropped(problem):
                continue
        if str(problem) not in known:
            known.add(str(problem))
            found.append(problem)
    return found


def _unknown_connection_of(problem: SpecProblem, invalid: set[str]) -> bool:
    """A "not in connections.yaml" problem about a connection that is there, but invalid
    (its own problems are reported at connections.yaml)."""
    return any(problem.message == f"connection {name!r} is not in connections.yaml"
               for name in invalid)


def load_project(paths: str | Path | Iterable[str | Path]) -> Project:
    """Load a spec folder (or files) and raise one SpecError listing every problem."""
    if isinstance(paths, str | Path):
        paths = [paths]
    project, problems = collect(paths)
    if problems:
        raise SpecError(problems)
    return project
