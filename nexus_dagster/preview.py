"""What a job would load, on a sample, without loading anything (``nexus preview``).

Each source reads a sample: a database source gets ``LIMIT n`` in its SQL (the database reads
no more), any other source stops after its first ``n`` rows. The job's transformation chain runs
on the samples, and the first rows and the schema each target would receive are returned.
Nothing is written: no target is opened, no Dagster run, cursor, observation or audit line is
recorded, and sources are never acknowledged (no Kafka offset commit, no file moved). Incremental
cursors are not applied: the sample is taken from the start of each source.

Example:
    >>> result = preview_job(load_project("job_specs"), "demo_orders", rows=5)  # doctest: +SKIP
    >>> print(result.render())                                                 # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from nexus_dagster import secrets
from nexus_dagster.connectors.base import Connector, ReadRequest
from nexus_dagster.connectors.database import DatabaseConnector
from nexus_dagster.connectors.sql.session import query_source
from nexus_dagster.relation import Relation
from nexus_dagster.run.endpoints import open_endpoint, read_request

__all__ = ["JobPreview", "preview_job", "sample_request"]

DEFAULT_ROWS = 20


def sample_request(connector: Connector, request: ReadRequest, rows: int) -> ReadRequest:
    """``request`` limited to ``rows`` rows where the source can do it itself: a database
    table or query becomes ``SELECT * FROM <table | (query)> LIMIT rows``. Other requests are
    returned as they are (their reader stops after ``rows`` rows)."""
    if not isinstance(connector, DatabaseConnector) or not (request.table or request.query):
        return request
    if request.table:
        schema, name = connector.split_table(request.table)
        source: sa.FromClause = sa.table(name, schema=schema)
    else:
        source = query_source(request.query or "", [])
    statement = sa.select(sa.literal_column("*")).select_from(source).limit(rows)
    sql = statement.compile(dialect=connector.engine.dialect,
                            compile_kwargs={"literal_binds": True})
    return replace(request, table=None, query=str(sql))


def _head(relation: Relation, rows: int) -> pa.Table:
    """The first ``rows`` rows of a relation (reading stops there)."""
    def batches() -> Iterator[pa.RecordBatch]:
        left = rows
        for batch in relation:
            if left <= 0:
                return
            yield batch.slice(0, left)
            left -= min(left, batch.num_rows)

    return pa.Table.from_batches(list(batches()), schema=relation.schema)


@dataclass
class JobPreview:
    """A job's preview: the rows sampled per source and what each target would receive.

    Attributes:
        job: the job's name.
        rows: the sample size asked for.
        sources: source name -> rows read.
        targets: target name -> (first rows, described location).
    """

    job: str
    rows: int
    sources: dict[str, int] = field(default_factory=dict)
    targets: dict[str, tuple[pa.Table, str]] = field(default_factory=dict)

    def render(self) -> str:
        """The preview as text: per target its schema and first rows."""
        lines = [f"preview of job {self.job} on a sample of at most {self.rows} rows per "
                 "source (nothing written, nothing recorded)"]
        for name, count in self.sources.items():
            lines.append(f"  source {name}: {count} row(s) read")
        shown: dict[int, str] = {}
        for name, (table, where) in self.targets.items():
            lines.append("")
            lines.append(f"target {name} ({where}): {table.num_rows} row(s)")
            if id(table) in shown:
                lines.append(f"  the same rows as target {shown[id(table)]}")
                continue
            shown[id(table)] = name
            lines.append("  schema:")
            lines += [f"    {f.name}: {f.type}" for f in table.schema]
            lines.append("  rows:")
            frame = table.to_pandas() if table.num_rows else None
            text = "(none)" if frame is None else frame.to_string(index=False, max_colwidth=40)
            lines += [f"    {line}" for line in text.splitlines()]
        return secrets.mask("\n".join(lines))


def _where(target: Any) -> str:
    what = target.table or target.file_path or "records"
    place = target.connection or target.target_type
    return f"{target.target_type} {place}: {what}" if target.connection else f"{place}: {what}"


def preview_job(project: Any, name: str, rows: int = DEFAULT_ROWS) -> JobPreview:
    """Run ``name``'s extraction on a sample and its transformation chain (see module doc).

    Raises:
        SpecError: no such job.
        NexusError: a source cannot be read or a transformation fails (messages masked).
    """
    from nexus_dagster.transforms.chain import apply_transformations, transform_outputs

    spec = project.job(name)
    job = spec.job
    result = JobPreview(job=job.key, rows=rows)
    opened: list[Connector] = []
    try:
        samples: dict[str, Relation] = {}
        for source in job.sources:
            connector = open_endpoint(source, spec, project.connections)
            opened.append(connector)
            request = sample_request(connector, read_request(source, connector, spec.root), rows)
            table = _head(connector.read(request), rows)
            result.sources[source.name] = table.num_rows
            samples[source.name] = Relation.from_table(table, name=source.name)
        steps = job.ordered_transformations()
        wanted = list(dict.fromkeys(target.input for target in job.targets))
        if wanted == [None]:
            if steps or len(samples) > 1:
                out = apply_transformations(samples, steps, batch_size=max(rows, 1))
            else:
                out = next(iter(samples.values()))
            heads = {None: out.to_table().slice(0, rows)}
        else:  # targets reading different steps or raw sources (``input:``)
            with tempfile.TemporaryDirectory(prefix="nexus-preview-") as folder:
                outs = transform_outputs(samples, steps, wanted, Path(folder),
                                         batch_size=max(rows, 1))
                heads = {name: outs[name].to_table().slice(0, rows) for name in wanted}
        for target in job.targets:
            result.targets[target.name] = (heads[target.input], _where(target))
        return result
    finally:
        for connector in opened:
            with contextlib.suppress(Exception):  # must not hide the preview's own error
                connector.close()
