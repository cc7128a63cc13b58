"""Parquet: reader by row group and streaming writer (appends copy the prior row groups)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import IO

import pyarrow as pa
import pyarrow.parquet as pq

from nexus_dagster.connectors.formats.options import ReadOptions
from nexus_dagster.connectors.formats.parse_errors import translate_errors
from nexus_dagster.connectors.formats.reader import FormatReader, Opener
from nexus_dagster.connectors.formats.schemas import apply_types
from nexus_dagster.relation import rebatch


class ParquetReader(FormatReader):
    """Parquet through ``ParquetFile.iter_batches`` (one row group in memory at a time)."""

    fmt = "parquet"

    def schema(self, opener: Opener, name: str, opts: ReadOptions, batch_size: int) -> pa.Schema:
        with translate_errors(name, self.fmt), opener() as f:
            schema = pq.ParquetFile(f).schema_arrow
        return apply_types(schema, opts.column_types)

    def batches(
        self, opener: Opener, name: str, opts: ReadOptions, schema: pa.Schema, batch_size: int
    ) -> Iterator[pa.RecordBatch]:
        with translate_errors(name, self.fmt), opener() as f:
            parquet = pq.ParquetFile(f)
            # row group by row group: over all of them at once, pyarrow reads the whole file
            # in one request (a full download on object stores)
            for group in range(parquet.num_row_groups):
                yield from parquet.iter_batches(batch_size=batch_size, row_groups=[group])


def write_parquet(
    out: IO[bytes],
    batches: Iterable[pa.RecordBatch],
    schema: pa.Schema,
    *,
    row_group_size: int,
    compression: str = "snappy",
    prior: pq.ParquetFile | None = None,
) -> int:
    """Stream batches into row groups of ``row_group_size`` rows.

    ``prior``: an existing file whose row groups are copied first, one at a time (append).
    """
    rows = 0
    writer = pq.ParquetWriter(out, schema, compression=compression)
    try:
        if prior is not None:
            for index in range(prior.num_row_groups):
                writer.write_table(prior.read_row_group(index).cast(schema))
        for batch in rebatch(batches, row_group_size):
            writer.write_batch(batch)
            rows += batch.num_rows
    finally:
        writer.close()
    return rows
