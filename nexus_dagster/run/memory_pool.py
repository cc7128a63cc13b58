"""Arrow's memory pool for a run's batches: jemalloc, giving the pages of freed batches back to
the system at once.

A run allocates and frees batches of a few MB on several threads (the COPY reader's parser,
DuckDB's output, the load's encoder). pyarrow's default pool, mimalloc, keeps the pages of freed
batches for reuse on each thread: the PostgreSQL -> PostgreSQL benchmark job (2,000,000 rows,
filter + map, runner alone) peaked at 280-290 MB with it, 255-265 MB with jemalloc's own decay
and 245-251 MB with a decay of 0, no slower. The pool is the process's default, chosen once,
before the first run allocates; ``ARROW_DEFAULT_MEMORY_POOL`` set in the environment wins
(``mimalloc`` keeps pyarrow's own choice), and a pyarrow built without jemalloc (its macOS and
Windows wheels) keeps its default.
"""

from __future__ import annotations

import os
import threading

import pyarrow as pa

__all__ = ["POOL_VARIABLE", "use_run_memory_pool"]

#: pyarrow's own variable naming the default pool; when set, the pool is left as it chose
POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"

_chosen: list[str] = []
_lock = threading.Lock()


def use_run_memory_pool() -> str:
    """Make jemalloc (freed pages returned at once) the default Arrow pool, once per process,
    unless ``ARROW_DEFAULT_MEMORY_POOL`` is set or pyarrow has no jemalloc; return the name
    of the default pool's backend."""
    with _lock:
        if not _chosen:
            _chosen.append(_choose())
        return _chosen[0]


def _choose() -> str:
    if os.environ.get(POOL_VARIABLE):
        return pa.default_memory_pool().backend_name
    try:
        # before the pool's first allocation: the decay applies to arenas made afterwards
        pa.jemalloc_set_decay_ms(0)
        pool = pa.jemalloc_memory_pool()
    except NotImplementedError:
        return pa.default_memory_pool().backend_name
    pa.set_memory_pool(pool)
    return pool.backend_name
