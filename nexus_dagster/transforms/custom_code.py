"""Custom code steps: the step's Python runs on a pandas DataFrame ``df`` and its ``df``
continues the chain.

The code sees ``df`` (the whole data, or each batch with ``per_batch``), ``pd``, ``np``,
``datetime``, ``timedelta`` and, as DataFrames, the sources it names. Decimal columns reach
the code as ``float64`` (pandas' number type: ``np.log``, ``rolling``, ``select_dtypes`` work on
them); a column that comes back with the same name and float values equal to a decimal of the
input's scale gets its decimal type back, one the code changed stays ``float64``. Its result is
converted back to Arrow with the input's exact types where pandas changed only their form. An
error names the step and the line of the code that failed.

Example:
    >>> import pyarrow as pa
    >>> from nexus_dagster.relation import Relation
    >>> from nexus_dagster.spec.models import Transformation
    >>> step = Transformation(name="double", transformation_type="custom_code", config={},
    ...                       custom_code="df['a'] = df['a'] * 2")
    >>> code, names = compile_custom_code(step)
    >>> data = Relation.from_table(pa.table({"a": [1, 2]}))
    >>> run_code_stage(step, code, data, {}, 100).to_table()["a"].to_pylist()
    [2, 4]
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import traceback
from collections.abc import Iterator
from datetime import datetime, timedelta
from types import CodeType
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from nexus_dagster.errors import TransformError
from nexus_dagster.relation import Relation
from nexus_dagster.spec.models import CustomCodeConfig, Transformation
from nexus_dagster.transforms.stage_output import read_once, restorable

if TYPE_CHECKING:  # numpy and pandas load with the first code step, not with the engine
    import pandas as pd

__all__ = ["CODE_GLOBALS", "compile_custom_code", "run_code_stage"]

CODE_GLOBALS = ("df", "pd", "np", "datetime", "timedelta")
"""The names custom code always gets (a source with one of these names is not a frame)."""


def _code_filename(step: Transformation) -> str:
    return f"<custom_code {step.name}>"


def compile_custom_code(step: Transformation) -> tuple[CodeType, set[str]]:
    """The step's code compiled, and the names it loads (the sources it may read by name).

    Raises:
        TransformError: a syntax error, with its line.
    """
    try:
        tree = ast.parse(step.custom_code or "", filename=_code_filename(step))
        code = compile(tree, _code_filename(step), "exec")
    except SyntaxError as exc:
        raise TransformError(
            f"transformation {step.name!r} (custom_code): syntax error at line {exc.lineno}: "
            f"{exc.msg}"
        ) from None
    loaded = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    return code, loaded - set(CODE_GLOBALS)


def run_code_stage(
    step: Transformation,
    code: CodeType,
    current: Relation,
    frames: dict[str, Relation],
    batch_size: int,
) -> Relation:
    """The result of a custom_code step over ``current``, readable once.

    The code runs when the result is first needed: here already for the schema (on the
    whole data, or on the first batch with ``per_batch``).

    Args:
        step: the custom_code step.
        code: its compiled code (:func:`compile_custom_code`).
        current: the data coming into the step (``df``).
        frames: source name -> relation, for the sources the code reads by name.
        batch_size: rows per output batch.
    """
    config = step.config
    per_batch = isinstance(config, CustomCodeConfig) and config.per_batch
    reference = current.schema
    label = f"transform {step.name}"

    def load_frames() -> dict[str, pd.DataFrame]:
        return {name: _pandas(relation.to_table()) for name, relation in frames.items()}

    def whole() -> Iterator[Any]:
        named = load_frames()
        df = _pandas(current.to_table())
        table = _to_arrow(step, _run_code(step, code, df, named), reference)
        del df
        yield table.schema
        yield from table.to_batches(max_chunksize=batch_size)

    def batched() -> Iterator[Any]:
        named = load_frames()
        schema: pa.Schema | None = None
        for number, batch in enumerate(current, start=1):
            df = _pandas(pa.Table.from_batches([batch]))
            table = _to_arrow(step, _run_code(step, code, df, named), reference)
            if schema is None:
                schema = table.schema
                yield schema
            elif table.schema != schema:
                try:
                    table = _cast_like(table.select(schema.names), schema)
                except (pa.ArrowException, KeyError, ValueError) as exc:
                    raise TransformError(
                        f"transformation {step.name!r} (custom_code, per_batch): batch {number} "
                        f"produced schema {table.schema} but the first batch produced {schema}: "
                        f"{exc}"
                    ) from exc
            yield from table.to_batches(max_chunksize=batch_size)
        if schema is None:  # no input batches: learn the schema from an empty frame
            df = _pandas(reference.empty_table())
            table = _to_arrow(step, _run_code(step, code, df, named), reference)
            yield table.schema
            yield from table.to_batches(max_chunksize=batch_size)

    gen = batched() if per_batch else whole()
    return read_once(next(gen), gen, label)


def _run_code(
    step: Transformation, code: CodeType, df: pd.DataFrame, frames: dict[str, pd.DataFrame]
) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    namespace: dict[str, Any] = dict(frames)
    namespace.update(
        __builtins__=builtins,
        __name__="__nexus_custom_code__",
        df=df,
        pd=pd,
        np=np,
        datetime=datetime,
        timedelta=timedelta,
    )
    try:
        exec(code, namespace)
    except (Exception, SystemExit) as exc:
        line, text = _failing_line(step, exc)
        where = f" at line {line}: {text.strip()!r}" if line else ""
        raise TransformError(
            f"transformation {step.name!r} (custom_code) failed{where}: {type(exc).__name__}: {exc}"
        ) from exc
    result = namespace.get("df")
    if not isinstance(result, pd.DataFrame):
        raise TransformError(
            f"transformation {step.name!r} (custom_code): after the code, df must be a pandas "
            f"DataFrame, not {type(result).__name__}"
        )
    return result


def _failing_line(step: Transformation, exc: BaseException) -> tuple[int | None, str]:
    filename = _code_filename(step)
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == filename:
            line = frame.lineno
    if line is None:
        return None, ""
    lines = (step.custom_code or "").splitlines()
    return line, lines[line - 1] if 0 < line <= len(lines) else ""


def _to_arrow(step: Transformation, df: pd.DataFrame, reference: pa.Schema) -> pa.Table:
    """The DataFrame as Arrow, with the input's exact types where pandas changed them."""
    try:
        table = pa.Table.from_pandas(df, preserve_index=False)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise TransformError(
            f"transformation {step.name!r} (custom_code): the resulting df cannot be "
            f"converted to Arrow: {exc}"
        ) from exc
    table = table.replace_schema_metadata(None)
    refs = {f.name: f.type for f in reference}
    columns = []
    for f, column in zip(table.schema, table.columns, strict=True):
        ref = refs.get(f.name)
        if ref is not None and pa.types.is_decimal(ref) and pa.types.is_floating(f.type):
            column = _exact_decimal(column, ref) or column
        elif ref is not None and restorable(f.type, ref):
            with contextlib.suppress(pa.ArrowException, ValueError):
                column = column.cast(ref)
        columns.append(column)
    return pa.Table.from_arrays(columns, names=table.column_names)


def _pandas(table: pa.Table) -> pd.DataFrame:
    """``table`` as the DataFrame custom code sees: decimal columns as ``float64``."""
    if any(pa.types.is_decimal(f.type) for f in table.schema):
        table = pa.Table.from_arrays(
            [_float(c) if pa.types.is_decimal(c.type) else c for c in table.columns],
            names=table.column_names)
    return table.to_pandas()


def _float(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Decimals as the nearest floats (through their text: Arrow's direct decimal -> double
    cast is not correctly rounded, 3.30 would become 3.3000000000000003)."""
    return column.cast(pa.string()).cast(pa.float64())


def _exact_decimal(column: pa.ChunkedArray, ref: pa.DataType) -> pa.ChunkedArray | None:
    """``column`` (floats) as the decimal ``ref`` when every value is exactly such a decimal
    (the float of an untouched input value casts back to the same float), else None."""
    try:
        decimal = column.cast(ref)
        same = pc.equal(_float(decimal), column.cast(pa.float64()))
    except (pa.ArrowException, ValueError):
        return None
    return decimal if pc.all(pc.fill_null(same, True)).as_py() else None


def _cast_like(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """A later ``per_batch`` result as the first batch's ``schema``; floats become a decimal
    column only where exact (else the schema error below names the step)."""
    columns = []
    for f, column in zip(schema, table.columns, strict=True):
        if pa.types.is_decimal(f.type) and pa.types.is_floating(column.type):
            exact = _exact_decimal(column, f.type)
            if exact is None:
                raise pa.ArrowInvalid(f"column {f.name!r} holds values that are not exact "
                                      f"{f.type} decimals")
            column = exact
        columns.append(column.cast(f.type))
    return pa.Table.from_arrays(columns, schema=schema)
