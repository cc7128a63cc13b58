"""One run of a job, Dagster-agnostic: extract -> transform -> load, yielding what happened.

The factory drives this generator from inside a Dagster asset and turns its events into
materializations; tests and the Python API can drive it directly. Nothing here knows Dagster.
"""

from __future__ import annotations

import datetime as dt
import decimal
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from nexus_dagster import prefetch, secrets
from nexus_dagster.connectors import connector_class
from nexus_dagster.connectors.base import Connector, Cursor, LoadResult, ReadRequest, WriteRequest
from nexus_dagster.errors import DataError
from nexus_dagster.relation import Relation
from nexus_dagster.spec.api import endpoint_params
from nexus_dagster.spec.engine import engine_settings
from nexus_dagster.spec.loader import JobSpec
from nexus_dagster.spec.models import DataSource, DataTarget
from nexus_dagster.spec.validate import resolve_connection


# ------------------------------------------------------------------------------- events
@dataclass
class TargetLoaded:
    """A target committed its load."""

    target: DataTarget
    result: LoadResult
    schema: pa.Schema
    rows_extracted: int
    rows_transformed: int
    #: source name -> the schema it was read with (for column lineage)
    source_schemas: dict[str, pa.Schema] = field(default_factory=dict)


@dataclass
class SourceExtracted:
    """Emitted once every target committed: the source's rows and its new cursor."""

    source: DataSource
    rows: int
    schema: pa.Schema
    cursor_before: dict[str, Any] | None
    cursor_after: dict[str, Any] | None
    state: dict[str, Any] | None = None


@dataclass
class RunSummary:
    """Totals of a run, for logs and the Python API."""

    rows_extracted: int = 0
    rows_transformed: int = 0
    rows_loaded: int = 0
    loads: list[tuple[str, LoadResult]] = field(default_factory=list)


# ------------------------------------------------------------------------------- cursors
def encode_cursor(column: str, value: Any) -> dict[str, Any]:
    """A JSON-safe cursor: the column, the value as text and its type."""
    if isinstance(value, dt.datetime):
        kind = "datetime"
        text = value.isoformat()
    elif isinstance(value, dt.date):
        kind, text = "date", value.isoformat()
    elif isinstance(value, decimal.Decimal):
        kind, text = "decimal", str(value)
    elif isinstance(value, bool):
        kind, text = "bool", str(value)
    elif isinstance(value, int):
        kind, text = "int", str(value)
    elif isinstance(value, float):
        kind, text = "float", repr(value)
    else:
        kind, text = "str", str(value)
    return {"column": column, "type": kind, "value": text}


def decode_cursor(data: Mapping[str, Any]) -> Any:
    """The Python value of a cursor made by :func:`encode_cursor`."""
    kind, text = data["type"], data["value"]
    if kind == "datetime":
        return dt.datetime.fromisoformat(text)
    if kind == "date":
        return dt.date.fromisoformat(text)
    if kind == "decimal":
        return decimal.Decimal(text)
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    if kind == "bool":
        return text == "True"
    return text


def start_cursor(source: DataSource, stored: Mapping[str, Any] | None) -> Cursor | None:
    """Where an incremental read starts: the stored cursor, else the spec's start value."""
    if not source.incremental_column:
        return None
    if stored and stored.get("column") == source.incremental_column:
        return Cursor(source.incremental_column, decode_cursor(stored), inclusive=False)
    if source.incremental_value is not None:
        return Cursor(source.incremental_column, source.incremental_value, inclusive=True)
    return None


# ------------------------------------------------------------------------------- helpers
def make_connector(endpoint: DataSource | DataTarget, spec: JobSpec, connections) -> Connector:
    """Build the endpoint's connector with its params resolved (secrets only now)."""
    kind = endpoint.source_type if isinstance(endpoint, DataSource) else endpoint.target_type
    params = {**resolve_connection(endpoint, connections), **endpoint_params(endpoint)}
    where = f"{spec.job.key}.{endpoint.name}.connection_params"
    resolved = secrets.resolve(params, where=where)
    database = resolved.get("database")
    if (
        kind.value == "database"
        and str(resolved.get("type", "")).startswith("sqlite")
        and isinstance(database, str)
        and database not in ("", ":memory:")
    ):
        resolved["database"] = _path(spec, database)
        if isinstance(endpoint, DataTarget):
            Path(resolved["database"]).parent.mkdir(parents=True, exist_ok=True)
    if kind.value == "file" and isinstance(resolved.get("base_dir"), str):
        resolved["base_dir"] = _path(spec, resolved["base_dir"])
    return connector_class(kind.value)(resolved)


def _path(
    spec: JobSpec, path: str | None, kind: str = "file", connector: Connector | None = None
) -> str | None:
    """Resolve a relative local path against the project root; URLs, paths of remote stores
    (``kind`` other than file) and paths under a connection's ``base_dir`` pass through."""
    if not path or kind != "file" or "://" in path or Path(path).is_absolute():
        return path
    if connector is not None and connector.params.get("base_dir"):
        return path
    return str(spec.root / path)


class _Counter:
    """Counts rows flowing through a relation and tracks the max of the cursor column."""

    def __init__(self, relation: Relation, cursor_column: str | None = None):
        self.relation = relation
        self.rows = 0
        self.cursor_column = cursor_column
        self.cursor_max: Any = None

    def wrapped(self) -> Relation:
        def open_() -> Iterator[pa.RecordBatch]:
            for batch in self.relation:
                self.rows += batch.num_rows
                if self.cursor_column and batch.num_rows:
                    value = pc.max(batch.column(self.cursor_column)).as_py()
                    if value is not None and (self.cursor_max is None or value > self.cursor_max):
                        self.cursor_max = value
                yield batch

        return Relation(self.relation.schema, open_, self.relation.name, self.relation.stats)


def _cursor_scalar(value: Any, type_: pa.DataType) -> pa.Scalar:
    """The cursor value as an Arrow scalar of the column's type (ISO text accepted)."""
    if isinstance(value, str) and pa.types.is_timestamp(type_):
        parsed = dt.datetime.fromisoformat(value)
        if type_.tz and parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        elif not type_.tz and parsed.tzinfo is not None:
            parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
        return pa.scalar(parsed, type=type_)
    if isinstance(value, str) and pa.types.is_date(type_):
        return pa.scalar(dt.date.fromisoformat(value[:10]), type=type_)
    return pa.scalar(value).cast(type_)


def filter_cursor(relation: Relation, cursor: Cursor, name: str) -> Relation:
    """Keep rows past the cursor, for sources that cannot filter themselves (files, APIs)."""
    index = relation.schema.get_field_index(cursor.column)
    if index < 0:
        raise DataError(
            f"source {name}: incremental_column {cursor.column!r} is not in the data; "
            f"columns: {', '.join(relation.schema.names)}"
        )
    try:
        bound = _cursor_scalar(cursor.value, relation.schema.field(index).type)
    except (ValueError, TypeError, pa.ArrowException) as exc:
        raise DataError(
            f"source {name}: cursor value {cursor.value!r} does not fit column "
            f"{cursor.column!r} of type {relation.schema.field(index).type}: {exc}"
        ) from None
    compare = pc.greater_equal if cursor.inclusive else pc.greater
    upper = None
    if cursor.upper is not None:
        upper = _cursor_scalar(cursor.upper, relation.schema.field(index).type)

    def open_() -> Iterator[pa.RecordBatch]:
        for batch in relation:
            mask = compare(batch.column(index), bound)
            if upper is not None:
                mask = pc.and_(mask, pc.less(batch.column(index), upper))
            kept = batch.filter(mask)
            if kept.num_rows:
                yield kept

    return Relation(relation.schema, open_, relation.name, relation.stats)


def _spool(relation: Relation, folder: Path) -> Relation:
    """Write a one-pass relation to Parquet batch by batch; return a re-iterable relation."""
    path = folder / "result.parquet"
    with pq.ParquetWriter(path, relation.schema) as writer:
        for batch in relation:
            writer.write_batch(batch)

    def open_() -> Iterator[pa.RecordBatch]:
        yield from pq.ParquetFile(path).iter_batches(batch_size=65536)

    return Relation(relation.schema, open_, relation.name)


# ------------------------------------------------------------------------------- the run
def execute(
    spec: JobSpec,
    connections,
    *,
    stored_cursors: Mapping[str, Mapping[str, Any] | None] | None = None,
    stored_states: Mapping[str, Mapping[str, Any] | None] | None = None,
    run_id: str | None = None,
    log=None,
    window: tuple[Any, Any] | None = None,
    source_files: Mapping[str, str] | None = None,
) -> Iterator[TargetLoaded | SourceExtracted]:
    """Run one job: yields a TargetLoaded per committed target, then a SourceExtracted per
    source (only after every target committed, so cursors never run ahead of the data).

    Args:
        spec: the job and where it came from.
        connections: named connections of the project.
        stored_cursors: source name -> the cursor kept from the last committed run.
        stored_states: source name -> the connector state kept from the last committed run.
        run_id: the Dagster run id (names appended part files).
        log: a logger-like object with ``info``.
        window: (start, end) of a partition run: each source reads rows with
            ``start <= incremental_column < end`` (no stored cursor) and each target replaces
            that window; cursors are not advanced.
        source_files: source name -> the one file to read instead of its ``file_path``
            (a new-file sensor's run).
    """
    from nexus_dagster.transforms.engine import apply_transformations

    job = spec.job
    stored_cursors = stored_cursors or {}
    stored_states = stored_states or {}
    if window is None and not source_files:
        from nexus_dagster import pushdown

        fast = pushdown.plan(spec, connections, stored_cursors, log)
        if fast is not None:  # one database-to-database COPY pipe; same events
            yield from fast.run(run_id=run_id)
            return
    opened: list[Connector] = []
    spool_dir: Path | None = None
    try:
        sources: dict[str, tuple[Connector, Relation, _Counter]] = {}
        for source in job.sources:
            connector = make_connector(source, spec, connections)
            opened.append(connector)
            cursor = start_cursor(source, stored_cursors.get(source.name))
            if window is not None and source.incremental_column:
                cursor = Cursor(source.incremental_column, window[0], True, upper=window[1])
            request = ReadRequest(
                table=source.table,
                query=source.query,
                path=_path(spec, (source_files or {}).get(source.name) or source.file_path,
                           source.source_type.value, connector),
                file_format=source.file_format,
                options=source.options,
                batch_size=source.batch_size,
                cursor=cursor,
                state=stored_states.get(source.name),
            )
            if log:
                where = ""
                if cursor:
                    op = ">=" if cursor.inclusive else ">"
                    where = f" where {cursor.column} {op} {cursor.value}"
                what = source.table or request.path or (source.api_endpoint and "records")
                what = what or "query"
                log.info(secrets.mask(
                    f"extract {source.name}: {what} from {connector.describe()}{where}"
                ))
            relation = connector.read(request)
            filtered = relation
            if cursor and not connector.supports_incremental:
                filtered = filter_cursor(relation, cursor, source.name)
            counter = _Counter(filtered, source.incremental_column)
            sources[source.name] = (connector, relation, counter)

        inputs = {name: counter.wrapped() for name, (_, _, counter) in sources.items()}
        steps = job.ordered_transformations()
        if steps or len(inputs) > 1:
            batch_size = max(s.batch_size for s in job.sources)
            result = apply_transformations(inputs, steps, batch_size=batch_size,
                                           **engine_settings(spec))
        else:
            result = next(iter(inputs.values()))
        out = _Counter(result)
        result = out.wrapped()
        # file sources read ahead on a thread while targets write (same batches, same order)
        result = prefetch.for_sources(result, [c for c, _, _ in sources.values()])
        if len(job.targets) > 1:
            spool_dir = Path(tempfile.mkdtemp(prefix=f"nexus-{job.key}-"))
            result = _spool(result, spool_dir)

        for target in job.targets:
            connector = make_connector(target, spec, connections)
            opened.append(connector)
            if log:
                what = target.table or target.file_path
                log.info(secrets.mask(f"load {target.name} ({target.write_mode.value}): "
                                      f"{what} in {connector.describe()}"))
            request = WriteRequest(
                table=target.table,
                path=_path(spec, target.file_path, target.target_type.value, connector),
                file_format=target.file_format,
                write_mode=target.write_mode.value,
                key_columns=tuple(target.key_columns),
                options=target.options,
                batch_size=target.batch_size,
                run_id=run_id,
                replace_range=_replace_range(job, window),
            )
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
            yield SourceExtracted(
                source=source,
                rows=counter.rows,
                schema=relation.schema,
                cursor_before=stored_cursors.get(source.name),
                cursor_after=None if window is not None
                else _next_cursor(source, counter, stored_cursors.get(source.name)),
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


def _replace_range(job, window: tuple[Any, Any] | None) -> tuple[str, Any, Any] | None:
    """(column, start, end) the targets replace in a partition run (the sources' column)."""
    if window is None:
        return None
    column = next((s.incremental_column for s in job.sources if s.incremental_column), None)
    return (column, window[0], window[1]) if column else None


def _next_cursor(
    source: DataSource, counter: _Counter, before: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The cursor after a committed run: the max seen, else the one before (same column)."""
    if not source.incremental_column:
        return None
    if counter.cursor_max is not None:
        return encode_cursor(source.incremental_column, counter.cursor_max)
    if before is not None and before.get("column") == source.incremental_column:
        return dict(before)
    return None
