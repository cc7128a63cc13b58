"""Fixed-width text (``file_format: fixed_width``): a streaming reader and writer.

Columns are character positions on each line: ``options.widths`` (consecutive widths,
``[6, 20, 8]``) or ``options.colspecs`` (``[start, end]`` pairs, 0-based, end excluded, gaps
allowed). Names come from ``options.names`` (``column_names``); without them the first line
(after ``skip_rows``), cut at the same positions, holds them. Values are stripped of surrounding
blanks; an empty value (or one of ``null_values``) is null, so are the fields past the end of a
short line. LF and CRLF line ends, blank lines skipped. Types are inferred from the first batch
like CSV's (``column_types`` overrides them). Lines are cut with Arrow's string kernels, a batch
of lines at a time, so memory stays near one batch.

The writer pads every value to its column's width (text left-aligned, numbers right-aligned) and
fails, naming the column and row, when a value is wider than its column: never a cut value.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc

from nexus_dagster.connectors.formats.options import ReadOptions, parse_colspecs
from nexus_dagster.connectors.formats.parse_errors import translate_errors
from nexus_dagster.connectors.formats.reader import FormatReader, Opener
from nexus_dagster.connectors.formats.schemas import check_text_types
from nexus_dagster.connectors.formats.text_columns import text_schema, typed_batch, with_nulls
from nexus_dagster.errors import DataError, LoadError, SpecError

_BLOCK = 1 << 20


def _colspecs(opts: ReadOptions) -> tuple[tuple[int, int], ...]:
    if not opts.colspecs:
        raise SpecError(
            "file_format fixed_width needs options.widths (e.g. [6, 20, 8]) or options.colspecs "
            "(e.g. [[0, 6], [6, 26]])"
        )
    if opts.column_names and len(opts.column_names) != len(opts.colspecs):
        raise SpecError(
            f"options.names has {len(opts.column_names)} names for {len(opts.colspecs)} "
            "fixed-width columns; give one name per column"
        )
    return opts.colspecs


def _lines(f: IO[bytes], encoding: str, batch_size: int) -> Iterator[list[str]]:
    """The file's non-blank lines (without line ends), ``batch_size`` or fewer at a time."""
    decoder = codecs.getincrementaldecoder("utf-8-sig" if encoding == "utf8" else encoding)()
    tail = ""
    pending: list[str] = []
    while True:
        chunk = f.read(_BLOCK)
        text = tail + decoder.decode(chunk, final=not chunk)
        lines = text.replace("\r\n", "\n").split("\n")
        tail = "" if not chunk else lines.pop()
        pending.extend(line for line in lines if line.strip())
        while len(pending) >= batch_size:
            yield pending[:batch_size]
            del pending[:batch_size]
        if not chunk:
            break
    if pending:
        yield pending


def _cut(lines: list[str], spans: tuple[tuple[int, int], ...]) -> list[pa.Array]:
    """Each column's stripped text (empty text as is)."""
    array = pa.array(lines, pa.string())
    array = pc.utf8_rtrim(array, characters="\r")
    return [
        pc.utf8_trim_whitespace(pc.utf8_slice_codeunits(array, start, end))
        for start, end in spans
    ]


class FixedWidthReader(FormatReader):
    """Streaming fixed-width text (see the module docstring)."""

    fmt = "fixed_width"

    def _columns(
        self, opener: Opener, name: str, opts: ReadOptions, batch_size: int
    ) -> Iterator[dict[str, pa.Array]]:
        spans = _colspecs(opts)
        names = list(opts.column_names) if opts.column_names else None
        skip = opts.skip_rows
        rows = 0
        with translate_errors(name, self.fmt, opts.encoding), opener() as f:
            for lines in _lines(f, opts.encoding, batch_size):
                if skip:
                    taken = min(skip, len(lines))
                    lines, skip = lines[taken:], skip - taken
                if names is None and lines:
                    names = [v.as_py() for v in (c[0] for c in _cut(lines[:1], spans))]
                    lines = lines[1:]
                    missing = [i + 1 for i, n in enumerate(names) if not n]
                    if missing or len(set(names)) != len(names):
                        raise DataError(
                            f"{name}: the header line has empty or repeated column names "
                            f"({names}); set options.names"
                        )
                if not lines or names is None:
                    continue
                cut = _cut(lines, spans)
                rows += len(lines)
                nulls = (*opts.null_values, "")
                yield {n: with_nulls(c, nulls) for n, c in zip(names, cut, strict=True)}
        if names is None:
            raise DataError(f"file {name} is empty")
        if not rows:  # a header line and no rows
            yield {n: pa.array([], pa.string()) for n in names}

    def schema(self, opener: Opener, name: str, opts: ReadOptions, batch_size: int) -> pa.Schema:
        batches = self._columns(opener, name, opts, batch_size)
        try:
            return text_schema(next(batches), opts.column_types)
        finally:
            batches.close()

    def batches(
        self, opener: Opener, name: str, opts: ReadOptions, schema: pa.Schema, batch_size: int
    ) -> Iterator[pa.RecordBatch]:
        for columns in self._columns(opener, name, opts, batch_size):
            yield typed_batch(columns, schema, name)


def _text_column(column: pa.Array) -> pa.Array:
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column.cast(pa.string())
    if pa.types.is_boolean(column.type):
        return pc.if_else(column, "true", "false")
    return column.cast(pa.string())


def fixed_widths(options: Mapping[str, Any]) -> list[int]:
    """The column widths of a fixed-width target (``options.widths``).

    Raises:
        SpecError: no widths, or colspecs (targets write consecutive columns).
    """
    if options.get("colspecs") is not None or options.get("widths") is None:
        raise SpecError(
            "a fixed_width target needs options.widths (one width per column, e.g. [6, 20, 8]);"
            " colspecs are for sources"
        )
    spans = parse_colspecs(options.get("widths"), None) or ()
    return [end - start for start, end in spans]


def write_fixed_width(
    out: IO[bytes],
    batches: Iterable[pa.RecordBatch],
    schema: pa.Schema,
    *,
    widths: list[int],
    header: bool = False,
    encoding: str = "utf8",
) -> int:
    """Stream batches as fixed-width lines (LF ends), each value padded to its column's width.

    Raises:
        LoadError: the widths do not match the columns, or a value (or, with ``header``, a
            name) is wider than its column.
    """
    check_text_types(schema, "fixed_width")
    if len(widths) != len(schema):
        raise LoadError(
            f"options.widths has {len(widths)} widths for {len(schema)} columns "
            f"({', '.join(schema.names)}); give one width per column"
        )
    right = [pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
             or pa.types.is_decimal(f.type) for f in schema]
    codec = "utf-8" if encoding == "utf8" else encoding

    def line(values: Iterable[str], row: str) -> str:
        parts = []
        for value, width, field, align in zip(values, widths, schema, right, strict=True):
            if len(value) > width:
                raise LoadError(
                    f"{row}: value {value[:40]!r} of column {field.name!r} is {len(value)} "
                    f"characters, wider than its width {width}; raise options.widths"
                )
            parts.append(value.rjust(width) if align else value.ljust(width))
        return "".join(parts)

    if header:
        out.write((line(schema.names, "header") + "\n").encode(codec))
    total = 0
    for batch in batches:
        columns = [_text_column(c).to_pylist() for c in batch.columns]
        text = []
        for i, values in enumerate(zip(*columns, strict=True)):
            text.append(line(("" if v is None else v for v in values), f"row {total + i + 1}"))
        if text:
            out.write(("\n".join(text) + "\n").encode(codec))
        total += batch.num_rows
    return total
