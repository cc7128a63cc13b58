"""The general plan: any sources, any transformations, any targets, as Arrow batches.

Sources are read as lazy relations (filtered by the cursor when the connector cannot filter
itself), the transformation chain runs in DuckDB over their streams, and the result is loaded
into each target in turn (spooled to a temporary Parquet file when there are several, so every
target gets the same rows). Sources are acknowledged and reported only after every target
committed. It takes every job, so it is the last planner.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from nexus_dagster import secrets
from nexus_dagster.connectors.base import Connector
from nexus_dagster.relation import Relation
from nexus_dagster.run import prefetch
from nexus_dagster.run.cursors import (
    RowCounter,
    filter_cursor,
    next_cursor,
    start_cursor,
    window_cursor,
)
from nexus_dagster.run.endpoints import read_request, write_request
from nexus_dagster.run.events import Event, SourceExtracted, TargetLoaded
from nexus_dagster.run.plan import RunContext

__all__ = ["GeneralPlan", "plan", "replace_range", "transform_settings"]


def plan(context: RunContext) -> GeneralPlan:
    """The general path takes every job."""
    return GeneralPlan(context)


def transform_settings(spec: Any) -> dict[str, Any]:
    """``apply_transformations`` keyword arguments from the job's ``engine`` block.

    A relative ``temp_directory`` is taken from the project root (made if missing).
    """
    engine = spec.job.engine
    if engine is None:
        return {}
    temp = engine.temp_directory
    if temp is not None:
        folder = Path(temp).expanduser()
        if not folder.is_absolute():
            folder = spec.root / folder
        folder.mkdir(parents=True, exist_ok=True)
        temp = str(folder)
    return {"memory_limit": engine.memory_limit, "temp_directory": temp,
            "threads": engine.threads}


def replace_range(job: Any, window: tuple[Any, Any] | None) -> tuple[str, Any, Any] | None:
    """(column, start, end) the targets replace in a partition run (the sources' column)."""
    if window is None:
        return None
    column = next((s.incremental_column for s in job.sources if s.incremental_column), None)
    return (column, window[0], window[1]) if column else None


def _spool(relation: Relation, folder: Path) -> Relation:
    """Write a one-pass relation to Parquet batch by batch; return a re-iterable relation."""
    path = folder / "result.parquet"
    with pq.ParquetWriter(path, relation.schema) as writer:
        for batch in relation:
            writer.write_batch(batch)

    def open_() -> Iterator[pa.RecordBatch]:
        yield from pq.ParquetFile(path).iter_batches(batch_size=65536)

    return Relation(relation.schema, open_, relation.name)


class GeneralPlan:
    """Extract -> transform (DuckDB) -> load, for any job."""

    def __init__(self, context: RunContext):
        self.context = context

    def run(self) -> Iterator[Event]:
        """Load every target, then report every source (see the module docstring)."""
        from nexus_dagster.transforms.chain import apply_transformations

        context = self.context
        spec, log, window = context.spec, context.log, context.window
        job = spec.job
        opened: list[Connector] = []
        spool_dir: Path | None = None
        try:
            sources: dict[str, tuple[Connector, Relation, RowCounter]] = {}
            for source in job.sources:
                connector = context.open(source)
                opened.append(connector)
                cursor = start_cursor(source, context.stored_cursors.get(source.name))
                if window is not None and source.incremental_column:
                    cursor = window_cursor(source.incremental_column, window)
                request = read_request(
                    source, connector, spec.root, cursor=cursor,
                    state=context.stored_states.get(source.name),
                    file_path=context.source_files.get(source.name),
                )  # fmt: skip
                if log:
                    log.info(secrets.mask(_extract_line(source, request, connector)))
                relation = connector.read(request)
                filtered = relation
                if cursor and not connector.supports_incremental:
                    filtered = filter_cursor(relation, cursor, source.name)
                sources[source.name] = (
                    connector, relation, RowCounter(filtered, source.incremental_column)
                )

            inputs = {name: counter.wrapped() for name, (_, _, counter) in sources.items()}
            steps = job.ordered_transformations()
            if steps or len(inputs) > 1:
                batch_size = max(s.batch_size for s in job.sources)
                result = apply_transformations(inputs, steps, batch_size=batch_size,
                                               **transform_settings(spec))
            else:
                result = next(iter(inputs.values()))
            out = RowCounter(result)
            result = out.wrapped()
            # file sources read ahead on a thread while targets write (same batches, same order)
            result = prefetch.for_sources(result, [c for c, _, _ in sources.values()])
            if len(job.targets) > 1:
                spool_dir = Path(tempfile.mkdtemp(prefix=f"nexus-{job.key}-"))
                result = _spool(result, spool_dir)

            for target in job.targets:
                connector = context.open(target)
                opened.append(connector)
                if log:
                    log.info(secrets.mask(
                        f"load {target.name} ({target.write_mode}): "
                        f"{target.table or target.file_path} in {connector.describe()}"
                    ))
                request = write_request(target, connector, spec.root, run_id=context.run_id,
                                        replace_range=replace_range(job, window))
                loaded = connector.write(result, request)
                yield TargetLoaded(
                    target=target,
                    result=loaded,
                    schema=result.schema,
                    rows_extracted=sum(c.rows for _, _, c in sources.values()),
                    rows_transformed=out.rows,
                    source_schemas={n: rel.schema for n, (_, rel, _) in sources.items()},
                )

            # every target committed: sources may now let go of what they read
            for source in job.sources:
                connector, relation, counter = sources[source.name]
                connector.acknowledge(relation)
                before = context.stored_cursors.get(source.name)
                yield SourceExtracted(
                    source=source,
                    rows=counter.rows,
                    schema=relation.schema,
                    cursor_before=before,
                    cursor_after=None if window is not None
                    else next_cursor(source, counter, before),
                    state=relation.stats.get("state"),
                )
        finally:
            for connector in opened:
                try:
                    connector.close()
                except Exception as exc:  # closing must not hide the run's own error
                    if log:
                        log.warning(secrets.mask(f"closing {connector.describe()} failed: {exc}"))
            if spool_dir:
                shutil.rmtree(spool_dir, ignore_errors=True)


def _extract_line(source: Any, request: Any, connector: Connector) -> str:
    where = ""
    if request.cursor:
        op = ">=" if request.cursor.inclusive else ">"
        where = f" where {request.cursor.column} {op} {request.cursor.value}"
    what = source.table or request.path or (source.api_endpoint and "records") or "query"
    return f"extract {source.name}: {what} from {connector.describe()}{where}"
