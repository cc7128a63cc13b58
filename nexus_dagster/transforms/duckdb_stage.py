"""One SQL stage of the chain, run in DuckDB over streams of Arrow record batches.

The stage's inputs are registered in a private in-memory DuckDB as Arrow streams (with a
hidden ordinal per row when the stage keeps row order), its steps become ONE statement
(:class:`~nexus_dagster.transforms.sql_builder.SqlBuilder`) and the result is read back with
``to_arrow_reader(batch_size)``. Blocking operators spill to a private folder under
``temp_directory`` when ``memory_limit`` is reached; the folder is removed afterwards.

Example:
    >>> settings = StageSettings(batch_size=50_000, memory_limit="2GB", temp_directory=None)
    >>> settings.check()
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.sql import FromClause

from nexus_dagster.errors import TransformError
from nexus_dagster.relation import DuckdbScan, Relation
from nexus_dagster.transforms.expressions import sqlalchemy_type
from nexus_dagster.transforms.spool import write_spool
from nexus_dagster.transforms.sql_builder import SqlBuilder
from nexus_dagster.transforms.sql_scope import CURRENT_INPUT, ORDINAL, compile_sql, quote_identifier
from nexus_dagster.transforms.stage_output import read_once, reference_types, restore_schema
from nexus_dagster.transforms.stages import Stage

__all__ = ["StageSettings", "parse_bytes", "run_sql_stage"]

_SOURCE_SHIFT = 40  # ordinal = source index << 40 | row number within the source
_BYTES_PER_THREAD = 256 * 2**20
_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


@dataclass
class StageSettings:
    """How the stages run.

    Attributes:
        batch_size: rows per output batch.
        memory_limit: DuckDB ``memory_limit`` (e.g. ``"2GB"``); blocking steps spill past it.
        temp_directory: where DuckDB spills (a private folder is made inside, and removed).
        threads: DuckDB threads (default: the CPUs, fewer under a small ``memory_limit``).
    """

    batch_size: int
    memory_limit: str | None
    temp_directory: str | None
    threads: int | None = None

    def check(self) -> None:
        """Raise TransformError when DuckDB refuses ``memory_limit``."""
        if self.memory_limit is None:
            return
        try:
            duckdb.connect(":memory:", config={"memory_limit": self.memory_limit}).close()
        except duckdb.Error as exc:
            raise TransformError(f"invalid memory_limit {self.memory_limit!r}: {exc}") from None


def run_sql_stage(
    stage: Stage,
    sources: dict[str, Relation],
    current: Relation | None,
    previous_code: str | None,
    settings: StageSettings,
) -> Relation:
    """One SQL part of the chain as a relation (lazy when its schema is knowable).

    The statement is first run on empty inputs, to learn the output schema and report
    errors before any data is read; the first read reuses that DuckDB connection and compiled
    statement with the real inputs. A stage whose columns come from the data, or that writes a
    step's result for a target (``stage.tees``), starts at once and its result can be read
    once.

    Args:
        stage: the stage (its steps and how often it scans each input).
        sources: source name -> relation.
        current: the result of the previous custom_code step, if any.
        previous_code: the name of that step.
        settings: batch size and DuckDB settings.
    """
    inputs: dict[str, Relation] = {}
    if current is not None:
        inputs[CURRENT_INPUT] = current
    for name, relation in sources.items():
        if stage.scans.get(name):
            inputs[name] = relation
    refs = reference_types(inputs.values())
    label = f"transform {stage.steps[-1].name}" if stage.steps else "union of sources"
    if stage.columns_from_data or stage.tees:
        gen = _execute(stage, list(sources), inputs, previous_code, settings, dry=False)
        schema = restore_schema(next(gen), refs)
        return read_once(schema, gen, label)
    kept: list[_Session] = []  # the dry run's connection, for the first read
    dry = _execute(stage, list(sources), inputs, previous_code, settings, dry=True, kept=kept)
    try:
        schema = restore_schema(next(dry), refs)
    finally:
        dry.close()

    def open_() -> Iterator[pa.RecordBatch]:
        gen = _execute(stage, list(sources), inputs, previous_code, settings, dry=False,
                       kept=kept)
        next(gen)
        return gen

    return Relation(schema, open_, label)


class _Session:
    """A dry run's DuckDB connection (its inputs registered as empty tables) and compiled
    statement, kept for the stage's first read; closed when dropped unused."""

    def __init__(self, con: duckdb.DuckDBPyConnection, spill: str, sql: str,
                 params: list[Any]) -> None:
        self.con, self.spill, self.sql, self.params = con, spill, sql, params
        self.close = weakref.finalize(self, _close, con, spill)


def _close(con: duckdb.DuckDBPyConnection, spill: str) -> None:
    con.close()
    shutil.rmtree(spill, ignore_errors=True)


def _connect(
    settings: StageSettings, ordered: bool, streaming: bool = False
) -> tuple[duckdb.DuckDBPyConnection, str]:
    spill = tempfile.mkdtemp(prefix="nexus-duckdb-", dir=settings.temp_directory)
    # Ordered stages end with an explicit ORDER BY; the others rely on insertion order.
    config: dict[str, Any] = {"temp_directory": spill, "preserve_insertion_order": not ordered}
    if streaming:
        # filters and maps over Python-fed streams: a second DuckDB thread gains nothing (the
        # stream feeds one batch at a time) and kept ~60 MB of freed memory in its own heap
        config["threads"] = 1
    if settings.memory_limit:
        config["memory_limit"] = settings.memory_limit
        limit = parse_bytes(settings.memory_limit)
        if limit is not None:
            # DuckDB needs working memory per thread to spill (it suggests >= 1 GB each);
            # with a small limit, fewer threads is what lets a blocking step complete.
            config["threads"] = max(1, min(os.cpu_count() or 1, limit // _BYTES_PER_THREAD))
    if settings.threads:
        config["threads"] = settings.threads
    try:
        return duckdb.connect(":memory:", config=config), spill
    except Exception:
        shutil.rmtree(spill, ignore_errors=True)
        raise


def parse_bytes(text: str) -> int | None:
    """``"64MB"`` -> 64000000 (DuckDB's units); None when not understood."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        return None
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def _execute(
    stage: Stage,
    source_names: list[str],
    inputs: dict[str, Relation],
    previous_code: str | None,
    settings: StageSettings,
    *,
    dry: bool,
    kept: list[_Session] | None = None,
) -> Iterator[Any]:
    """Run one SQL stage: yields the output schema first, then the batches.

    With ``dry`` the inputs are empty tables of the same schemas (to learn the output schema
    and to report errors before any data is read); its connection and statement are appended
    to ``kept`` (when given) once the schema is known. A real run takes them from ``kept``
    (replacing the empty tables by the inputs) instead of connecting and compiling again.
    """
    ordered = stage.ordered
    streaming = not ordered and all(r.scan is None for r in inputs.values())
    session = kept.pop() if kept and not dry else None
    if session is None:
        con, spill = _connect(settings, ordered, streaming)
    else:
        con, spill = session.con, session.spill
    handed_over = False
    failures: list[BaseException] = []
    # inputs DuckDB reads itself (local files, see run/file_scans.py): not where a statement
    # before the main one reads them (kept steps, pivot columns)
    use_scans = not dry and not stage.tees and not stage.columns_from_data
    pending: list[DuckdbScan] = []
    in_read_order = profiled = False
    try:
        bases: dict[str, FromClause] = {}
        for index, (logical, relation) in enumerate(inputs.items()):
            schema = relation.schema
            if ordered:
                schema = schema.append(pa.field(ORDINAL, pa.int64()))
            registered = f"__nexus_in_{index}"
            wanted = None
            if session is not None:  # the dry run's empty table: the types a scan must have
                if use_scans and relation.scan is not None:
                    wanted = _described(con, registered)
                con.unregister(registered)
            if dry:
                con.register(registered, pa.Table.from_batches([], schema=schema))
            elif use_scans and relation.scan is not None and _scan_view(
                con, registered, relation.scan, schema, ORDINAL if ordered else None,
                index << _SOURCE_SHIFT, wanted,
            ):
                if relation.scan.needs_profile and not profiled:
                    # the scan counts its rows from the statement's profile
                    con.execute("SET enable_profiling = 'no_output'")
                    profiled = True
                if ordered and relation.scan.numbers_in_read_order and not in_read_order:
                    # rows numbered in file order (a cost: Parquet's numbers need no such order)
                    con.execute("SET preserve_insertion_order = true")
                    in_read_order = True
                pending.append(relation.scan)
            else:
                batches = _guard(
                    _with_ordinal(relation, index) if ordered else iter(relation), failures
                )
                con.register(registered, pa.RecordBatchReader.from_batches(schema, batches))
            if stage.scans.get(logical, 0) > 1:  # read twice in one statement: keep a copy
                copy = f"__nexus_copy_{index}"
                con.execute(
                    f"CREATE OR REPLACE TEMP TABLE {quote_identifier(copy)} AS "
                    f"SELECT * FROM {quote_identifier(registered)}"
                )
                if pending and pending[-1] is relation.scan:
                    pending.pop().scanned(con)
                registered = copy
            bases[logical] = sa.table(
                registered, *[sa.column(f.name, sqlalchemy_type(f.type)) for f in schema]
            )
        builder = SqlBuilder(bases, source_names, con=con, previous_code=previous_code,
                             ordered=ordered)
        try:
            if session is None:
                stmt = builder.build(stage.steps, keep=stage.tees)
                if not dry:
                    for name, path in stage.tees.items():
                        _write_kept(con, builder, name, path, inputs, settings.batch_size)
                sql, params = compile_sql(stmt)
            else:
                sql, params = session.sql, session.params
            reader = con.sql(sql, params=params).to_arrow_reader(settings.batch_size)
        except (duckdb.Error, pa.ArrowException, OSError) as exc:
            if failures:
                raise failures[0] from None
            if dry:
                builder.blame(exc)
            _raise_scan_error(pending, exc)
            raise TransformError(f"{stage.label} failed: {exc}") from exc
        if dry and kept is not None:
            kept.append(_Session(con, spill, sql, params))
            handed_over = True
        yield reader.schema
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                for scan in pending:
                    scan.scanned(con)
                break
            except Exception as exc:
                if failures:  # a source failed: raise its own error, not DuckDB's wrapper
                    raise failures[0] from None
                if isinstance(exc, (duckdb.Error, pa.ArrowException, OSError)):
                    _raise_scan_error(pending, exc)
                    raise TransformError(f"{stage.label} failed: {exc}") from exc
                raise
            yield batch
    finally:
        if session is not None:
            session.close()
        elif not handed_over:
            _close(con, spill)


def _scan_view(
    con: duckdb.DuckDBPyConnection, name: str, scan: DuckdbScan, schema: pa.Schema,
    ordinal: str | None, offset: int, wanted: list[tuple[str, str]] | None = None,
) -> bool:  # fmt: skip
    """Make ``name`` a view over ``scan`` when DuckDB types it exactly as it would type an Arrow
    stream of ``schema`` (so the statement's result types do not change); else create nothing
    and return False (the stage reads the relation's batches). ``wanted``: those types, when
    already known (the dry run's table of ``schema``)."""
    if wanted is None:
        expected = "__nexus_expected"
        con.register(expected, pa.Table.from_batches([], schema=schema))
        try:
            wanted = _described(con, expected)
        finally:
            con.unregister(expected)
    view = quote_identifier(name)
    con.execute(f"CREATE TEMP VIEW {view} AS {scan.select_sql(ordinal, offset)}")
    if _described(con, view) == wanted:
        return True
    con.execute(f"DROP VIEW {view}")
    return False


def _described(con: duckdb.DuckDBPyConnection, name: str) -> list[tuple[str, str]]:
    """The (column name, DuckDB type) pairs of a table or view."""
    return [row[:2] for row in con.execute(f"DESCRIBE {quote_identifier(name)}").fetchall()]


def _raise_scan_error(scans: list[DuckdbScan], exc: Exception) -> None:
    """Raise a scanned source's own error (a file it cannot read), if ``exc`` is one."""
    for scan in scans:
        error = scan.read_error(exc)
        if error is not None:
            raise error from exc


def _write_kept(
    con: duckdb.DuckDBPyConnection, builder: SqlBuilder, name: str, path: Path,
    inputs: dict[str, Relation], batch_size: int,
) -> None:  # fmt: skip
    """A kept step's result (read from its temporary table) written to a spool file."""
    sql, params = compile_sql(builder.kept_select(name))
    reader = con.sql(sql, params=params).to_arrow_reader(batch_size)
    schema = restore_schema(reader.schema, reference_types(inputs.values()))
    write_spool(schema, iter(reader), path)


def _guard(batches: Iterator[pa.RecordBatch], failures: list[BaseException]) -> Iterator[Any]:
    """Remember an exception raised by a source, so it is re-raised as itself, not wrapped."""
    try:
        yield from batches
    except GeneratorExit:
        raise
    except BaseException as exc:
        failures.append(exc)
        raise


def _with_ordinal(relation: Relation, index: int) -> Iterator[pa.RecordBatch]:
    offset = index << _SOURCE_SHIFT
    for batch in relation:
        n = batch.num_rows
        ordinal = pa.array(np.arange(offset, offset + n, dtype=np.int64))
        offset += n
        yield batch.append_column(ORDINAL, ordinal)
