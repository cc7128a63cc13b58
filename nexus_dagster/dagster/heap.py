"""What a Dagster process does with its Python heap: the objects it loaded are frozen out of
the cyclic garbage collector, once when the definitions are built and once at the first step.

A process that runs a step has imported Dagster, pyarrow, SQLAlchemy and the connectors, built
the definitions, resolved the job and made its instance: a few hundred thousand objects that
live as long as the process. CPython's full (generation 2) collection walks every one of them
once enough new objects have survived: once while a 10-row job's command makes its instance
(~0.2 s) and once in the middle of a run (0.15-0.5 s on a 2-core machine).
:func:`freeze_loaded_objects` moves the objects alive at that moment into the permanent
generation (``gc.freeze()``), which no collection walks: later collections walk only what was
made since.

The price: a reference cycle among the frozen objects that becomes garbage later is never
freed. Freezing at most once per moment (``definitions``, ``run``) and per process bounds that
to what was alive at those two moments. ``NEXUS_GC_FREEZE=0`` turns it off.
"""

from __future__ import annotations

import gc
import threading
from typing import Literal

from nexus_dagster.switches import switched_on

__all__ = ["ENV_SWITCH", "freeze_loaded_objects"]

ENV_SWITCH = "NEXUS_GC_FREEZE"

_done: set[str] = set()
_lock = threading.Lock()


def freeze_loaded_objects(moment: Literal["definitions", "run"]) -> bool:
    """Freeze every object alive now out of the garbage collector's walks, the first time this
    process reaches ``moment`` (unless ``NEXUS_GC_FREEZE`` is ``0``/``false``/``no``/``off``).

    Args:
        moment: ``definitions`` (built) or ``run`` (a step starts).

    Returns:
        True when this call froze them.
    """
    if not switched_on(ENV_SWITCH):
        return False
    with _lock:
        if moment in _done:
            return False
        _done.add(moment)
    gc.freeze()
    return True
