"""The exception hierarchy: one root, a kind per way a run can fail.

Every error carries its context as attributes and in its message, and never a secret:
messages are passed through :func:`nexus_dagster.secrets.mask` before they are raised.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(value: object, known: Iterable[str]) -> str | None:
    """The known name closest to ``value`` (difflib), None when none is close."""
    close = difflib.get_close_matches(str(value), list(known), n=1)
    return close[0] if close else None


def did_you_mean(value: object, known: Iterable[str]) -> str:
    """``"did you mean 'file'? "`` for the closest known name, else ``""`` (a fix's prefix)."""
    name = closest(value, known)
    return f"did you mean {name!r}? " if name else ""


def field_path(loc: Iterable[str | int]) -> str:
    """A problem's field from a location: ``("sources", 0, "file_path")`` ->
    ``sources[0].file_path``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class NexusError(Exception):
    """Root of every error raised by nexus-dagster."""


class SpecError(NexusError):
    """A job spec or connection is invalid. Fatal: fixing the spec is the only cure.

    Attributes:
        problems: every problem found, each a :class:`SpecProblem`.
    """

    def __init__(self, problems: list[SpecProblem] | str):
        if isinstance(problems, str):
            problems = [SpecProblem(message=problems)]
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class SpecProblem:
    """One problem in a spec: where it is, what is wrong, how to fix it."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
        fix: str | None = None,
        value: str | None = None,
    ):
        self.message = message
        self.file = file
        self.line = line
        self.field = field
        self.fix = fix
        #: the offending value as shown to the user (secrets masked), when known
        self.value = value

    def __str__(self) -> str:
        where = self.file or "<spec>"
        if self.line:
            where += f":{self.line}"
        text = f"{where}: "
        if self.field:
            text += f"{self.field}: "
        if self.value is not None:
            text += f"{self.value}: "
        text += self.message
        if self.fix:
            text += f" (fix: {self.fix})"
        return text

    def __repr__(self) -> str:
        return f"SpecProblem({self!s})"

    def as_dict(self) -> dict[str, str | int | None]:
        """``{file, line, field, value, message, fix}`` (``nexus validate --format json``)."""
        return {"file": self.file, "line": self.line, "field": self.field, "value": self.value,
                "message": self.message, "fix": self.fix}


class UnsupportedError(SpecError):
    """The spec asks for something no connector or transformation offers (yet)."""


class ExpressionError(NexusError):
    """A filter condition or map expression uses syntax that is not allowed."""

    def __init__(self, expression: str, reason: str):
        self.expression = expression
        self.reason = reason
        super().__init__(f"expression {expression!r}: {reason}")


class ConnectorError(NexusError):
    """A connector could not reach or use its system (bad credentials, missing table, ...)."""


class RetriableError(ConnectorError):
    """A transient failure (connection reset, timeout, 429/5xx): a retry may succeed."""


class LoadError(ConnectorError):
    """A load into a target failed; the target was left as it was before the load."""


class RetriableLoadError(LoadError, RetriableError):
    """A load failed for a connection-type reason (target unreachable, restarting, session
    dropped); the target was left as it was, and a retry may succeed."""


class TransformError(NexusError):
    """A transformation failed at run time (bad custom code, type mismatch, ...)."""


class DataError(NexusError):
    """Input data is malformed (corrupt file, wrong encoding, unexpected schema)."""


class RunLockError(NexusError):
    """A run could not get its job's or target's lock in time: another run of the job (or of
    another job writing the same target) held it. Nothing was read or written."""
