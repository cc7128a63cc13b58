"""JSON Lines (streamed through ``pyarrow.json.open_json``) and JSON documents (one array of
records, read in memory): readers and streaming writers."""

from __future__ import annotations

import codecs
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from decimal import Decimal
from typing import IO, Any

import pyarrow as pa
import pyarrow.json as pajson

from nexus_dagster.connectors.formats.fixed_decimals import (
    fits,
    number_decimal_type,
    parse_json_number,
    unfit_value_error,
)
from nexus_dagster.connectors.formats.options import ReadOptions, read_block_size
from nexus_dagster.connectors.formats.parse_errors import translate_errors
from nexus_dagster.connectors.formats.reader import FormatReader, Opener
from nexus_dagster.connectors.formats.schemas import apply_types, normalize_inferred
from nexus_dagster.connectors.formats.values import json_rows
from nexus_dagster.errors import DataError


class JsonLinesReader(FormatReader):
    """Streaming JSON Lines through ``pyarrow.json.open_json``."""

    fmt = "jsonl"

    @staticmethod
    def _source(f: IO[bytes], opts: ReadOptions) -> Any:
        if opts.encoding == "utf8":  # pyarrow's JSON parser would replace bad bytes silently
            return _Utf8Checked(f)
        return pa.transcoding_input_stream(pa.PythonFile(f, mode="r"), opts.encoding, "utf8")

    def schema(self, opener: Opener, name: str, opts: ReadOptions, batch_size: int) -> pa.Schema:
        with translate_errors(name, self.fmt, opts.encoding), opener() as f:
            try:
                reader = pajson.open_json(
                    self._source(f, opts),
                    read_options=pajson.ReadOptions(block_size=read_block_size(opts, batch_size)),
                    parse_options=_json_parse_options(opts.column_types),
                )
            except pa.ArrowInvalid as exc:
                explicit = pa.schema(list(opts.column_types.items()))
                error = _unfit_decimal(opener, name, opts, explicit, exc)
                if error is None:
                    raise
                raise error from exc
            schema = reader.schema
        schema = normalize_inferred(schema, opts.column_types)
        candidates = _decimal_candidates(schema, opts)
        if not candidates:
            return schema
        size = read_block_size(opts, batch_size)
        with translate_errors(name, self.fmt, opts.encoding), opener() as f:
            head = _read_up_to(f, size)
        records = _sample_records(head, opts.encoding, whole=len(head) < size)
        return _with_decimals(schema, candidates, records)

    def batches(
        self, opener: Opener, name: str, opts: ReadOptions, schema: pa.Schema, batch_size: int
    ) -> Iterator[pa.RecordBatch]:
        with translate_errors(name, self.fmt, opts.encoding), opener() as f:
            try:
                yield from pajson.open_json(
                    self._source(f, opts),
                    read_options=pajson.ReadOptions(block_size=read_block_size(opts, batch_size)),
                    parse_options=pajson.ParseOptions(
                        explicit_schema=schema, unexpected_field_behavior="ignore"
                    ),
                )
            except pa.ArrowInvalid as exc:
                error = _unfit_decimal(opener, name, opts, schema, exc)
                if error is None:
                    raise
                raise error from exc


class _Utf8Checked(io.RawIOBase):
    """A read-only stream that raises UnicodeDecodeError on bytes that are not UTF-8."""

    def __init__(self, raw: IO[bytes]):
        self._raw = raw
        self._decoder = codecs.getincrementaldecoder("utf-8")()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._decoder.decode(data, final=not data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _decimal_candidates(schema: pa.Schema, opts: ReadOptions) -> list[str]:
    """The float64 columns that fixed-decimal inference may retype."""
    if not opts.decimal_inference:
        return []
    return [
        f.name
        for f in schema
        if pa.types.is_float64(f.type) and f.name not in opts.column_types
    ]


def _with_decimals(
    schema: pa.Schema, candidates: list[str], records: list[dict[str, Any]]
) -> pa.Schema:
    """``schema`` with each candidate column whose sampled numbers (parsed with
    :func:`parse_json_number`) all have the same fraction digits retyped as a decimal."""
    found = {}
    for column in candidates:
        dtype = number_decimal_type(r.get(column) for r in records)
        if dtype is not None:
            found[column] = dtype
    return apply_types(schema, found) if found else schema


def _read_up_to(f: IO[bytes], size: int) -> bytes:
    """``size`` bytes of ``f``, fewer only at its end (streams may return short reads)."""
    parts, got = [], 0
    while got < size:
        chunk = f.read(size - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _sample_records(head: bytes, encoding: str, *, whole: bool) -> list[dict[str, Any]]:
    """The JSON Lines records of a file's first bytes (``whole``: the entire file; else its
    last, possibly cut, line is left out), floats kept as written where they are plain decimal
    literals."""
    decoder = codecs.getincrementaldecoder("utf-8-sig" if encoding == "utf8" else encoding)(
        errors="replace"
    )
    lines = decoder.decode(head, final=whole).split("\n")
    records = []
    for line in lines if whole else lines[:-1]:
        if line.strip():
            record = json.loads(line, parse_float=parse_json_number)
            if isinstance(record, dict):
                records.append(record)
    return records


def _unfit_decimal(
    opener: Opener, name: str, opts: ReadOptions, schema: pa.Schema, exc: pa.ArrowInvalid
) -> DataError | None:
    """For pyarrow's "cannot convert to decimal" error: the error naming the file, the column
    (the decimal column holding the value, found by re-reading the file) and the value."""
    pattern = r"Failed to convert JSON to (decimal\d*\(\d+, \d+\)): (\S+) requires"
    match = re.match(pattern, str(exc))
    if not match:
        return None
    columns = [f for f in schema if str(f.type) == match.group(1)]
    value = match.group(2)
    column = columns[0] if len(columns) == 1 else None
    if column is None:
        encoding = "utf-8-sig" if opts.encoding == "utf8" else opts.encoding
        with opener() as f:
            for line in io.TextIOWrapper(f, encoding=encoding, errors="replace"):
                if not line.strip():
                    continue
                record = json.loads(line, parse_float=str, parse_int=str)
                column = next((c for c in columns if record.get(c.name) == value), None)
                if column is not None:
                    break
    if column is None:
        return None
    return unfit_value_error(
        name, column.name, value, column.type, inferred=column.name not in opts.column_types
    )


def _json_parse_options(types: Mapping[str, pa.DataType]) -> pajson.ParseOptions:
    if not types:
        return pajson.ParseOptions()
    return pajson.ParseOptions(explicit_schema=pa.schema(list(types.items())))


class JsonArrayReader(FormatReader):
    """One JSON document (an array of objects, or ``records_path`` into one): read in memory."""

    fmt = "json"

    def _records(
        self,
        opener: Opener,
        name: str,
        opts: ReadOptions,
        parse_float: Callable[[str], Any] | None,
    ) -> list[dict[str, Any]]:
        with opener() as f:
            raw = f.read()
        if not raw.strip():
            raise DataError(f"file {name} is empty")
        try:
            document = json.loads(
                raw.decode("utf-8" if opts.encoding == "utf8" else opts.encoding),
                parse_float=parse_float,
            )
        except json.JSONDecodeError as exc:
            raise DataError(f"cannot read {name} as json: {exc}") from exc
        del raw
        if opts.records_path:
            for key in opts.records_path.split("."):
                if not isinstance(document, dict) or key not in document:
                    raise DataError(f"{name}: no key {opts.records_path!r} in the document")
                document = document[key]
        records = document if isinstance(document, list) else [document]
        if not all(isinstance(r, dict) for r in records):
            raise DataError(
                f"{name}: expected a JSON array of objects (or options.records_path naming one)"
            )
        return records

    def _table(
        self, records: list[dict[str, Any]], opts: ReadOptions, schema: pa.Schema | None
    ) -> pa.Table:
        # default=float: decimals kept as written (parse_json_number) go to pyarrow as numbers
        lines = "\n".join(json.dumps(r, ensure_ascii=False, default=float) for r in records)
        data = lines.encode()
        del lines
        if not data:
            return pa.table({}) if schema is None else schema.empty_table()
        if schema is None:
            parse = _json_parse_options(opts.column_types)
        else:
            parse = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
        return pajson.read_json(
            io.BytesIO(data),
            read_options=pajson.ReadOptions(block_size=max(len(data) + 1, 1 << 16)),
            parse_options=parse,
        )

    def schema(self, opener: Opener, name: str, opts: ReadOptions, batch_size: int) -> pa.Schema:
        explicit = [pa.field(n, t) for n, t in opts.column_types.items() if pa.types.is_decimal(t)]
        exact = opts.decimal_inference or explicit
        with translate_errors(name, self.fmt, opts.encoding):
            records = self._records(opener, name, opts, parse_json_number if exact else None)
            for field in explicit:
                _exact_decimals(records, field, name, inferred=False)
            schema = normalize_inferred(self._table(records, opts, None).schema, opts.column_types)
        candidates = _decimal_candidates(schema, opts)
        return _with_decimals(schema, candidates, records) if candidates else schema

    def batches(
        self, opener: Opener, name: str, opts: ReadOptions, schema: pa.Schema, batch_size: int
    ) -> Iterator[pa.RecordBatch]:
        decimals = [f for f in schema if pa.types.is_decimal(f.type)]
        with translate_errors(name, self.fmt, opts.encoding):
            records = self._records(opener, name, opts, parse_json_number if decimals else None)
            for field in decimals:
                _exact_decimals(records, field, name, inferred=field.name not in opts.column_types)
            table = self._table(records, opts, schema)
        del records
        yield from table.to_batches(max_chunksize=batch_size)


def _exact_decimals(
    records: list[dict[str, Any]], field: pa.Field, name: str, *, inferred: bool
) -> None:
    """Put each record's number in the decimal column ``field`` as its exact text (pyarrow
    reads decimal text exactly), or raise naming the first value the column cannot hold."""
    for record in records:
        value = record.get(field.name)
        if isinstance(value, bool) or not isinstance(value, Decimal | float | int):
            continue
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        if not number.is_finite() or not fits(number, field.type):
            raise unfit_value_error(name, field.name, value, field.type, inferred=inferred)
        record[field.name] = format(number, "f")


def write_jsonl(out: IO[bytes], batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> int:
    """Stream batches as JSON Lines; decimals as exact numbers (``900.10``), timestamps as
    ISO 8601."""
    total = 0
    for batch, lines in json_rows(batches):
        if lines:
            out.write(("\n".join(lines) + "\n").encode())
        total += batch.num_rows
    return total


def write_json(
    out: IO[bytes],
    batches: Iterable[pa.RecordBatch],
    schema: pa.Schema,
    *,
    prefix: Iterable[str] = (),
) -> int:
    """Stream batches as one JSON array (``prefix``: already-encoded records to put first)."""
    out.write(b"[")
    first = True
    for encoded in prefix:
        out.write(("\n" if first else ",\n").encode() + encoded.encode())
        first = False
    total = 0
    for batch, lines in json_rows(batches):
        for line in lines:
            out.write(("\n" if first else ",\n").encode() + line.encode())
            first = False
        total += batch.num_rows
    out.write(b"\n]\n")
    return total
