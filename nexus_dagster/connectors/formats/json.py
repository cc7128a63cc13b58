"""JSON Lines (streamed through ``pyarrow.json.open_json``) and JSON documents (one array of
records, read in memory): readers and streaming writers."""

from __future__ import annotations

import codecs
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any

import pyarrow as pa
import pyarrow.json as pajson

from nexus_dagster.connectors.formats.options import ReadOptions, read_block_size
from nexus_dagster.connectors.formats.parse_errors import translate_errors
from nexus_dagster.connectors.formats.reader import FormatReader, Opener
from nexus_dagster.connectors.formats.schemas import normalize_inferred
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
            reader = pajson.open_json(
                self._source(f, opts),
                read_options=pajson.ReadOptions(block_size=read_block_size(opts, batch_size)),
                parse_options=_json_parse_options(opts.column_types),
            )
            schema = reader.schema
        return normalize_inferred(schema, opts.column_types)

    def batches(
        self, opener: Opener, name: str, opts: ReadOptions, schema: pa.Schema, batch_size: int
    ) -> Iterator[pa.RecordBatch]:
        with translate_errors(name, self.fmt, opts.encoding), opener() as f:
            yield from pajson.open_json(
                self._source(f, opts),
                read_options=pajson.ReadOptions(block_size=read_block_size(opts, batch_size)),
                parse_options=pajson.ParseOptions(
                    explicit_schema=schema, unexpected_field_behavior="ignore"
                ),
            )


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


def _json_parse_options(types: Mapping[str, pa.DataType]) -> pajson.ParseOptions:
    if not types:
        return pajson.ParseOptions()
    return pajson.ParseOptions(explicit_schema=pa.schema(list(types.items())))


class JsonArrayReader(FormatReader):
    """One JSON document (an array of objects, or ``records_path`` into one): read in memory."""

    fmt = "json"

    def _table(self, opener: Opener, name: str, opts: ReadOptions, schema: pa.Schema | None):
        with translate_errors(name, self.fmt, opts.encoding):
            with opener() as f:
                raw = f.read()
            if not raw.strip():
                raise DataError(f"file {name} is empty")
            try:
                document = json.loads(
                    raw.decode("utf-8" if opts.encoding == "utf8" else opts.encoding)
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
            lines = "\n".join(json.dumps(r, ensure_ascii=False) for r in records).encode()
            del records, document
            if not lines:
                return pa.table({}) if schema is None else schema.empty_table()
            if schema is None:
                parse = _json_parse_options(opts.column_types)
            else:
                parse = pajson.ParseOptions(
                    explicit_schema=schema, unexpected_field_behavior="ignore"
                )
            return pajson.read_json(
                io.BytesIO(lines),
                read_options=pajson.ReadOptions(block_size=max(len(lines) + 1, 1 << 16)),
                parse_options=parse,
            )

    def schema(self, opener: Opener, name: str, opts: ReadOptions, batch_size: int) -> pa.Schema:
        return normalize_inferred(self._table(opener, name, opts, None).schema, opts.column_types)

    def batches(
        self, opener: Opener, name: str, opts: ReadOptions, schema: pa.Schema, batch_size: int
    ) -> Iterator[pa.RecordBatch]:
        table = self._table(opener, name, opts, schema)
        yield from table.to_batches(max_chunksize=batch_size)


def write_jsonl(out: IO[bytes], batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> int:
    """Stream batches as JSON Lines; decimals as strings, timestamps as ISO 8601."""
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
