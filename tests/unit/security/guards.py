"""A guard that fails a test when user text reaches ``eval()`` or ``exec()``."""

from __future__ import annotations

import builtins
import contextlib
import sys
from collections.abc import Iterator
from typing import Any
from unittest import mock

_REAL = {"eval": builtins.eval, "exec": builtins.exec}


def strings_in(value: Any) -> list[str]:
    """Every string (keys and values) of a nested spec value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in strings_in(k) + strings_in(v)]
    if isinstance(value, list | tuple):
        return [s for item in value for s in strings_in(item)]
    return []


@contextlib.contextmanager
def no_eval(*tainted: str) -> Iterator[None]:
    """Fail if, inside the block, our package calls ``eval()``/``exec()`` at all, or anything
    calls them on source text that holds a ``tainted`` (user-supplied) string.

    Libraries keep their own uses (imports run module code objects with exec, namedtuple and
    SQLAlchemy generate functions from their own templates): those carry no user text.
    """
    needles = [t for t in tainted if len(t) >= 3]

    def guarded(kind: str):
        def call(code, *args, **kwargs):
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if caller.startswith("nexus_dagster"):
                raise AssertionError(f"{kind}() called from {caller}")
            if isinstance(code, str | bytes):
                text = code if isinstance(code, str) else code.decode(errors="replace")
                hit = next((t for t in needles if t in text), None)
                if hit is not None:
                    raise AssertionError(f"user text {hit!r} reached {kind}() in {caller}")
            return _REAL[kind](code, *args, **kwargs)

        return call

    with mock.patch.object(builtins, "eval", guarded("eval")), \
         mock.patch.object(builtins, "exec", guarded("exec")):
        yield
