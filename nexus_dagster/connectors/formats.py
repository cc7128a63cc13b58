"""File formats: names, options, streaming readers and writers, independent of the storage.

Readers get an *opener*: a zero-argument callable returning a binary file object (a context
manager) over the decompressed content, so they work the same on a local disk and on any fsspec
filesystem. Writers get a writable binary file object and an iterator of record batches that
already have the target schema; they stream, and return the number of rows written.

Formats: ``csv``, ``tsv``, ``json`` (one JSON array; read in memory), ``jsonl``, ``parquet`` and
``excel`` (``.xlsx`` through openpyxl).
"""

from __future__ import annotations

import base64
import codecs
import contextlib
import csv as pycsv
import datetime as dt
import decimal
import io
import json
import logging
import math
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from nexus_dagster.errors import DataError, LoadError, SpecError
from nexus_dagster.relation import rebatch

log = logging.getLogger(__name__)

#: Every format name this module reads; ``excel`` and ``json`` are written too.
FORMATS: tuple[str, ...] = ("csv", "tsv", "json", "jsonl", "parquet", "excel")

#: Spellings accepted for ``file_format``.
FORMAT_ALIASES: dict[str, str] = {
    "csv": "csv",
    "tsv": "tsv",
    "tab": "tsv",
    "json": "json",
    "jsonl": "jsonl",
    "ndjson": "jsonl",
    "json_lines": "jsonl",
    "jsonlines": "jsonl",
    "parquet": "parquet",
    "pq": "parquet",
    "excel": "excel",
    "xlsx": "excel",
    "xlsm": "excel",
}

_EXTENSIONS: dict[str, str] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".xlsx": "excel",
    ".xlsm": "excel",
}

#: compressed-file suffix -> fsspec compression name
COMPRESSIONS: dict[str, str] = {
    ".gz": "gzip",
    ".gzip": "gzip",
    ".bz2": "bz2",
    ".xz": "xz",
    ".zip": "zip",
    ".zst": "zstd",
}

#: formats whose reader needs a seekable file (compressed inputs are decompressed in memory)
SEEKABLE_FORMATS = frozenset({"parquet", "excel"})

_DEFAULT_BLOCK = 1 << 20  # pyarrow's own default
_MAX_BLOCK = 16 << 20
_BYTES_PER_ROW_GUESS = 16
_EXCEL_SAMPLE_ROWS = 1000
_EXCEL_MAX_ROWS = 1_048_576
_EXCEL_ERRORS = frozenset(
    {"#N/A", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#NULL!", "#GETTING_DATA"}
)

Opener = Callable[[], IO[bytes]]


# --------------------------------------------------------------------------- names and options


def split_compression(path: str) -> tuple[str, str | None]:
    """Split a compression suffix off a path: ``a.csv.gz`` -> (``a.csv``, ``"gzip"``)."""
    lower = path.lower()
    for suffix, name in COMPRESSIONS.items():
        if lower.endswith(suffix):
            return path[: -len(suffix)], name
    return path, None


def normalize_format(name: str) -> str:
    """The canonical format name for a user's spelling, or a SpecError listing the known ones."""
    key = str(name).strip().lower().lstrip(".")
    try:
        return FORMAT_ALIASES[key]
    except KeyError:
        raise SpecError(f"unknown file_format {name!r}; supported: {', '.join(FORMATS)}") from None


def infer_format(path: str) -> str:
    """The format a path's extension names (compression suffixes are skipped)."""
    stem, _ = split_compression(path)
    lower = stem.lower()
    for ext, fmt in _EXTENSIONS.items():
        if lower.endswith(ext):
            return fmt
    raise SpecError(
        f"cannot infer the file format of {path!r} from its extension; "
        f"set file_format to one of: {', '.join(FORMATS)}"
    )


_TYPE_ALIASES = {
    "int": "int64",
    "integer": "int64",
    "bigint": "int64",
    "long": "int64",
    "float": "float64",
    "double": "float64",
    "real": "float64",
    "str": "string",
    "text": "string",
    "varchar": "string",
    "boolean": "bool",
    "date": "date32",
    "datetime": "timestamp[us]",
    "timestamp": "timestamp[us]",
    "time": "time64[us]",
}


def parse_type(name: str | pa.DataType) -> pa.DataType:
    """An Arrow type from its name.

    Accepts Arrow aliases (``int64``, ``string``, ``date32``, ``timestamp[ms]``), a few SQL-ish
    names (``int``, ``text``, ``datetime``), ``decimal(p, s)`` / ``decimal128(p, s)`` and
    ``timestamp[unit, tz=Zone/Name]``.

    Raises:
        SpecError: the name is not a type.
    """
    if isinstance(name, pa.DataType):
        return name
    text = str(name).strip()
    low = _TYPE_ALIASES.get(text.lower(), text.lower())
    match = re.fullmatch(r"(?:decimal|numeric)(128|256)?\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)", low)
    if match:
        precision, scale = int(match.group(2)), int(match.group(3) or 0)
        if match.group(1) == "256" or precision > 38:
            return pa.decimal256(precision, scale)
        return pa.decimal128(precision, scale)
    match = re.fullmatch(
        r"timestamp\s*\[\s*(s|ms|us|ns)\s*(?:,\s*tz\s*=\s*([^\]]+?))?\s*\]", text, re.I
    )
    if match:
        return pa.timestamp(match.group(1).lower(), tz=match.group(2))
    try:
        return pa.type_for_alias(low)
    except (ValueError, KeyError):
        raise SpecError(
            f"unknown column type {name!r}; use an Arrow type name such as int64, float64, "
            "string, bool, date32, timestamp[us, tz=UTC] or decimal128(18, 2)"
        ) from None


_FIRST_SHEET = object()

_KNOWN_READ_OPTIONS = frozenset(
    {
        "delimiter",
        "sep",
        "encoding",
        "header",
        "column_names",
        "null_values",
        "column_types",
        "skip_rows",
        "quote_char",
        "block_size",
        "sheet_name",
        "header_row",
        "records_path",
        "source_file_column",
        "use_threads",
    }
)


@dataclass(frozen=True)
class ReadOptions:
    """Parsed reader options (``ReadRequest.options``).

    Attributes:
        delimiter: CSV field separator (default ``,``; ``\\t`` for tsv).
        encoding: text encoding of CSV/JSON inputs (default utf-8).
        header: whether the first row (CSV) or ``header_row`` (Excel) holds the column names.
        column_names: names to use instead of (or, with ``header: false``, in the absence of)
            the header row.
        null_values: strings read as null (default: only the unquoted empty field).
        column_types: column name -> Arrow type overriding inference.
        skip_rows: CSV rows to skip before the header.
        quote_char: CSV quote character.
        block_size: bytes per pyarrow CSV/JSON block (tuned from the batch size by default).
        sheet_name: Excel sheet: a name, an index, a list, or None/"*" for all sheets.
        header_row: 1-based Excel row holding the header (rows above it are skipped).
        records_path: for a JSON document, the dotted key of the array of records.
        source_file_column: name of the column holding each row's file, or None.
        use_threads: let pyarrow convert CSV blocks on several threads (more read-ahead
            memory; off by default so memory stays near one batch).
    """

    delimiter: str | None = None
    encoding: str = "utf8"
    header: bool = True
    column_names: tuple[str, ...] | None = None
    null_values: tuple[str, ...] = ("",)
    column_types: dict[str, pa.DataType] = field(default_factory=dict)
    skip_rows: int = 0
    quote_char: str = '"'
    block_size: int | None = None
    sheet_name: Any = _FIRST_SHEET
    header_row: int = 1
    records_path: str | None = None
    source_file_column: str | None = None
    use_threads: bool = False

    @classmethod
    def parse(cls, options: Mapping[str, Any] | None) -> ReadOptions:
        """Validate and normalize a request's options.

        Raises:
            SpecError: an option has a wrong value.
        """
        opts = dict(options or {})
        unknown = sorted(set(opts) - _KNOWN_READ_OPTIONS)
        if unknown:
            log.warning("file source: ignoring unknown options %s", ", ".join(unknown))
        kwargs: dict[str, Any] = {}
        delimiter = opts.get("delimiter", opts.get("sep"))
        if delimiter is not None:
            delimiter = {"\\t": "\t", "tab": "\t"}.get(delimiter, delimiter)
            if len(delimiter) != 1:
                raise SpecError(f"options.delimiter must be one character, got {delimiter!r}")
            kwargs["delimiter"] = delimiter
        if opts.get("encoding"):
            kwargs["encoding"] = normalize_encoding(opts["encoding"])
        if "header" in opts:
            kwargs["header"] = bool(opts["header"])
        if opts.get("column_names") is not None:
            kwargs["column_names"] = tuple(str(c) for c in opts["column_names"])
        if "null_values" in opts:
            values = opts["null_values"]
            if values is None:
                values = []
            elif isinstance(values, str):
                values = [values]
            kwargs["null_values"] = tuple(str(v) for v in values)
        if opts.get("column_types"):
            if not isinstance(opts["column_types"], Mapping):
                raise SpecError("options.column_types must map column names to type names")
            kwargs["column_types"] = {
                str(k): parse_type(v) for k, v in opts["column_types"].items()
            }
        for key in ("skip_rows", "block_size", "header_row"):
            if opts.get(key) is not None:
                try:
                    kwargs[key] = int(opts[key])
                except (TypeError, ValueError):
                    raise SpecError(f"options.{key} must be an integer") from None
        if kwargs.get("header_row", 1) < 1:
            raise SpecError("options.header_row is a 1-based row number (>= 1)")
        if opts.get("quote_char"):
            kwargs["quote_char"] = str(opts["quote_char"])
        if "sheet_name" in opts:
            kwargs["sheet_name"] = opts["sheet_name"]
        if opts.get("records_path"):
            kwargs["records_path"] = str(opts["records_path"])
        if "use_threads" in opts:
            kwargs["use_threads"] = bool(opts["use_threads"])
        column = opts.get("source_file_column")
        if column is True:
            kwargs["source_file_column"] = "_source_file"
        elif isinstance(column, str) and column:
            kwargs["source_file_column"] = column
        return cls(**kwargs)


def normalize_encoding(name: str) -> str:
    """A Python codec name (``utf8`` for every UTF-8 spelling), or a SpecError."""
    try:
        canonical = codecs.lookup(str(name)).name
    except LookupError:
        raise SpecError(f"unknown encoding {name!r} in options.encoding") from None
    return "utf8" if canonical == "utf-8" else canonical


# --------------------------------------------------------------------------- schema helpers


def _normalize_inferred(schema: pa.Schema, explicit: Mapping[str, pa.DataType]) -> pa.Schema:
    """Make inferred types robust for the blocks not yet seen.

    An all-empty column (inferred ``null``) becomes string; second/millisecond timestamps become
    microseconds so that later values with fractions still parse.
    """
    fields = []
    for f in schema:
        t = f.type
        if f.name not in explicit:
            if pa.types.is_null(t):
                t = pa.string()
            elif pa.types.is_timestamp(t) and t.unit in ("s", "ms"):
                t = pa.timestamp("us", tz=t.tz)
        fields.append(pa.field(f.name, t))
    return pa.schema(fields)


def unify_schemas(schemas: list[tuple[str, pa.Schema]]) -> pa.Schema:
    """One schema for several files/sheets, columns matched by name, types promoted.

    int64 + float64 -> float64, timestamp units -> the finest, date + timestamp -> timestamp,
    null + anything -> anything.

    Raises:
        DataError: a column has incompatible types; the message names it, the sources and
            suggests ``column_types``.
    """
    if not schemas:
        return pa.schema([])
    fields: dict[str, pa.DataType] = {}
    origin: dict[str, str] = {}
    for where, schema in schemas:
        for f in schema:
            if f.name not in fields:
                fields[f.name], origin[f.name] = f.type, where
                continue
            old = fields[f.name]
            if old == f.type:
                continue
            fields[f.name] = _promote(f.name, old, f.type, origin[f.name], where)
    return pa.schema([pa.field(n, t) for n, t in fields.items()])


def _promote(name: str, a: pa.DataType, b: pa.DataType, where_a: str, where_b: str) -> pa.DataType:
    for x, y in ((a, b), (b, a)):
        if pa.types.is_date(x) and pa.types.is_timestamp(y):
            return y
    try:
        merged = pa.unify_schemas(
            [pa.schema([(name, a)]), pa.schema([(name, b)])], promote_options="permissive"
        )
        return merged.field(name).type
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        raise DataError(
            f"column {name!r} is {a} in {where_a} but {b} in {where_b}; set "
            f"options.column_types: {{{name}: <type>}} to read it with one type"
        ) from None


def _block_size(opts: ReadOptions, batch_size: int) -> int:
    if opts.block_size:
        return max(opts.block_size, 1 << 12)
    return min(max(batch_size * _BYTES_PER_ROW_GUESS, _DEFAULT_BLOCK), _MAX_BLOCK)


@contextlib.contextmanager
def translate_errors(name: str, fmt: str, encoding: str = "utf8") -> Iterator[None]:
    """Turn parser exceptions into :class:`DataError` naming the file."""
    try:
        yield
    except (DataError, SpecError):
        raise
    except UnicodeError as exc:
        raise DataError(_encoding_message(name, encoding, exc)) from exc
    except (
        pa.ArrowException,
        ValueError,
        EOFError,
        OSError,
        KeyError,
        zipfile.BadZipFile,
    ) as exc:
        text = str(exc)
        if isinstance(exc, FileNotFoundError):
            raise
        if re.search(r"utf-?8|invalid encoding|unicode", text, re.I):
            raise DataError(_encoding_message(name, encoding, exc)) from exc
        if text.startswith(("Empty CSV file", "Empty JSON")):
            raise DataError(f"file {name} is empty") from exc
        hint = ""
        if "conversion error" in text.lower() or "unable to merge" in text.lower():
            hint = " (set options.column_types to read the column with another type)"
        raise DataError(f"cannot read {name} as {fmt}: {text}{hint}") from exc


def _encoding_message(name: str, encoding: str, exc: Exception) -> str:
    shown = "utf-8" if encoding == "utf8" else encoding
    return (
        f"file {name} is not valid {shown} text ({exc}); set options.encoding to the file's "
        "encoding (for example latin-1 or cp1252)"
    )


# --------------------------------------------------------------------------- readers


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
            block_size=_block_size(opts, batch_size),
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
                _encoding_message(
                    name, opts.encoding, ValueError(f"invalid text in column {binary[0]!r}")
                )
            )
        return _normalize_inferred(schema, opts.column_types)

    def batches(
        self, opener: Opener, name: str, opts: ReadOptions, schema: pa.Schema, batch_size: int
    ) -> Iterator[pa.RecordBatch]:
        types = {f.name: f.type for f in schema}
        with translate_errors(name, self.fmt, opts.encoding), opener() as f:
            yield from pacsv.open_csv(f, **self._options(opts, batch_size, types))


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
                read_options=pajson.ReadOptions(block_size=_block_size(opts, batch_size)),
                parse_options=_json_parse_options(opts.column_types),
            )
            schema = reader.schema
        return _normalize_inferred(schema, opts.column_types)

    def batches(
        self, opener: Opener, name: str, opts: ReadOptions, schema: pa.Schema, batch_size: int
    ) -> Iterator[pa.RecordBatch]:
        with translate_errors(name, self.fmt, opts.encoding), opener() as f:
            yield from pajson.open_json(
                self._source(f, opts),
                read_options=pajson.ReadOptions(block_size=_block_size(opts, batch_size)),
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
        return _normalize_inferred(self._table(opener, name, opts, None).schema, opts.column_types)

    def batches(
        self, opener: Opener, name: str, opts: ReadOptions, schema: pa.Schema, batch_size: int
    ) -> Iterator[pa.RecordBatch]:
        table = self._table(opener, name, opts, schema)
        yield from table.to_batches(max_chunksize=batch_size)


class ParquetReader(FormatReader):
    """Parquet through ``ParquetFile.iter_batches`` (one row group in memory at a time)."""

    fmt = "parquet"

    def schema(self, opener: Opener, name: str, opts: ReadOptions, batch_size: int) -> pa.Schema:
        with translate_errors(name, self.fmt), opener() as f:
            schema = pq.ParquetFile(f).schema_arrow
        return _apply_types(schema, opts.column_types)

    def batches(
        self, opener: Opener, name: str, opts: ReadOptions, schema: pa.Schema, batch_size: int
    ) -> Iterator[pa.RecordBatch]:
        with translate_errors(name, self.fmt), opener() as f:
            parquet = pq.ParquetFile(f)
            # row group by row group: over all of them at once, pyarrow reads the whole file
            # in one request (a full download on object stores)
            for group in range(parquet.num_row_groups):
                yield from parquet.iter_batches(batch_size=batch_size, row_groups=[group])


def _apply_types(schema: pa.Schema, types: Mapping[str, pa.DataType]) -> pa.Schema:
    return pa.schema([pa.field(f.name, types.get(f.name, f.type)) for f in schema])


class ExcelReader(FormatReader):
    """``.xlsx`` through openpyxl in read-only mode, rows streamed in batches.

    Types are inferred from the first rows of each sheet (``column_types`` overrides); empty
    rows at the end of a sheet are dropped; Excel error values (``#N/A``, ``#DIV/0!``...) read
    as null. Reading several sheets adds a ``sheet_name`` column.
    """

    fmt = "excel"
    sheet_column = "sheet_name"

    def _workbook(self, f: IO[bytes]) -> Any:
        import openpyxl

        return openpyxl.load_workbook(f, read_only=True, data_only=True)

    def _sheets(self, wb: Any, name: str, opts: ReadOptions) -> list[str]:
        names = list(wb.sheetnames)
        wanted = opts.sheet_name
        if wanted is _FIRST_SHEET:
            return names[:1]
        if wanted is None or wanted == "*":
            return names
        chosen = []
        for item in wanted if isinstance(wanted, list | tuple) else [wanted]:
            if isinstance(item, int) and not isinstance(item, bool):
                if not 0 <= item < len(names):
                    raise DataError(f"{name} has no sheet #{item}; sheets: {', '.join(names)}")
                chosen.append(names[item])
            elif str(item) in names:
                chosen.append(str(item))
            else:
                raise DataError(f"{name} has no sheet {item!r}; sheets: {', '.join(names)}")
        return chosen

    def _multi(self, opts: ReadOptions) -> bool:
        wanted = opts.sheet_name
        return wanted is None or wanted == "*" or isinstance(wanted, list | tuple)

    def _rows(self, ws: Any, opts: ReadOptions) -> tuple[list[str], Iterator[tuple]]:
        rows = ws.iter_rows(min_row=opts.header_row, values_only=True)
        if opts.header:
            first = next(rows, None)
            header = list(first or ())
            while header and header[-1] is None:
                header.pop()
            names = [
                str(v).strip() if v is not None and str(v).strip() else f"column_{i + 1}"
                for i, v in enumerate(header)
            ]
        else:
            first = next(rows, None)
            width = len(first or ())
            names = [f"column_{i + 1}" for i in range(width)]
            if first is not None:
                rows = _chain_one(first, rows)
        if opts.column_names:
            names = list(opts.column_names) + names[len(opts.column_names) :]
        names = _dedupe(names)
        width = len(names)

        def data() -> Iterator[tuple]:
            empty = 0  # empty rows are kept between data rows, dropped at the end
            for row in rows:
                if row is None or all(v is None for v in row[:width]):
                    empty += 1
                    continue
                for _ in range(empty):
                    yield (None,) * width
                empty = 0
                values = tuple(
                    None if isinstance(v, str) and v in _EXCEL_ERRORS else v for v in row[:width]
                )
                if len(values) < width:
                    values += (None,) * (width - len(values))
                yield values

        return names, data()

    def _sheet_schema(self, names: list[str], sample: list[tuple], opts: ReadOptions) -> pa.Schema:
        fields = []
        for i, col in enumerate(names):
            if col in opts.column_types:
                fields.append(pa.field(col, opts.column_types[col]))
            else:
                fields.append(pa.field(col, _infer_python_type([r[i] for r in sample])))
        return pa.schema(fields)

    def schema(self, opener: Opener, name: str, opts: ReadOptions, batch_size: int) -> pa.Schema:
        with translate_errors(name, self.fmt), opener() as f:
            wb = self._workbook(f)
            try:
                schemas = []
                for sheet in self._sheets(wb, name, opts):
                    names, rows = self._rows(wb[sheet], opts)
                    sample = [r for _, r in zip(range(_EXCEL_SAMPLE_ROWS), rows, strict=False)]
                    schemas.append((f"{name}[{sheet}]", self._sheet_schema(names, sample, opts)))
            finally:
                wb.close()
        schema = unify_schemas(schemas)
        if self._multi(opts):
            if self.sheet_column in schema.names:
                raise DataError(
                    f"{name} already has a column {self.sheet_column!r}; read one sheet at a time"
                )
            schema = schema.append(pa.field(self.sheet_column, pa.string()))
        return schema

    def batches(
        self, opener: Opener, name: str, opts: ReadOptions, schema: pa.Schema, batch_size: int
    ) -> Iterator[pa.RecordBatch]:
        multi = self._multi(opts)
        with translate_errors(name, self.fmt), opener() as f:
            wb = self._workbook(f)
            try:
                for sheet in self._sheets(wb, name, opts):
                    names, rows = self._rows(wb[sheet], opts)
                    types = [schema.field(n).type for n in names]
                    where = f"{name}[{sheet}]"
                    chunk: list[tuple] = []
                    for row in rows:
                        chunk.append(row)
                        if len(chunk) >= batch_size:
                            yield self._batch(names, types, chunk, sheet if multi else None, where)
                            chunk = []
                    if chunk:
                        yield self._batch(names, types, chunk, sheet if multi else None, where)
            finally:
                wb.close()

    def _batch(
        self,
        names: list[str],
        types: list[pa.DataType],
        rows: list[tuple],
        sheet: str | None,
        where: str,
    ) -> pa.RecordBatch:
        arrays = [
            _python_array([r[i] for r in rows], t, col, where)
            for i, (col, t) in enumerate(zip(names, types, strict=True))
        ]
        fields = [pa.field(n, t) for n, t in zip(names, types, strict=True)]
        if sheet is not None:
            arrays.append(pa.array([sheet] * len(rows), pa.string()))
            fields.append(pa.field(self.sheet_column, pa.string()))
        return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


def _chain_one(first: tuple, rest: Iterator[tuple]) -> Iterator[tuple]:
    yield first
    yield from rest


def _dedupe(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        if n in seen:
            seen[n] += 1
            candidate = f"{n}_{seen[n]}"
            while candidate in seen:
                seen[n] += 1
                candidate = f"{n}_{seen[n]}"
            seen[candidate] = 1
            out.append(candidate)
        else:
            seen[n] = 1
            out.append(n)
    return out


def _infer_python_type(values: list[Any]) -> pa.DataType:
    kinds = {type(v) for v in values if v is not None}
    if not kinds:
        return pa.string()
    if kinds <= {bool}:
        return pa.bool_()
    if kinds <= {int}:
        return pa.int64()
    if kinds <= {int, float}:
        return pa.float64()
    if kinds <= {dt.datetime, dt.date}:
        return pa.timestamp("us") if dt.datetime in kinds else pa.date32()
    if kinds <= {dt.time}:
        return pa.time64("us")
    if kinds <= {dt.timedelta}:
        return pa.duration("us")
    if kinds <= {decimal.Decimal, int}:
        return pa.float64()
    return pa.string()


def _as_text(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _python_array(values: list[Any], t: pa.DataType, column: str, where: str) -> pa.Array:
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        values = [v if v is None or isinstance(v, str) else _as_text(v) for v in values]
    elif pa.types.is_timestamp(t):
        values = [
            dt.datetime(v.year, v.month, v.day)
            if isinstance(v, dt.date) and not isinstance(v, dt.datetime)
            else v
            for v in values
        ]
    elif pa.types.is_date(t):
        values = [v.date() if isinstance(v, dt.datetime) else v for v in values]
    try:
        return pa.array(values, type=t)
    except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
        try:  # e.g. text "12" in a number column: let Arrow's cast parse it
            return pa.array([None if v is None else _as_text(v) for v in values]).cast(t)
        except (pa.ArrowException, TypeError, ValueError):
            pass
        raise DataError(
            f"{where}: column {column!r} has a value that is not {t} ({exc}); set "
            f"options.column_types: {{{column}: string}} (or another type) to read it"
        ) from exc


READERS: dict[str, FormatReader] = {
    "csv": CsvReader("csv"),
    "tsv": CsvReader("tsv"),
    "jsonl": JsonLinesReader(),
    "json": JsonArrayReader(),
    "parquet": ParquetReader(),
    "excel": ExcelReader(),
}


# --------------------------------------------------------------------------- writers


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


def check_text_types(schema: pa.Schema, fmt: str) -> None:
    """Reject nested columns for text tabular formats before anything is written.

    Raises:
        LoadError: names the columns that the format cannot hold.
    """
    bad = [f"{f.name} ({f.type})" for f in schema if pa.types.is_nested(f.type)]
    if bad:
        raise LoadError(
            f"{fmt} cannot hold nested columns: {', '.join(bad)}; write jsonl or parquet instead"
        )


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


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if hasattr(value, "isoformat"):  # pandas Timestamp for nanosecond values
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _json_safe(batch: pa.RecordBatch) -> pa.RecordBatch:
    """NaN and infinities are not JSON: write them as null."""
    columns = list(batch.columns)
    changed = False
    for i, column in enumerate(columns):
        if pa.types.is_floating(column.type) and column.null_count < len(column):
            finite = pc.is_finite(column)
            if not pc.all(pc.fill_null(finite, True)).as_py():
                columns[i] = pc.if_else(finite, column, pa.scalar(None, column.type))
                changed = True
    return pa.RecordBatch.from_arrays(columns, schema=batch.schema) if changed else batch


def _json_rows(batches: Iterable[pa.RecordBatch]) -> Iterator[tuple[int, list[str]]]:
    for batch in batches:
        rows = _json_safe(batch).to_pylist()
        yield (
            batch.num_rows,
            [
                json.dumps(r, ensure_ascii=False, default=_json_default, allow_nan=False)
                for r in rows
            ],
        )


def write_jsonl(out: IO[bytes], batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> int:
    """Stream batches as JSON Lines; decimals as strings, timestamps as ISO 8601."""
    total = 0
    for count, lines in _json_rows(batches):
        if lines:
            out.write(("\n".join(lines) + "\n").encode())
        total += count
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
    for count, lines in _json_rows(batches):
        for line in lines:
            out.write(("\n" if first else ",\n").encode() + line.encode())
            first = False
        total += count
    out.write(b"\n]\n")
    return total


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


_ILLEGAL_XML = re.compile(r"[\000-\010]|[\013-\014]|[\016-\037]")


def _excel_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        if hasattr(value, "to_pydatetime"):
            value = value.to_pydatetime()
        return value
    if isinstance(value, str):
        return _ILLEGAL_XML.sub("", value)
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return value


def write_excel(
    out: IO[bytes],
    batches: Iterable[pa.RecordBatch],
    schema: pa.Schema,
    *,
    sheet_name: str = "Sheet1",
) -> int:
    """Stream batches into one sheet of a new ``.xlsx`` (openpyxl write-only mode).

    Excel has no time zones: aware timestamps are written as UTC wall time.

    Raises:
        LoadError: more rows than a sheet holds (1,048,575 after the header).
    """
    import openpyxl

    check_text_types(schema, "excel")
    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet(title=str(sheet_name)[:31])
    ws.append(list(schema.names))
    rows = 0
    try:
        for batch in batches:
            rows += batch.num_rows
            if rows >= _EXCEL_MAX_ROWS:
                raise LoadError(
                    f"an Excel sheet holds at most {_EXCEL_MAX_ROWS - 1} data rows; "
                    "write csv or parquet"
                )
            columns = [c.to_pylist() for c in batch.columns]
            for row in zip(*columns, strict=True):
                ws.append([_excel_value(v) for v in row])
    except BaseException:
        # finish openpyxl's row stream and remove its temporary sheet file
        with contextlib.suppress(Exception):
            ws.close()
        with contextlib.suppress(Exception):
            ws._writer.cleanup()
        raise
    wb.save(out)
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
