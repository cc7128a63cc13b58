"""Operational parts of a job spec: checks, notifications, partitions and triggers.

These models are used by :class:`~nexus_dagster.spec.models.ETLJob`; like the rest of the spec
they know nothing of Dagster (the factory maps them to asset checks, run status sensors,
time-window partitions and asset sensors).

Example:
    >>> CheckSpec.model_validate({"column": "id", "check": "unique"})
    >>> Notifications.model_validate({"on_failure": {"email": ["data-team@example.com"]}})
    >>> PartitionsSpec.model_validate({"daily": "2024-01-01"})
    >>> TriggerSpec.model_validate({"after": "orders_to_warehouse"})
"""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def parse_duration(value: str | float | int) -> float:
    """``"90s"``, ``"30m"``, ``"24h"``, ``"7d"``, ``"1w"`` or a number of seconds -> seconds.

    Raises:
        ValueError: the text is not a number with one of the units s, m, h, d, w.
    """
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION_RE.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration; use e.g. 30m, 24h or 7d")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


class FreshnessSpec(BaseModel):
    """``freshness: {max_age: 24h, warn_after: 12h}`` on a target: Dagster's freshness policy
    (the asset is failing when its last materialization is older than ``max_age``, warning
    past ``warn_after``)."""

    model_config = ConfigDict(extra="forbid")

    max_age: str | float
    warn_after: str | float | None = None

    @field_validator("max_age", "warn_after")
    @classmethod
    def _duration(cls, value: str | float | None) -> str | float | None:
        if value is not None:
            parse_duration(value)
        return value

    @model_validator(mode="after")
    def _warn_before_fail(self) -> FreshnessSpec:
        if self.warn_after is not None and (
            parse_duration(self.warn_after) >= parse_duration(self.max_age)
        ):
            raise ValueError("warn_after must be shorter than max_age")
        return self


class CheckType(StrEnum):
    """The built-in asset checks."""

    NOT_NULL = "not_null"
    UNIQUE = "unique"
    ACCEPTED_VALUES = "accepted_values"
    RANGE = "range"
    ROW_COUNT = "row_count"
    REGEX = "regex"
    FRESHNESS = "freshness"
    SQL = "sql"
    EXPRESSION = "expression"


_NEEDS_COLUMN = {
    CheckType.NOT_NULL, CheckType.UNIQUE, CheckType.ACCEPTED_VALUES, CheckType.RANGE,
    CheckType.REGEX, CheckType.FRESHNESS,
}


class CheckSpec(_Model):
    """One data-quality check on a target, run after every load (a Dagster asset check).

    ``check`` picks the kind: ``not_null``, ``unique`` (``column`` or ``columns``),
    ``accepted_values`` (``values``), ``range`` (``min`` and/or ``max``, inclusive), ``row_count``
    (``min`` and/or ``max`` rows), ``regex`` (``pattern``, full match), ``freshness``
    (``max_age`` such as ``24h`` on a timestamp ``column``), ``sql`` (a query over the target,
    available as table ``data``, whose rows are the failures) and ``expression`` (a condition
    every row must satisfy, in the filter syntax). ``blocking: true`` fails the run when the
    check fails, so nothing downstream runs on bad data.

    Example:
        >>> CheckSpec(column="status", check="accepted_values", values=["paid", "open"])
    """

    check: CheckType
    column: str | None = None
    columns: list[str] | None = None
    values: list[Any] | None = None
    min: float | None = None
    max: float | None = None
    pattern: str | None = None
    max_age: str | float | None = None
    sql: str | None = None
    expression: str | None = None
    target: str | None = None
    name: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    blocking: bool = False
    severity: str = Field("error", pattern="^(error|warn)$")
    description: str | None = None

    @model_validator(mode="after")
    def _fields_for_kind(self) -> CheckSpec:
        kind = self.check
        if kind in _NEEDS_COLUMN and not self.column and not (
            kind == CheckType.UNIQUE and self.columns
        ):
            raise ValueError(f"check {kind.value} needs column: <name>")
        if kind == CheckType.ACCEPTED_VALUES and not self.values:
            raise ValueError("check accepted_values needs values: [...]")
        if kind in (CheckType.RANGE, CheckType.ROW_COUNT) and self.min is None and self.max is None:
            raise ValueError(f"check {kind.value} needs min and/or max")
        if kind == CheckType.REGEX:
            if not self.pattern:
                raise ValueError("check regex needs pattern: '<regular expression>'")
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(
                    f"pattern {self.pattern!r} is not a regular expression: {exc}"
                ) from None
        if kind == CheckType.FRESHNESS:
            if self.max_age is None:
                raise ValueError("check freshness needs max_age, e.g. max_age: 24h")
            parse_duration(self.max_age)
        if kind == CheckType.SQL and not (self.sql and self.sql.strip()):
            raise ValueError("check sql needs sql: 'SELECT * FROM data WHERE ...'")
        if kind == CheckType.EXPRESSION and not (self.expression and self.expression.strip()):
            raise ValueError("check expression needs expression: '<condition every row meets>'")
        return self

    @property
    def key(self) -> str:
        """The check's name in Dagster: ``name`` or derived from kind and column."""
        if self.name:
            return self.name
        cols = self.columns or ([self.column] if self.column else [])
        return "_".join([*cols, self.check.value]) if cols else self.check.value

    @property
    def max_age_seconds(self) -> float | None:
        """``max_age`` in seconds (freshness checks)."""
        return None if self.max_age is None else parse_duration(self.max_age)


class Channels(_Model):
    """Where one kind of notification goes.

    ``email``: addresses (sent through the SMTP server of ``NEXUS_SMTP_*``). ``slack``:
    incoming-webhook URLs, or channel names (``#data-alerts``) posted through
    ``NEXUS_SLACK_WEBHOOK_URL``. ``webhook``: URLs receiving a JSON POST. Values may be
    ``${ENV}`` references, resolved when a message is sent.
    """

    email: list[str] = Field(default_factory=list)
    slack: list[str] = Field(default_factory=list)
    webhook: list[str] = Field(default_factory=list)

    @field_validator("email", "slack", "webhook", mode="before")
    @classmethod
    def _as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def empty(self) -> bool:
        """True when no channel is configured."""
        return not (self.email or self.slack or self.webhook)


class Notifications(_Model):
    """``on_failure`` / ``on_success`` channels (Dagster run status sensors)."""

    on_failure: Channels | None = None
    on_success: Channels | None = None

    def by_status(self) -> dict[str, Channels]:
        """``{"failure": ..., "success": ...}`` for the configured, non-empty channels."""
        out = {}
        if self.on_failure and not self.on_failure.empty():
            out["failure"] = self.on_failure
        if self.on_success and not self.on_success.empty():
            out["success"] = self.on_success
        return out


class PartitionsSpec(_Model):
    """Time-window partitions: exactly one of ``hourly``, ``daily``, ``monthly`` = start date.

    The source's ``incremental_column`` decides which rows belong to a partition; a partition
    run reads rows in ``[start, end)`` and replaces that window in the targets.
    """

    hourly: dt.datetime | dt.date | None = None
    daily: dt.date | None = None
    monthly: dt.date | None = None
    end_offset: int = Field(0, ge=0, le=1000)

    @model_validator(mode="after")
    def _exactly_one(self) -> PartitionsSpec:
        given = [n for n in ("hourly", "daily", "monthly") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of hourly, daily, monthly with the first partition's date, "
                'e.g. partitions: {daily: "2024-01-01"}'
            )
        return self

    @property
    def cadence(self) -> str:
        """``hourly``, ``daily`` or ``monthly``."""
        return next(n for n in ("hourly", "daily", "monthly") if getattr(self, n) is not None)

    @property
    def start(self) -> str:
        """The first partition's start as text (``YYYY-MM-DD`` or ``YYYY-MM-DD-HH:MM``)."""
        value = getattr(self, self.cadence)
        if self.cadence == "hourly":
            if not isinstance(value, dt.datetime):
                value = dt.datetime.combine(value, dt.time())
            return value.strftime("%Y-%m-%d-%H:%M")
        return value.strftime("%Y-%m-%d")


class TriggerSpec(_Model):
    """Run this job when another job's targets were materialized: ``{after: job_a}``."""

    after: list[str] = Field(min_length=1)
    minimum_interval_seconds: int = Field(30, ge=1, le=86400)

    @field_validator("after", mode="before")
    @classmethod
    def _as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value
