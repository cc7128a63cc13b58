"""The chain split into stages: SQL parts between custom_code steps.

:func:`plan_stages` checks the step names and the named inputs of each step, compiles custom
code, and counts how often each input is scanned, so that an input read by several parts of
the chain is read once (:func:`materialize_shared`).

Example:
    >>> from nexus_dagster.spec.models import Transformation
    >>> paid = Transformation(name="paid", transformation_type="filter",
    ...                       config={"condition": 'status == "paid"'})
    >>> [len(s.steps) for s in plan_stages(["orders"], [paid])]
    [1]
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType
from typing import Any

import pyarrow as pa

from nexus_dagster.errors import SpecError, SpecProblem
from nexus_dagster.relation import Relation
from nexus_dagster.spec.models import Transformation
from nexus_dagster.transforms.code_policy import CUSTOM_CODE_ENV, custom_code_allowed
from nexus_dagster.transforms.custom_code import compile_custom_code
from nexus_dagster.transforms.sql_scope import CURRENT_INPUT
from nexus_dagster.transforms.steps import step_kind, step_reads

__all__ = ["Stage", "materialize_shared", "plan_stages"]


@dataclass
class Stage:
    """A SQL part of the chain (``steps``) or one custom_code step (``code``).

    Attributes:
        steps: the SQL steps, in order.
        code: the custom_code step.
        scans: logical input -> times the stage's statement scans it.
        frames: the sources custom code reads by name.
        compiled: the custom code, compiled.
        tees: step -> the spool file its result is also written to (a target reads it);
            the step's result is kept in a temporary table, so later steps do not compute it
            again.
    """

    steps: list[Transformation] = field(default_factory=list)
    code: Transformation | None = None
    scans: Counter[str] = field(default_factory=Counter)
    frames: set[str] = field(default_factory=set)
    compiled: CodeType | None = None
    tees: dict[str, Path] = field(default_factory=dict)

    @property
    def ordered(self) -> bool:
        """Whether a step's result depends on row order (hidden ordinals are carried)."""
        return any(step_kind(s).ordered for s in self.steps)

    @property
    def columns_from_data(self) -> bool:
        """Whether the output columns are known only from the data (pivot)."""
        return any(step_kind(s).columns_from_data for s in self.steps)

    @property
    def label(self) -> str:
        """What the stage does, for messages."""
        if not self.steps:
            return "union of sources"
        return "transformations " + ", ".join(repr(s.name) for s in self.steps)


def plan_stages(
    sources: list[str], steps: list[Transformation], tees: dict[str, Path] | None = None
) -> list[Stage]:
    """Split the chain at custom code, check names, count how often each input is scanned.

    Args:
        sources: the source names.
        steps: the steps, in order.
        tees: step -> spool file its result is also written to (SQL steps; see
            :class:`Stage`).

    Raises:
        SpecError: a step has a source's name, reads an unknown or unavailable input, or
            custom code is disabled.
        TransformError: custom code does not compile.
    """
    stages: list[Stage] = []
    for step in steps:
        if step_kind(step).sql is None:
            stages.append(Stage(code=step))
        elif stages and stages[-1].code is None:
            stages[-1].steps.append(step)
        else:
            stages.append(Stage(steps=[step]))
        if tees and step.name in tees and stages[-1].code is None:
            stages[-1].tees[step.name] = tees[step.name]

    all_names = set(sources)
    for step in steps:
        if step.name in set(sources):
            raise SpecError(
                [
                    SpecProblem(
                        f"transformation {step.name!r} has the name of a source; "
                        "names must be unique",
                        field=f"transformations.{step.name}",
                    )
                ]
            )
        all_names.add(step.name)

    previous_code: str | None = None
    for index, stage in enumerate(stages):
        if stage.code is not None:
            _plan_code(stage, sources, first=index == 0)
            previous_code = stage.code.name
        else:
            _plan_sql(stage, sources, previous_code, all_names)
    return stages


def _plan_code(stage: Stage, sources: list[str], *, first: bool) -> None:
    step = stage.code
    assert step is not None
    if not custom_code_allowed():
        raise SpecError(
            [
                SpecProblem(
                    f"custom_code transformation {step.name!r} is disabled in this deployment "
                    f"({CUSTOM_CODE_ENV}=0)",
                    field=f"transformations.{step.name}",
                    fix=f"remove the step, or set {CUSTOM_CODE_ENV}=1 where custom code is trusted",
                )
            ]
        )
    stage.compiled, names = compile_custom_code(step)
    stage.frames = {s for s in sources if s in names}
    if first:
        stage.scans.update({s: 1 for s in sources})


def _plan_sql(
    stage: Stage, sources: list[str], previous_code: str | None, all_names: set[str]
) -> None:
    """Simulate the SQL part: which inputs each step reads, to count scans of each input."""
    named: dict[str, Counter[str]] = {s: Counter({s: 1}) for s in sources}
    if previous_code is None:
        current: Counter[str] = Counter({s: 1 for s in sources})
    else:
        current = Counter({CURRENT_INPUT: 1})
        named[previous_code] = current
    total: Counter[str] = Counter()
    for step in stage.steps:
        kind = step_kind(step)
        inputs = kind.inputs(step.config)
        reads = step_reads(step)
        if reads:
            for side in reads.values():
                if side not in named:
                    if side in all_names:
                        reason = (
                            f"{side!r} is not available here: a step can read sources and "
                            "steps since the last custom_code step"
                        )
                    else:
                        known = ", ".join(sorted(n for n in named if n != CURRENT_INPUT))
                        reason = f"unknown source or step {side!r}; known: {known}"
                    raise SpecError(
                        [
                            SpecProblem(
                                f"{step.transformation_type.value} {step.name!r}: {reason}",
                                field=f"transformations.{step.name}",
                            )
                        ]
                    )
        if inputs:
            current = sum((named[side] for side in inputs.values()), Counter())
        elif step.input is not None:
            current = named[step.input]
        if (not inputs and kind.columns_from_data) or step.name in stage.tees:
            total += current  # read once into a temporary table
            current = Counter()
        named[step.name] = current
    total += current
    stage.scans = total


def materialize_shared(sources: dict[str, Relation], stages: list[Stage]) -> dict[str, Relation]:
    """Sources read by more than one part of the chain are read once into memory."""
    consumers: Counter[str] = Counter()
    for stage in stages:
        for name in sources:
            if stage.scans.get(name):
                consumers[name] += 1
            if name in stage.frames:
                consumers[name] += 1
    result = dict(sources)
    for name, count in consumers.items():
        if count > 1:
            relation = sources[name]
            cached: list[pa.Table] = []

            def open_(relation: Relation = relation, cached: list[pa.Table] = cached) -> Any:
                if not cached:
                    cached.append(relation.to_table())
                return iter(cached[0].to_batches())

            result[name] = Relation(relation.schema, open_, relation.name, relation.stats)
    return result
