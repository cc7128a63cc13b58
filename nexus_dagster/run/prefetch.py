"""Read ahead on a thread: the source side of a run (reading, parsing, transforming) produces the
next batches while the target side writes the current one.

pyarrow's CSV/JSON/Parquet readers and writers and DuckDB release the GIL, so a file source
feeding a Parquet file (or any target) uses two cores instead of alternating on one. The batches
and their order are exactly those of the unthreaded run; at most ``depth`` batches wait between
the two sides, so memory stays bounded. The runner uses it only when every source reads local
files (whose readers may run on another thread; a SQLite connection, for one, may not).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterable, Iterator

import pyarrow as pa

from nexus_dagster.connectors.base import Connector
from nexus_dagster.relation import Relation

_END = object()


def prefetch(relation: Relation, depth: int = 2) -> Relation:
    """The same relation, its batches produced on a worker thread up to ``depth`` ahead.

    An error while producing is raised in the reader (with its own traceback); a reader that
    stops early (a failed load) stops and joins the worker, which closes the source.
    """

    def open_() -> Iterator[pa.RecordBatch]:
        ready: queue.Queue[object] = queue.Queue(depth)
        stop = threading.Event()

        def put(item: object) -> bool:
            while not stop.is_set():
                try:
                    ready.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def produce() -> None:
            batches = iter(relation)
            try:
                for batch in batches:
                    if not put(batch):
                        return
                put(_END)
            except BaseException as exc:  # handed to the reader, raised there
                put(exc)
            finally:
                close = getattr(batches, "close", None)
                if close is not None:
                    close()

        worker = threading.Thread(target=produce, name=f"nexus-prefetch {relation.name}",
                                  daemon=True)
        worker.start()
        try:
            while True:
                item = ready.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item  # type: ignore[misc]
        finally:
            stop.set()
            worker.join()

    return Relation(relation.schema, open_, relation.name, relation.stats)


def for_sources(relation: Relation, connectors: Iterable[Connector]) -> Relation:
    """``prefetch(relation)`` when every source reads local files, else the relation itself.

    Remote stores (S3, GCS, SFTP, ...) already read ahead in their own buffers; reading further
    ahead there would only add memory. ``NEXUS_PREFETCH=0`` turns read-ahead off.
    """
    from nexus_dagster.connectors.file import FileConnector

    connectors = list(connectors)
    if os.environ.get("NEXUS_PREFETCH", "1") == "0" or not connectors:
        return relation
    if all(isinstance(c, FileConnector) and c.is_local for c in connectors):
        return prefetch(relation)
    return relation
