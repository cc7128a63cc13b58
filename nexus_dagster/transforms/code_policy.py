"""Whether this deployment runs custom_code transformations (``NEXUS_ALLOW_CUSTOM_CODE``).

Both the spec checks and the transformation chain ask here, so that ``nexus validate`` and a
run agree.

Example:
    >>> custom_code_allowed()  # True unless NEXUS_ALLOW_CUSTOM_CODE is 0/false/no/off
    True
"""

from __future__ import annotations

from nexus_dagster.switches import switched_on

__all__ = ["CUSTOM_CODE_ENV", "custom_code_allowed"]

CUSTOM_CODE_ENV = "NEXUS_ALLOW_CUSTOM_CODE"
"""Set to ``0`` (or false/no/off) to refuse custom_code transformations in a deployment."""


def custom_code_allowed() -> bool:
    """Whether this deployment runs custom_code transformations.

    Returns:
        False when the environment variable ``NEXUS_ALLOW_CUSTOM_CODE`` is ``0`` (or
        ``false``, ``no``, ``off``), True otherwise.
    """
    return switched_on(CUSTOM_CODE_ENV)
