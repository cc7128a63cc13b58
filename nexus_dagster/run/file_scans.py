"""Local CSV and Parquet sources that DuckDB scans itself: the one place that decides when.

A file source normally reaches the transformation chain as Arrow batches: pyarrow parses every
column on one thread before DuckDB sees a row. When DuckDB can read the same files with the same
result, :func:`attach_file_scans` gives the chain's input a
:class:`~nexus_dagster.relation.DuckdbScan` instead, and the chain's SQL reads the files with
``read_csv(...)`` / ``read_parquet(...)``: only the columns and rows the query needs, on
DuckDB's threads, Parquet row groups skipped by their statistics.

It applies when ALL of these hold (anything else keeps the Arrow path):

* the job has transformations (a source loaded raw by a target, or a union of sources without
  steps, stays on the Arrow path) and no target reads the source raw;
* the job's ``engine.memory_limit``, if any, is at least 1 GB (DuckDB's file readers' buffers
  count against it; under a small limit the Arrow stream leaves the memory to the steps);
* the source is a ``file`` source on the local disk (not S3/SFTP/..., no ``source_file_column``,
  no ``after_load.key_columns``, no cdc), read without an incremental cursor or partition window;
* every file is plain ``csv``/``tsv`` or ``parquet`` (one format; no compression, zip or
  encryption suffix, no ``with_parts``);
* CSV: ``encoding`` utf-8, a header row (no ``column_names``/``names``, no ``skip_rows``), a
  non-empty ``null_values``, every file's header exactly the source's column names, and each
  column int, float, bool, string, date, decimal or timestamp without zone. The types DuckDB
  parses are the connector's own ``schema()`` types (``column_types`` included), given as
  ``columns=``, so the names and types never change;
* Parquet: no ``column_types``, every file with exactly the source's column names and types;
* the chain's stage checks that DuckDB types the scan exactly as the Arrow stream (else it reads
  the batches).

``NEXUS_FILE_SCAN=0`` turns it off. What the run reports stays the same: the source's rows
(``rows_extracted``) are the Parquet files' metadata row counts, for CSV the rows DuckDB's scan
produced (its profile of the statement; a ``count(*)`` over the files if the profile lacks it);
the source schema is the connector's. The chain reads a scan only where it can (a SQL stage
reading the source once); everywhere else the same relation yields its Arrow batches, counted
as usual. CSV decimal columns are read as text and cast after a check, so that a value with more
non-zero fraction digits than the type's scale fails as on the Arrow path (DuckDB's own cast
would round it). DuckDB's CSV errors become a DataError naming the files.

Example:
    >>> inputs = attach_file_scans(job, inputs, sources, requests, readers)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from nexus_dagster.connectors.base import Connector, ReadRequest
from nexus_dagster.connectors.formats.options import ReadOptions
from nexus_dagster.errors import DataError
from nexus_dagster.relation import Relation
from nexus_dagster.run.cursors import RowCounter
from nexus_dagster.transforms.sql_scope import quote_identifier

__all__ = ["FILE_SCAN_ENV", "FileScan", "attach_file_scans", "file_scan"]

#: ``NEXUS_FILE_SCAN=0`` keeps every file source on the Arrow path
FILE_SCAN_ENV = "NEXUS_FILE_SCAN"
#: the smallest ``engine.memory_limit`` under which DuckDB scans files itself
_MIN_MEMORY_LIMIT = 10**9


def _literal(text: str) -> str:
    """A DuckDB string literal."""
    return "'" + text.replace("'", "''") + "'"


#: Arrow types DuckDB's CSV reader parses as pyarrow's does (for valid values) -> their DuckDB
#: names, as DuckDB types an Arrow stream of them
_CSV_TYPES = {
    pa.int8(): "TINYINT", pa.int16(): "SMALLINT", pa.int32(): "INTEGER", pa.int64(): "BIGINT",
    pa.uint8(): "UTINYINT", pa.uint16(): "USMALLINT", pa.uint32(): "UINTEGER",
    pa.uint64(): "UBIGINT", pa.float32(): "FLOAT", pa.float64(): "DOUBLE",
    pa.bool_(): "BOOLEAN", pa.string(): "VARCHAR", pa.large_string(): "VARCHAR",
    pa.date32(): "DATE", pa.timestamp("s"): "TIMESTAMP_S", pa.timestamp("ms"): "TIMESTAMP_MS",
    pa.timestamp("us"): "TIMESTAMP", pa.timestamp("ns"): "TIMESTAMP_NS",
}  # fmt: skip


def _csv_duckdb_type(t: pa.DataType) -> str | None:
    """The DuckDB type a CSV column of Arrow type ``t`` is read as, or None (Arrow path)."""
    if pa.types.is_decimal128(t):
        return f"DECIMAL({t.precision},{t.scale})"
    return _CSV_TYPES.get(t)


def _parquet_type(t: pa.DataType) -> bool:
    """The column types read from Parquet by DuckDB and pyarrow alike (flat columns)."""
    return (_csv_duckdb_type(t) is not None or pa.types.is_timestamp(t)
            or pa.types.is_string_view(t))


@dataclass
class FileScan:
    """A local CSV or Parquet source as DuckDB reads it (a
    :class:`~nexus_dagster.relation.DuckdbScan`).

    Attributes:
        fmt: ``csv`` (also tsv) or ``parquet``.
        paths: the files, in the connector's order.
        schema: the source relation's schema.
        read: the DuckDB table function call reading every file.
        columns: the select list giving the schema's columns from ``read`` (CSV decimals:
            checked text, see :func:`_exact_decimal`).
        file_reads: per file, its own call (Parquet: numbered rows), with the rows before it.
        rows: the rows of all files when known without reading them (Parquet metadata).
        count: receives the rows once the scan was read (the source's ``RowCounter.see``).
    """

    fmt: str
    paths: list[str]
    schema: pa.Schema
    read: str
    columns: str
    file_reads: list[tuple[str, int]]
    rows: int | None
    count: Callable[[int], None]

    @property
    def numbers_in_read_order(self) -> bool:
        """CSV rows are numbered as DuckDB reads them; Parquet's by their row in the file."""
        return self.fmt == "csv"

    @property
    def needs_profile(self) -> bool:
        """Parquet's rows are known from the metadata; CSV's are counted from the profile."""
        return self.rows is None

    def select_sql(self, ordinal: str | None = None, offset: int = 0) -> str:
        """``SELECT`` the source's columns; with ``ordinal``, the row number in file order
        (from ``offset``) in a column of that name."""
        columns = self.columns
        if ordinal is None:
            return f"SELECT {columns} FROM {self.read}"
        name = quote_identifier(ordinal)
        if self.fmt == "csv":
            # DuckDB numbers a streaming scan in read order (files in list order)
            return (f"SELECT {columns}, CAST({offset} + row_number() OVER () - 1 AS BIGINT) "
                    f"AS {name} FROM {self.read}")
        return " UNION ALL ".join(
            f"SELECT {columns}, CAST({offset + before} + {_ROW_NUMBER} AS BIGINT) AS {name} "
            f"FROM {read}"
            for read, before in self.file_reads
        )

    def scanned(self, con: Any) -> None:
        """Count the rows read: Parquet's metadata, else DuckDB's profile of the statement
        that just finished (a ``count(*)`` when the profile does not say)."""
        if self.rows is not None:
            self.count(self.rows)
            return
        rows = _profiled_rows(con, self.paths)
        if rows is None:
            rows = con.execute(f"SELECT count(*) FROM {self.read}").fetchone()[0]
        self.count(int(rows))

    def read_error(self, exc: Exception) -> Exception | None:
        """A DataError naming the files, DuckDB's line and the fix for a CSV value or line
        DuckDB cannot read (pyarrow would have refused it too); None for other errors."""
        text = str(exc)
        if self.fmt != "csv":
            return None
        if _DIGITS_LOST in text:
            said = text[text.index(_DIGITS_LOST) + len(_DIGITS_LOST):].strip().splitlines()[0]
            return DataError(f"cannot read {', '.join(self.paths)} as csv: {said}")
        if "CSV Error" not in text:
            return None
        noise = ("Possible solutions", "*", "This type was", "Column ")
        said = [line.strip() for line in text.splitlines()
                if line.strip() and not line.strip().startswith(noise)]
        return DataError(
            f"cannot read {', '.join(self.paths)} as csv: {'; '.join(said[:3])} (set "
            "options.column_types to read the column with another type)"
        )


def _profiled_rows(con: Any, paths: Sequence[str]) -> int | None:
    """The rows of the one READ_CSV of ``paths`` in the last statement's profile, or None."""
    try:
        profile = json.loads(con.get_profiling_information(format="json"))
    except Exception:  # profiling off or another layout: the caller counts instead
        return None
    wanted = ", ".join(paths)
    found: list[int] = []
    stack = list(profile.get("operator") or [])
    while stack:
        node = stack.pop()
        stack.extend(node.get("children") or [])
        info = node.get("extra_info") or {}
        if (
            info.get("Function") == "READ_CSV"
            and info.get("Filename(s)") == wanted
            and isinstance(node.get("rows_scanned"), int)
        ):
            found.append(node["rows_scanned"])
    return found[0] if len(found) == 1 else None


#: the start of the error a CSV scan raises for a decimal value that would lose digits
_DIGITS_LOST = "nexus: digits lost:"


def _exact_decimal(name: str, type_: pa.Decimal128Type, duckdb_type: str) -> str:
    """The select expression of a CSV decimal column read as text: the value cast to its type,
    or an error when that would drop non-zero fraction digits (pyarrow refuses such values;
    DuckDB's cast would round them)."""
    column = quote_identifier(name)
    scale = type_.scale
    before = f"{_DIGITS_LOST} column {name!r} has the value '"
    after = (f"', which has more than {scale} fraction digits and does not fit {type_}; set "
             f"options.column_types: {{{name}: 'decimal(38, <digits>)'}} to keep them")
    message = f"{_literal(before)} || {column} || {_literal(after)}"
    # LIKE '%.___%' (scale + 1 characters after a dot) is the cheap test that the value has
    # more than ``scale`` fraction digits (instr/length on every value cost ~15% of a scan);
    # only such values have their extra digits checked for zeros
    longer = _literal("%." + "_" * (scale + 1) + "%")
    return (f"CASE WHEN {column} IS NULL OR {column} NOT LIKE {longer} "
            f"OR rtrim(substr({column}, instr({column}, '.') + {scale + 1}), '0') = '' "
            f"THEN CAST({column} AS {duckdb_type}) ELSE error({message}) END AS {column}")


def _csv_read(paths: Sequence[str], types: Sequence[str], names: Sequence[str],
              opts: ReadOptions, delimiter: str) -> str:
    files = "[" + ", ".join(_literal(p) for p in paths) + "]"
    columns = "{" + ", ".join(f"{_literal(n)}: {_literal(t)}"
                              for n, t in zip(names, types, strict=True)) + "}"
    nulls = "[" + ", ".join(_literal(v) for v in opts.null_values) + "]"
    quote = _literal(opts.quote_char)
    return (f"read_csv({files}, header=true, auto_detect=false, columns={columns}, "
            f"delim={_literal(delimiter)}, quote={quote}, escape={quote}, nullstr={nulls}, "
            "allow_quoted_nulls=false, compression='none', encoding='utf-8')")


def file_scan(
    source: Any, connector: Connector, request: ReadRequest | None, relation: Relation,
    count: Callable[[int], None],
) -> FileScan | None:  # fmt: skip
    """The scan DuckDB may read instead of ``relation`` (a source's own read), or None when
    the module docstring's conditions do not all hold.

    Args:
        source: the spec's source.
        connector: its connector (open).
        request: the read request the relation came from (None: not read by a connector).
        relation: what ``connector.read(request)`` returned.
        count: receives the rows the scan read (``RowCounter.see``).
    """
    from nexus_dagster.connectors.file import FileConnector
    from nexus_dagster.connectors.formats.csv import read_csv_header
    from nexus_dagster.connectors.formats.names import (
        infer_format,
        normalize_format,
        split_compression,
        strip_encrypted_suffix,
    )

    if os.environ.get(FILE_SCAN_ENV, "1") == "0" or request is None:
        return None
    if type(connector) is not FileConnector or not connector.is_local:
        return None
    if request.cursor is not None or source.cdc:
        return None
    if source.after_load is not None and source.after_load.key_columns:
        return None
    opts = ReadOptions.parse(request.options)
    if (opts.encryption or opts.archive_members or opts.source_file_column or opts.with_parts
            or opts.column_names or not opts.header or opts.skip_rows):
        return None
    paths = [str(p) for p in relation.stats.get("paths") or []]
    if not paths or len(paths) != len(relation.stats.get("files") or []):
        return None
    named = request.file_format or connector.config.file_format
    formats = set()
    for path in paths:
        if strip_encrypted_suffix(path) != path or split_compression(path)[1] is not None:
            return None
        formats.add(normalize_format(named) if named else infer_format(path))
    if len(formats) != 1:
        return None
    fmt = formats.pop()
    schema = relation.schema
    if len(set(schema.names)) != len(schema.names) or not schema.names:
        return None
    if fmt in ("csv", "tsv"):
        if opts.encoding != "utf8" or not opts.null_values:
            return None
        types = [_csv_duckdb_type(f.type) for f in schema]
        if None in types:
            return None
        delimiter = opts.delimiter or ("\t" if fmt == "tsv" else ",")
        for path in paths:
            with open(path, "rb") as f:
                if read_csv_header(f, delimiter, "utf8", opts.quote_char) != schema.names:
                    return None
        # decimals are read as text and cast after a check: DuckDB would round extra digits
        read = _csv_read(paths, ["VARCHAR" if pa.types.is_decimal(f.type) else t
                                 for f, t in zip(schema, types, strict=True)],
                         schema.names, opts, delimiter)
        columns = ", ".join(
            _exact_decimal(f.name, f.type, t) if pa.types.is_decimal(f.type)
            else quote_identifier(f.name) for f, t in zip(schema, types, strict=True))
        return FileScan("csv", paths, schema, read, columns, [], None, count)
    if fmt == "parquet":
        return _parquet_scan(paths, schema, opts, count)
    return None


#: DuckDB's number of a Parquet row in its file
_ROW_NUMBER = "file_row_number"


def _virtual_row_number() -> bool:
    """True when DuckDB (1.3+) has ``file_row_number`` as a virtual column, computed only where
    a query reads it; older versions need the ``file_row_number=true`` option, which numbers
    every row scanned (TPC-H Q3's lineitem scan, whose result never uses them: 0.57 s vs
    0.18 s)."""
    import duckdb

    major, minor = (int(part) for part in duckdb.__version__.split(".")[:2])
    return (major, minor) >= (1, 3)


def _parquet_scan(paths: list[str], schema: pa.Schema, opts: ReadOptions,
                  count: Callable[[int], None]) -> FileScan | None:
    import pyarrow.parquet as pq

    if opts.column_types or not all(_parquet_type(f.type) for f in schema):
        return None
    if _ROW_NUMBER in schema.names:  # the file's own column would hide DuckDB's row numbers
        return None
    option = "" if _virtual_row_number() else f", {_ROW_NUMBER}=true"
    file_reads: list[tuple[str, int]] = []
    rows = 0
    for path in paths:
        meta = pq.read_metadata(path)
        stored = meta.schema.to_arrow_schema()
        if stored.names != schema.names or stored.types != schema.types:
            return None
        file_reads.append((f"read_parquet({_literal(path)}{option})", rows))
        rows += meta.num_rows
    read = "read_parquet([" + ", ".join(_literal(p) for p in paths) + "])"
    columns = ", ".join(quote_identifier(n) for n in schema.names)
    return FileScan("parquet", paths, schema, read, columns, file_reads, rows, count)


def attach_file_scans(
    job: Any,
    inputs: Mapping[str, Relation],
    sources: Mapping[str, tuple[Connector | None, Relation, RowCounter]],
    requests: Mapping[str, ReadRequest | None],
    raw_readers: Collection[str | None],
) -> dict[str, Relation]:
    """The chain's inputs, with a :class:`FileScan` on each source DuckDB may read itself.

    Args:
        job: the job (its sources and transformations).
        inputs: source name -> the counted relation the chain reads.
        sources: source name -> (connector or None, the connector's relation, its counter).
        requests: source name -> its read request (None: not read by a connector).
        raw_readers: what the targets load (step names, source names read raw, None).
    """
    result = dict(inputs)
    if not job.ordered_transformations():
        return result
    from nexus_dagster.transforms.duckdb_stage import parse_bytes

    limit = job.engine.memory_limit if job.engine is not None else None
    if limit is not None and (parse_bytes(limit) or 0) < _MIN_MEMORY_LIMIT:
        return result
    for source in job.sources:
        name = source.name
        connector, relation, counter = sources[name]
        if connector is None or name in raw_readers:
            continue
        scan = file_scan(source, connector, requests.get(name), relation, counter.see)
        if scan is not None:
            chained = inputs[name]
            result[name] = Relation(chained.schema, chained.open, chained.name, chained.stats,
                                    scan)
    return result
