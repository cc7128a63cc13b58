"""File formats: names, options, streaming readers and writers, independent of the storage.

Readers get an *opener*: a zero-argument callable returning a binary file object (a context
manager) over the decompressed content, so they work the same on a local disk and on any fsspec
filesystem. Writers get a writable binary file object and an iterator of record batches that
already have the target schema; they stream, and return the number of rows written.

Formats: ``csv``, ``tsv``, ``json`` (one JSON array; read in memory), ``jsonl``, ``parquet``,
``excel`` (``.xlsx`` through openpyxl), ``xml`` (records by element path, through lxml) and
``fixed_width`` (columns by character positions).

Modules: :mod:`.names` (format names, extensions, compression suffixes), :mod:`.options`
(:class:`ReadOptions`, type and encoding names), :mod:`.reader` (the reader interface),
:mod:`.schemas`, :mod:`.fixed_decimals` (numbers with fixed fraction digits read as decimals),
:mod:`.parse_errors`, :mod:`.values` (Python values <-> Arrow), and one module
per format with its reader and writer: :mod:`.csv`, :mod:`.json`, :mod:`.parquet`,
:mod:`.excel`, :mod:`.xml`, :mod:`.fixed_width` (with :mod:`.text_columns`, the typing of text
columns they share). What lies between a stored file and a reader: :mod:`.content` (the layers),
:mod:`.fernet_stream` (files encrypted with the project's Fernet keys), :mod:`.zip_members` (zip
members). This module holds :data:`READERS`, the reader of each format.
"""

from __future__ import annotations

from nexus_dagster.connectors.formats.csv import CsvReader
from nexus_dagster.connectors.formats.excel import ExcelReader
from nexus_dagster.connectors.formats.fixed_width import FixedWidthReader
from nexus_dagster.connectors.formats.json import JsonArrayReader, JsonLinesReader
from nexus_dagster.connectors.formats.parquet import ParquetReader
from nexus_dagster.connectors.formats.reader import FormatReader
from nexus_dagster.connectors.formats.xml import XmlReader

#: format name -> its reader
READERS: dict[str, FormatReader] = {
    "csv": CsvReader("csv"),
    "tsv": CsvReader("tsv"),
    "jsonl": JsonLinesReader(),
    "json": JsonArrayReader(),
    "parquet": ParquetReader(),
    "excel": ExcelReader(),
    "xml": XmlReader(),
    "fixed_width": FixedWidthReader(),
}
