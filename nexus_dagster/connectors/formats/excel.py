"""Excel (``.xlsx`` through openpyxl): reader streaming the rows of one or more sheets, and a
write-only writer for one sheet."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import math
import re
from collections.abc import Iterable, Iterator
from typing import IO, Any

import pyarrow as pa

from nexus_dagster.connectors.formats.options import FIRST_SHEET, ReadOptions
from nexus_dagster.connectors.formats.parse_errors import translate_errors
from nexus_dagster.connectors.formats.reader import FormatReader, Opener
from nexus_dagster.connectors.formats.schemas import check_text_types, unify_schemas
from nexus_dagster.connectors.formats.values import infer_python_type, python_array
from nexus_dagster.errors import DataError, LoadError

_EXCEL_SAMPLE_ROWS = 1000
_EXCEL_MAX_ROWS = 1_048_576
_EXCEL_ERRORS = frozenset(
    {"#N/A", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#NULL!", "#GETTING_DATA"}
)


_ILLEGAL_XML = re.compile(r"[\000-\010]|[\013-\014]|[\016-\037]")


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
        if wanted is FIRST_SHEET:
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
                fields.append(pa.field(col, infer_python_type([r[i] for r in sample])))
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
            python_array([r[i] for r in rows], t, col, where)
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
