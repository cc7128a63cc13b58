"""Row rules of a job: quarantine bad rows, or gate the load on them.

A rule uses the row-level vocabulary of ``checks`` (``not_null``, ``unique``,
``accepted_values``, ``range``, ``regex``, ``expression``) but runs on the rows in flight,
before any target commits: ``action: quarantine`` sends the rows that break it, with
``_reject_reason`` and ``_rejected_at``, to the job's ``quarantine_target`` (and the good rows to
the other targets); ``action: fail`` stops the run before any target commits.

Example:
    >>> rule = RuleSpec.model_validate({"column": "amount", "check": "range", "min": 0})
    >>> rule.key, rule.action.value
    ('amount_range', 'quarantine')
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from nexus_dagster.spec.operations import CheckSpec

__all__ = ["REASON_COLUMN", "REJECTED_AT_COLUMN", "RuleAction", "RuleCheck", "RuleSpec"]

#: columns a quarantine target receives on top of the row's own
REASON_COLUMN = "_reject_reason"
REJECTED_AT_COLUMN = "_rejected_at"


class RuleCheck(StrEnum):
    """The checks a rule can apply to each row (the row-level kinds of ``checks``)."""

    NOT_NULL = "not_null"
    UNIQUE = "unique"
    ACCEPTED_VALUES = "accepted_values"
    RANGE = "range"
    REGEX = "regex"
    EXPRESSION = "expression"


class RuleAction(StrEnum):
    """What happens to the rows that break a rule."""

    QUARANTINE = "quarantine"
    FAIL = "fail"


class RuleSpec(BaseModel):
    """One row rule: ``{column: amount, check: range, min: 0, action: quarantine}``.

    The fields mean what they mean in a check (``column``/``columns``, ``values``, ``min`` /
    ``max`` inclusive, ``pattern`` full match, ``expression`` a condition every good row
    meets); a null value passes every rule but ``not_null`` (and an ``expression`` that is
    null counts as broken). ``unique`` flags every row of a duplicated key.

    Example:
        >>> RuleSpec(check="accepted_values", column="status", values=["paid", "open"],
        ...          action="fail")
    """

    model_config = ConfigDict(extra="forbid")

    check: RuleCheck
    column: str | None = None
    columns: list[str] | None = None
    values: list[Any] | None = None
    min: float | None = None
    max: float | None = None
    pattern: str | None = None
    expression: str | None = None
    action: RuleAction = RuleAction.QUARANTINE
    name: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    description: str | None = None

    @model_validator(mode="after")
    def _fields_for_kind(self) -> RuleSpec:
        self.as_check()  # the check's own field rules (needs column, values, min/max, ...)
        return self

    def as_check(self) -> CheckSpec:
        """The same test as a :class:`~nexus_dagster.spec.operations.CheckSpec`."""
        return CheckSpec(
            check=self.check.value, column=self.column, columns=self.columns,
            values=self.values, min=self.min, max=self.max, pattern=self.pattern,
            expression=self.expression, name=self.name,
        )  # fmt: skip

    @property
    def key(self) -> str:
        """The rule's name (its asset check's name): ``name``, or column(s) and kind."""
        return self.as_check().key

    @property
    def column_names(self) -> list[str]:
        """The columns the rule names in ``column``/``columns`` (not in an expression)."""
        return self.columns or ([self.column] if self.column else [])

    def describe(self) -> str:
        """A one-line description of what a good row satisfies, e.g. ``amount >= 0``."""
        if self.description:
            return self.description
        col = ", ".join(self.column_names)
        kind = self.check
        if kind == RuleCheck.NOT_NULL:
            return f"{col} is not null"
        if kind == RuleCheck.UNIQUE:
            return f"{col} is unique"
        if kind == RuleCheck.ACCEPTED_VALUES:
            return f"{col} in {self.values}"
        if kind == RuleCheck.RANGE:
            parts = [f"{col} >= {_num(self.min)}" if self.min is not None else "",
                     f"{col} <= {_num(self.max)}" if self.max is not None else ""]
            return " and ".join(p for p in parts if p)
        if kind == RuleCheck.REGEX:
            return f"{col} matches {self.pattern!r}"
        return self.expression or ""


def _num(value: float | None) -> str:
    return str(int(value)) if value is not None and float(value).is_integer() else str(value)
