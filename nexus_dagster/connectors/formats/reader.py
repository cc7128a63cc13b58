"""What every format's reader implements (:class:`FormatReader`) and what it reads from
(:data:`Opener`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import IO

import pyarrow as pa

from nexus_dagster.connectors.formats.options import ReadOptions

#: a zero-argument callable returning a binary file object (a context manager) over the
#: decompressed content
Opener = Callable[[], IO[bytes]]


class FormatReader:
    """How one format is read: its schema first (a peek), then its batches."""

    fmt: str = ""

    def schema(self, opener: Opener, name: str, opts: ReadOptions, batch_size: int) -> pa.Schema:
        """The schema of one file (reads as little as the format allows)."""
        raise NotImplementedError

    def batches(
        self, opener: Opener, name: str, opts: ReadOptions, schema: pa.Schema, batch_size: int
    ) -> Iterator[pa.RecordBatch]:
        """The file's rows as batches whose columns are typed as in ``schema``."""
        raise NotImplementedError
