"""Environment switches: variables that turn a behaviour that is on by default off.

``NEXUS_PUSHDOWN``, ``NEXUS_FAST_READ``, ``NEXUS_PG_BINARY_COPY``, ``NEXUS_GC_FREEZE`` and
``NEXUS_ALLOW_CUSTOM_CODE`` are read this way: unset or any other value means on.
"""

from __future__ import annotations

import os

__all__ = ["OFF_VALUES", "switched_on"]

#: the values (any case, surrounding spaces ignored) that turn a switch off
OFF_VALUES = frozenset({"0", "false", "no", "off"})


def switched_on(variable: str) -> bool:
    """False when the environment variable ``variable`` is one of :data:`OFF_VALUES`; True
    when it is unset or holds anything else."""
    return os.environ.get(variable, "1").strip().lower() not in OFF_VALUES
