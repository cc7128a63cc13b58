"""CSV and TSV: streaming reader (``pyarrow.csv.open_csv``), streaming writer in any encoding,
and the header line of a file."""

from __future__ import annotations

import codecs
import csv as pycsv
import io
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any

import pyarrow as pa
import pyarrow.csv as pacsv

from nexus_dagster.connectors.formats.fixed_decimals import (
    first_unfit_text,
    text_decimal_type,
    unfit_value_error,
)
from nexus_dagster.connectors.formats.options import ReadOptions, read_block_size
from nexus_dagster.connectors.formats.parse_errors import encoding_message, translate_errors
from nexus_dagster.connectors.formats.reader import FormatReader, Opener
from nexus_dagster.connectors.formats.schemas import (
    apply_types,
    check_text_types,
    normalize_inferred,
)
from nexus_dagster.errors import DataError


class CsvReader(FormatReader):
    """Streaming CSV/TSV through ``pyarrow.csv.open_csv``."""

    def __init__(self, fmt: str = "csv"):
        self.fmt = fmt

    def _options(
        self, opts: ReadOptions, batch_size: int, types: Mapping[str, pa.DataType]
    ) -> dict[str, Any]:
        skip = opts.skip_rows
        if opts.column_names and opts.header:
            skip += 1  # the file's own header row is replaced
        read = pacsv.ReadOptions(
            encoding=opts.encoding,
            block_size=read_block_size(opts, batch_size),
            use_threads=opts.use_threads,
            skip_rows=skip,
            column_names=list(opts.column_names) if opts.column_names else None,
            autogenerate_column_names=not opts.header and not opts.column_names,
        )
        parse = pacsv.ParseOptions(
            delimiter=opts.delimiter or ("\t" if self.fmt == "tsv" else ","),
            quote_char=opts.quote_char,
            newlines_in_values=True,
        )
        convert = pacsv.ConvertOptions(
            column_types=dict(types),
            null_values=list(opts.null_values),
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        )
        return {"read_options": read, "parse_options": parse, "convert_options": convert}

    def schema(self, opener: Opener, name: str, opts: ReadOptions, batch_size: int) -> pa.Schema:
        with translate_errors(name, self.fmt, opts.encoding), opener() as f:
            reader = pacsv.open_csv(f, **self._options(opts, batch_size, opts.column_types))
            schema = reader.schema
        binary = [
            f.name for f in schema if pa.types.is_binary(f.type) and f.name not in opts.column_types
        ]
        if binary:  # pyarrow infers binary for text that is not valid in the encoding
            raise DataError(
                encoding_message(
                    name, opts.encoding, ValueError(f"invalid text in column {binary[0]!r}")
                )
            )
        schema = normalize_inferred(schema, opts.column_types)
        if opts.decimal_inference:
            schema = self._fixed_decimals(opener, name, opts, batch_size, schema)
        return schema

    def _fixed_decimals(
        self, opener: Opener, name: str, opts: ReadOptions, batch_size: int, schema: pa.Schema
    ) -> pa.Schema:
        """``schema`` with the float64 columns whose first block holds fixed-decimal text
        retyped as decimals (the block pyarrow inferred the schema from, re-read as text)."""
        candidates = [
            f.name
            for f in schema
            if pa.types.is_float64(f.type) and f.name not in opts.column_types
        ]
        if not candidates or len(set(schema.names)) != len(schema.names):
            return schema
        options = self._options(
            opts, batch_size, {**opts.column_types, **dict.fromkeys(candidates, pa.string())}
        )
        options["convert_options"].include_columns = candidates
        with translate_errors(name, self.fmt, opts.encoding), opener() as f:
            try:
                sample = pacsv.open_csv(f, **options).read_next_batch()
            except StopIteration:
                return schema
        found = {}
        for column in candidates:
            dtype = text_decimal_type(sample.column(column))
            if dtype is not None:
                found[column] = dtype
        return apply_types(schema, found) if found else schema

    def batches(
        self, opener: Opener, name: str, opts: ReadOptions, schema: pa.Schema, batch_size: int
    ) -> Iterator[pa.RecordBatch]:
        types = {f.name: f.type for f in schema}
        with translate_errors(name, self.fmt, opts.encoding), opener() as f:
            reader = pacsv.open_csv(f, **self._options(opts, batch_size, types))
            try:
                yield from reader
            except pa.ArrowInvalid as exc:
                error = self._unfit_decimal(opener, name, opts, batch_size, reader.schema, exc)
                if error is None:
                    raise
                raise error from exc

    def _unfit_decimal(
        self,
        opener: Opener,
        name: str,
        opts: ReadOptions,
        batch_size: int,
        file_schema: pa.Schema,
        exc: pa.ArrowInvalid,
    ) -> DataError | None:
        """For a conversion error in a decimal column: the error naming the file, the column and
        the first value that does not fit (found by re-reading that column as text)."""
        match = re.match(r"In CSV column #(\d+): ", str(exc))
        if not match or int(match.group(1)) >= len(file_schema):
            return None
        column = file_schema.field(int(match.group(1)))
        if not pa.types.is_decimal(column.type) or file_schema.names.count(column.name) != 1:
            return None
        options = self._options(opts, batch_size, {column.name: pa.string()})
        options["convert_options"].include_columns = [column.name]
        inferred = column.name not in opts.column_types
        with opener() as f:
            for batch in pacsv.open_csv(f, **options):
                value = first_unfit_text(batch.column(0), column.type)
                if value is not None:
                    return unfit_value_error(name, column.name, value, column.type,
                                             inferred=inferred)
        return None


class _Transcoder(io.RawIOBase):
    """A write-only stream turning UTF-8 bytes into another encoding on the way to ``out``."""

    def __init__(self, out: IO[bytes], encoding: str):
        self._out = out
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._encoding = encoding

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        text = self._decoder.decode(bytes(data))
        self._out.write(text.encode(self._encoding))
        return len(data)

    def close(self) -> None:
        if not self.closed:
            tail = self._decoder.decode(b"", final=True)
            if tail:
                self._out.write(tail.encode(self._encoding))
        super().close()


def write_csv(
    out: IO[bytes],
    batches: Iterable[pa.RecordBatch],
    schema: pa.Schema,
    *,
    delimiter: str = ",",
    header: bool = True,
    encoding: str = "utf8",
) -> int:
    """Stream batches as CSV (``header`` row first); decimals and timestamps as text."""
    check_text_types(schema, "csv")
    sink: Any = out if encoding == "utf8" else _Transcoder(out, encoding)
    rows = 0
    writer = pacsv.CSVWriter(
        sink, schema, write_options=pacsv.WriteOptions(include_header=header, delimiter=delimiter)
    )
    try:
        for batch in batches:
            writer.write_batch(batch)
            rows += batch.num_rows
    finally:
        writer.close()
        if sink is not out:
            sink.close()
    return rows


def read_csv_header(
    f: IO[bytes], delimiter: str, encoding: str, quote_char: str = '"'
) -> list[str]:
    """The column names on the first line of a CSV stream (empty list for an empty file)."""
    text = io.TextIOWrapper(f, encoding="utf-8-sig" if encoding == "utf8" else encoding, newline="")
    try:
        line = next(pycsv.reader(text, delimiter=delimiter, quotechar=quote_char), [])
    finally:
        text.detach()
    return [str(c) for c in line]
