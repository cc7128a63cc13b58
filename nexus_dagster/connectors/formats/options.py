"""Reader options (``ReadRequest.options``) parsed once, and the type and encoding names they
hold."""

from __future__ import annotations

import codecs
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from nexus_dagster.errors import SpecError

log = logging.getLogger(__name__)

_DEFAULT_BLOCK = 1 << 20  # pyarrow's own default
_MAX_BLOCK = 16 << 20
_BYTES_PER_ROW_GUESS = 16


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


#: ``ReadOptions.sheet_name`` when not given: read the workbook's first sheet
FIRST_SHEET = object()


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
        "with_parts",
        "names",
        "widths",
        "colspecs",
        "encryption",
        "archive_members",
        "decimal_inference",
    }
)

#: values of ``options.encryption``
ENCRYPTIONS = ("fernet",)


@dataclass(frozen=True)
class ReadOptions:
    """Parsed reader options (``ReadRequest.options``).

    Attributes:
        delimiter: CSV field separator (default ``,``; ``\\t`` for tsv).
        encoding: text encoding of CSV/JSON inputs (default utf-8).
        header: whether the first row (CSV) or ``header_row`` (Excel) holds the column names.
        column_names: names to use instead of (or, with ``header: false``, in the absence of)
            the header row (``names`` is the same option).
        null_values: strings read as null (default: only the unquoted empty field).
        column_types: column name -> Arrow type overriding inference.
        skip_rows: CSV rows to skip before the header.
        quote_char: CSV quote character.
        block_size: bytes per pyarrow CSV/JSON block (tuned from the batch size by default).
        sheet_name: Excel sheet: a name, an index, a list, or None/"*" for all sheets.
        header_row: 1-based Excel row holding the header (rows above it are skipped).
        records_path: for a JSON document, the dotted key of the array of records; for XML,
            the slash-separated element path of the records (``orders/order``).
        source_file_column: name of the column holding each row's file, or None.
        use_threads: let pyarrow convert CSV blocks on several threads (more read-ahead
            memory; off by default so memory stays near one batch).
        with_parts: remote stores: read the file and the part files appends added next to it
            (``<stem>/part-*``), i.e. everything an append target holds.
        colspecs: fixed_width: each column's ``[start, end)`` character positions (0-based),
            from ``options.colspecs`` or ``options.widths``.
        encryption: ``fernet`` when the files are Fernet tokens of the project's keys.
        archive_members: zip archives: a glob choosing the members to read.
        decimal_inference: CSV/TSV/JSON/JSONL: read number columns written with one number of
            fraction digits (``12.50``) as ``decimal128(p, s)`` (default on; ``false`` keeps
            float64; see :mod:`.fixed_decimals`).
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
    sheet_name: Any = FIRST_SHEET
    header_row: int = 1
    records_path: str | None = None
    source_file_column: str | None = None
    use_threads: bool = False
    with_parts: bool = False
    colspecs: tuple[tuple[int, int], ...] | None = None
    encryption: str | None = None
    archive_members: str | None = None
    decimal_inference: bool = True

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
        names = opts.get("column_names", opts.get("names"))
        if names is not None:
            if isinstance(names, str) or not isinstance(names, list | tuple):
                raise SpecError("options.names (column_names) must be a list of column names")
            kwargs["column_names"] = tuple(str(c) for c in names)
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
        if "with_parts" in opts:
            kwargs["with_parts"] = bool(opts["with_parts"])
        if "decimal_inference" in opts:
            if not isinstance(opts["decimal_inference"], bool):
                raise SpecError(
                    "options.decimal_inference must be true or false (false reads numbers with "
                    f"fraction digits as float64), got {opts['decimal_inference']!r}"
                )
            kwargs["decimal_inference"] = opts["decimal_inference"]
        colspecs = parse_colspecs(opts.get("widths"), opts.get("colspecs"))
        if colspecs is not None:
            kwargs["colspecs"] = colspecs
        kwargs["encryption"] = parse_encryption(opts.get("encryption"))
        members = opts.get("archive_members")
        if members is not None:
            if not isinstance(members, str) or not members:
                raise SpecError("options.archive_members must be a glob such as '*.csv'")
            kwargs["archive_members"] = members
        column = opts.get("source_file_column")
        if column is True:
            kwargs["source_file_column"] = "_source_file"
        elif isinstance(column, str) and column:
            kwargs["source_file_column"] = column
        return cls(**kwargs)


def parse_encryption(value: Any) -> str | None:
    """``options.encryption``: ``fernet``, or None for ``none``/``false``/unset.

    Raises:
        SpecError: another value.
    """
    if value in (None, False, "", "none"):
        return None
    if isinstance(value, str) and value.strip().lower() in ENCRYPTIONS:
        return value.strip().lower()
    raise SpecError(
        f"options.encryption {value!r} is not supported; use fernet (files encrypted with the "
        "project's MASTER_ENCRYPTION_KEY), or leave it out"
    )


def parse_colspecs(widths: Any, colspecs: Any) -> tuple[tuple[int, int], ...] | None:
    """Fixed-width column positions from ``options.widths`` (consecutive widths) or
    ``options.colspecs`` (``[start, end]`` pairs, 0-based, end excluded), else None.

    Raises:
        SpecError: both are given, or a width/position is not a valid number.
    """
    if widths is not None and colspecs is not None:
        raise SpecError("give options.widths or options.colspecs, not both")
    if widths is not None:
        if not isinstance(widths, list | tuple) or not widths or not all(
            isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in widths
        ):
            raise SpecError("options.widths must be a list of positive integers, e.g. [6, 20, 8]")
        spans, start = [], 0
        for width in widths:
            spans.append((start, start + width))
            start += width
        return tuple(spans)
    if colspecs is None:
        return None
    pairs = []
    if isinstance(colspecs, list | tuple) and colspecs:
        for pair in colspecs:
            if (
                isinstance(pair, list | tuple)
                and len(pair) == 2
                and all(isinstance(p, int) and not isinstance(p, bool) for p in pair)
                and 0 <= pair[0] < pair[1]
            ):
                pairs.append((pair[0], pair[1]))
    if not pairs or len(pairs) != len(colspecs):
        raise SpecError(
            "options.colspecs must be a list of [start, end] character positions (0-based, end "
            "excluded, start < end), e.g. [[0, 6], [6, 26]]"
        )
    return tuple(pairs)


def normalize_encoding(name: str) -> str:
    """A Python codec name (``utf8`` for every UTF-8 spelling), or a SpecError."""
    try:
        canonical = codecs.lookup(str(name)).name
    except LookupError:
        raise SpecError(f"unknown encoding {name!r} in options.encoding") from None
    return "utf8" if canonical == "utf-8" else canonical


def read_block_size(opts: ReadOptions, batch_size: int) -> int:
    """Bytes per pyarrow CSV/JSON block: ``options.block_size`` (at least 4 KiB), else sized
    from the batch size between pyarrow's default (1 MiB) and 16 MiB."""
    if opts.block_size:
        return max(opts.block_size, 1 << 12)
    return min(max(batch_size * _BYTES_PER_ROW_GUESS, _DEFAULT_BLOCK), _MAX_BLOCK)
