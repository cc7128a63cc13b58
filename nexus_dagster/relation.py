"""The data in flight: a lazy, one-pass stream of Arrow record batches with a known schema."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa


class DuckdbScan(Protocol):
    """Data DuckDB can read itself, with exactly a relation's columns and rows (a local CSV or
    Parquet source: see :mod:`nexus_dagster.run.file_scans`). A DuckDB consumer may scan it
    instead of iterating the relation's batches, so that DuckDB reads only the columns and rows
    its query needs, on its own threads."""

    #: True when :meth:`select_sql`'s ordinal numbers the rows as DuckDB reads them (the
    #: statement must then preserve insertion order); False when it comes from the data
    numbers_in_read_order: bool
    #: True when :meth:`scanned` counts the rows from the statement's profile (the statement
    #: is then profiled, a cost); False when it knows them without one
    needs_profile: bool

    def select_sql(self, ordinal: str | None = None, offset: int = 0) -> str:
        """A DuckDB ``SELECT`` of the relation's columns (names and types as in its schema),
        plus, with ``ordinal``, a column of that name numbering the rows in read order from
        ``offset``."""
        ...

    def scanned(self, con: Any) -> None:
        """Called on the DuckDB connection right after the statement that read the scan to
        its end (to count the rows read)."""
        ...

    def read_error(self, exc: Exception) -> Exception | None:
        """The error to raise for ``exc`` (DuckDB's) when it is about reading this scan's
        data, naming the source and the fix; None when it is not."""
        ...


@dataclass
class Relation:
    """A description of data, not the data: batches are produced only when iterated.

    Attributes:
        schema: the Arrow schema every batch has.
        open: a callable returning a fresh iterator of record batches. Connectors may allow it
            to be called once only (a database cursor, a Kafka consumer); callers that need two
            passes materialize the relation first (see :meth:`to_table` or Parquet spooling).
        name: where the data comes from, for messages ("source orders", "transform paid").
        stats: what the connector reports about the read (files, paths, state).
        scan: how DuckDB may read the same data itself (a local file source), or None;
            wrappers that change the batches drop it.
    """

    schema: pa.Schema
    open: Callable[[], Iterator[pa.RecordBatch]]
    name: str = "relation"
    stats: dict[str, object] = field(default_factory=dict)
    scan: DuckdbScan | None = None

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        for batch in self.open():
            if batch.schema != self.schema:
                batch = conform(batch, self.schema)
            yield batch

    def reader(self) -> pa.RecordBatchReader:
        """This relation as an Arrow C-stream reader (DuckDB, pyarrow and ADBC consume it)."""
        return pa.RecordBatchReader.from_batches(self.schema, iter(self))

    def to_table(self) -> pa.Table:
        """Materialize in memory. Only for small data, tests and custom code."""
        return pa.Table.from_batches(list(self), schema=self.schema)

    @classmethod
    def from_table(cls, table: pa.Table, name: str = "table", batch_size: int = 65536) -> Relation:
        """A relation over an in-memory table, re-iterable."""
        return cls(table.schema, lambda: iter(table.to_batches(max_chunksize=batch_size)), name)

    @classmethod
    def from_batches(
        cls, schema: pa.Schema, batches: Iterable[pa.RecordBatch], name: str = "batches"
    ) -> Relation:
        """A one-pass relation over an iterable of batches."""
        return cls(schema, lambda: iter(batches), name)


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` with exactly ``schema``'s columns (by name; missing ones null), cast."""
    if batch.schema.equals(schema):
        return batch
    columns = []
    for target in schema:
        index = batch.schema.get_field_index(target.name)
        if index < 0:
            columns.append(pa.nulls(batch.num_rows, target.type))
        else:
            column = batch.column(index)
            columns.append(column if column.type == target.type else column.cast(target.type))
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def rebatch(batches: Iterable[pa.RecordBatch], size: int) -> Iterator[pa.RecordBatch]:
    """Re-cut a stream of batches (one schema) into batches of exactly ``size`` rows (last less),
    holding at most one incoming batch plus ``size`` rows."""
    size = max(1, int(size))
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        if not pending and batch.num_rows == size:
            yield batch
            continue
        pending.append(batch)
        count += batch.num_rows
        while count >= size:
            combined = pending[0] if len(pending) == 1 else pa.concat_batches(pending)
            yield combined.slice(0, size)
            rest = combined.slice(size)
            pending = [rest] if rest.num_rows else []
            count = rest.num_rows
    if count:
        yield pending[0] if len(pending) == 1 else pa.concat_batches(pending)
