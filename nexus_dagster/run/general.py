"""The general plan: any sources, any transformations, any targets, as Arrow batches.

Sources are read as lazy relations (filtered by the cursor when the connector cannot filter
itself), the transformation chain runs in DuckDB over their streams, and the result is loaded
into each target in turn (spooled to a temporary Parquet file when there are several, so every
target gets the same rows). A target with an ``input`` loads that step's result (or a source's
raw rows); each step still computes once (``transform_outputs``). With row ``rules`` the good
targets' rows are split once into good and rejected rows before any target is written
(:mod:`~nexus_dagster.run.quarantine`), and the quarantine target commits first. Sources are
acknowledged and reported only after every target committed. It takes every job, so it is the
last planner.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from nexus_dagster import secrets
from nexus_dagster.connectors.base import Connector
from nexus_dagster.connectors.sql.change_apply import OP_COLUMN
from nexus_dagster.relation import Relation
from nexus_dagster.run import prefetch
from nexus_dagster.run.after_load import KeyCollector, finish_source, key_collector
from nexus_dagster.run.cursors import RowCounter, next_cursor
from nexus_dagster.run.endpoints import write_request
from nexus_dagster.run.events import Event, SourceExtracted, TargetLoaded
from nexus_dagster.run.file_scans import attach_file_scans
from nexus_dagster.run.memory_pool import use_run_memory_pool
from nexus_dagster.run.plan import RunContext
from nexus_dagster.run.progress import Progress
from nexus_dagster.run.quarantine import QUARANTINE_OUTPUT, load_order, output_key
from nexus_dagster.run.source_reads import cursor_filtered, run_read_request
from nexus_dagster.run.staging import check_fresh
from nexus_dagster.scratch import make_scratch_folder
from nexus_dagster.transforms.rules_sql import split_rows
from nexus_dagster.transforms.spool import spooled

__all__ = ["PLAN_NAME", "GeneralPlan", "plan", "replace_range", "transform_settings"]

#: what a target loaded by this plan records as ``nexus/plan``
PLAN_NAME = "general"


def plan(context: RunContext) -> GeneralPlan:
    """The general path takes every job."""
    return GeneralPlan(context)


def transform_settings(spec: Any) -> dict[str, Any]:
    """``apply_transformations`` keyword arguments from the job's ``engine`` block.

    A relative ``temp_directory`` is taken from the project root (made if missing). A job with
    ``parallel: true`` runs the engine on ``max_workers`` threads (independent transformations
    and the operators of each run concurrently) unless ``engine.threads`` says otherwise.
    """
    engine = spec.job.engine
    parallel_threads = spec.job.max_workers if spec.job.parallel else None
    if engine is None:
        return {"threads": parallel_threads} if parallel_threads else {}
    temp = engine.temp_directory
    if temp is not None:
        folder = Path(temp).expanduser()
        if not folder.is_absolute():
            folder = spec.root / folder
        folder.mkdir(parents=True, exist_ok=True)
        temp = str(folder)
    return {"memory_limit": engine.memory_limit, "temp_directory": temp,
            "threads": engine.threads or parallel_threads}


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
        from nexus_dagster.transforms.chain import apply_transformations, transform_outputs

        context = self.context
        spec, log, window = context.spec, context.log, context.window
        job = spec.job
        use_run_memory_pool()  # before the first batch: see run/memory_pool.py
        started = dt.datetime.now(dt.UTC)
        opened: list[Connector] = []
        spool_dir: Path | None = None
        try:
            sources: dict[str, tuple[Connector | None, Relation, RowCounter]] = {}
            requests: dict[str, Any] = {}
            collectors: dict[str, KeyCollector | None] = {}
            # the load step of a split job: staged rows, extracted from the stored cursors
            check_fresh(context.staged, context.stored_cursors, context.stored_states)
            for source in job.sources:
                staged = context.staged.get(source.name)
                if staged is not None:  # read (and cursor-filtered) by its extraction step
                    sources[source.name] = (None, staged.relation,
                                            RowCounter(staged.relation, source.incremental_column))
                    requests[source.name], collectors[source.name] = None, None
                    continue
                connector = context.open(source)
                opened.append(connector)
                request = run_read_request(context, source, connector)
                if log:
                    log.info(secrets.mask(_extract_line(source, request, connector)))
                relation = connector.read(request)
                filtered = cursor_filtered(relation, request, connector, source)
                requests[source.name] = request
                collectors[source.name] = key_collector(source, filtered)
                if collectors[source.name] is not None:
                    filtered = collectors[source.name].wrapped()
                sources[source.name] = (
                    connector, relation, RowCounter(filtered, source.incremental_column)
                )

            inputs = {name: counter.wrapped() for name, (_, _, counter) in sources.items()}
            steps = job.ordered_transformations()
            batch_size = max(s.batch_size for s in job.sources)
            last = steps[-1].name if steps else None
            readers = Counter(t.input or last for t in job.targets
                              if output_key(job, t, last) != QUARANTINE_OUTPUT)
            # local CSV/Parquet sources the chain's DuckDB may scan itself
            inputs = attach_file_scans(job, inputs, sources, requests, readers)
            if any(key != last for key in readers):
                # targets write different steps (or raw sources): each step computes once
                spool_dir = make_scratch_folder("nexus-spool-")
                results = transform_outputs(inputs, steps, list(readers), spool_dir,
                                            batch_size=batch_size, **transform_settings(spec))
            elif steps or len(inputs) > 1:
                results = {last: apply_transformations(inputs, steps, batch_size=batch_size,
                                                       **transform_settings(spec))}
            else:
                results = {last: next(iter(inputs.values()))}
            outputs: dict[str | None, tuple[Relation, RowCounter]] = {}
            for index, (key, result) in enumerate(results.items()):
                out = RowCounter(result)
                result = out.wrapped()
                # file sources read ahead on a thread while targets write (same batches, order)
                result = prefetch.for_sources(result, [c for c, _, _ in sources.values()])
                shared = readers[key] > 1 and not job.rules  # rules: spooled by the split
                if shared and len(results) > 1:
                    result = spooled(result, spool_dir / f"output_{index}.arrow")
                elif shared:
                    spool_dir = make_scratch_folder("nexus-spool-")
                    result = _spool(result, spool_dir)
                outputs[key] = (result, out)
            rule_counts = None
            if job.rules:
                # the good targets' rows split once by the rules, before any target is written
                # (an action: fail rule raises here); see run/quarantine.py
                key, (result, out) = next(iter(outputs.items()))
                spool_dir = spool_dir or make_scratch_folder("nexus-spool-")
                split = split_rows(result, job.rules, spool_dir, started, batch_size=batch_size,
                                   **transform_settings(spec))
                outputs = {key: (split.good, out), QUARANTINE_OUTPUT: (split.rejected, out)}
                rule_counts = split.counts

            # a cdc source's rows are changes: upsert/sync targets apply them by _op
            changes = OP_COLUMN if any(source.cdc for source in job.sources) else None
            for target in load_order(job):
                result, out = outputs[output_key(job, target, last)]
                connector = context.open(target)
                opened.append(connector)
                if log:
                    log.info(secrets.mask(
                        f"load {target.name} ({target.write_mode}): "
                        f"{target.table or target.file_path} in {connector.describe()}"
                    ))
                request = write_request(target, connector, spec.root, run_id=context.run_id,
                                        idempotency_scope=context.idempotency_scope,
                                        replace_range=replace_range(job, window),
                                        change_column=changes)
                progress = Progress(log, f"load {target.name}")
                loaded = connector.write(progress.wrap(result), request)
                progress.finish()
                loaded.extra.setdefault("plan", PLAN_NAME)
                loaded.extra["rows_per_second"] = progress.rows_per_second(loaded.rows_loaded)
                yield TargetLoaded(
                    target=target,
                    result=loaded,
                    schema=result.schema,
                    rows_extracted=sum(c.rows for _, _, c in sources.values()),
                    rows_transformed=out.rows,
                    source_schemas={n: rel.schema for n, (_, rel, _) in sources.items()},
                    rules=rule_counts,
                )

            # every target committed: sources may now let go of what they read
            for source in job.sources:
                connector, relation, counter = sources[source.name]
                done = None
                if connector is not None:  # staged sources acknowledge nothing (refused)
                    connector.acknowledge(relation)
                    done = finish_source(source, connector, relation, requests[source.name],
                                         collectors[source.name], counter.cursor_max, spec.root)
                if done is not None and log:
                    log.info(f"after_load {source.name}: {done}")
                before = context.stored_cursors.get(source.name)
                yield SourceExtracted(
                    source=source,
                    rows=counter.rows,
                    schema=relation.schema,
                    cursor_before=before,
                    cursor_after=None if window is not None
                    else next_cursor(source, counter, before),
                    state=relation.stats.get("state"),
                    after_load=done,
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
