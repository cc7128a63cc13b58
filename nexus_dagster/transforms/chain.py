"""The transformation chain, run in DuckDB over streams of Arrow record batches.

:func:`apply_transformations` turns input relations and ordered steps into one lazy
:class:`~nexus_dagster.relation.Relation`. Consecutive built-in steps become ONE SQL statement,
built with SQLAlchemy constructs (bound parameters, dialect-quoted identifiers) and compiled
for DuckDB. The inputs are registered in DuckDB as Arrow streams and the result is read back
with ``to_arrow_reader(batch_size)``: filter and map stream batch by batch; aggregate, sort,
deduplicate, pivot and join are DuckDB's out-of-core operators, which spill to
``temp_directory`` under ``memory_limit``. Custom code splits the chain: it gets a pandas
DataFrame ``df`` (the whole data, or each batch with ``per_batch``) and its result continues.

Row order follows pandas: when a SQL part of the chain has a step whose result depends on row
order (sort, deduplicate, aggregate, pivot, join), every input row carries a hidden ordinal
and each step keeps the invariant "current order = ORDER BY its hidden order keys" (sort and
join only add key columns, so the stage ends with one ORDER BY and no extra sort); chains of
filters and maps keep the input order without any sort.

The parts: :mod:`~nexus_dagster.transforms.stages` (planning),
:mod:`~nexus_dagster.transforms.duckdb_stage` (a SQL stage),
:mod:`~nexus_dagster.transforms.custom_code` (a custom_code step) and the step table
:mod:`~nexus_dagster.transforms.steps`.

Example:
    >>> import pyarrow as pa
    >>> from nexus_dagster.relation import Relation
    >>> from nexus_dagster.spec.models import Transformation
    >>> orders = Relation.from_table(pa.table({"status": ["paid", "open"], "amount": [5, 7]}))
    >>> step = Transformation(name="paid", transformation_type="filter",
    ...                       config={"condition": 'status == "paid"'})
    >>> apply_transformations({"orders": orders}, [step]).to_table().num_rows
    1
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from nexus_dagster.errors import TransformError
from nexus_dagster.relation import Relation
from nexus_dagster.spec.models import Transformation
from nexus_dagster.transforms.custom_code import run_code_stage
from nexus_dagster.transforms.duckdb_stage import StageSettings, run_sql_stage
from nexus_dagster.transforms.sql_scope import HIDDEN_PREFIX
from nexus_dagster.transforms.stages import Stage, materialize_shared, plan_stages

__all__ = ["apply_transformations"]


def apply_transformations(
    inputs: Mapping[str, Relation],
    steps: list[Transformation],
    *,
    batch_size: int = 50_000,
    memory_limit: str | None = None,
    temp_directory: str | None = None,
    threads: int | None = None,
) -> Relation:
    """Apply an ordered chain of transformations to named input relations.

    The data a step sees is the union of all inputs by column name (a single input is
    itself) until a ``join`` step combines named inputs; from then on the join result is the
    current data. A join's ``left``/``right`` name a source or an earlier step (the data as
    that step produced it) since the last custom_code step.

    Nothing is read until the result is iterated, except where the result's columns depend
    on the data (pivot, custom code): then the chain starts at once so that the schema is
    known, and the result can be read once.

    Args:
        inputs: source name -> relation. Relations are read once each unless a source is
            used by several parts of the chain (then it is materialized once).
        steps: the transformations, already ordered and filtered for ``enabled``.
        batch_size: rows per output batch.
        memory_limit: DuckDB ``memory_limit`` (e.g. ``"2GB"``); blocking steps spill past it.
        temp_directory: where DuckDB spills (a private folder is made inside, and removed).
        threads: DuckDB threads (default: the CPUs, fewer under a small ``memory_limit``).

    Returns:
        A relation streaming the result in batches of at most ``batch_size`` rows.

    Raises:
        SpecError: a step refers to an unknown source or step, or custom code is disabled.
        ExpressionError: a filter condition or map expression is not allowed.
        TransformError: a step does not fit the data (unknown column, type error, ...).
    """
    if not inputs:
        raise TransformError("apply_transformations needs at least one input relation")
    if batch_size < 1:
        raise TransformError(f"batch_size must be positive, got {batch_size}")
    settings = StageSettings(batch_size, memory_limit, temp_directory, threads)
    settings.check()
    sources = dict(inputs)
    for name, relation in sources.items():
        reserved = [n for n in relation.schema.names if n.startswith(HIDDEN_PREFIX)]
        if reserved:
            raise TransformError(
                f"input {name!r} has column {reserved[0]!r}: names starting with "
                f"{HIDDEN_PREFIX!r} are reserved"
            )
    stages = plan_stages(list(sources), steps)
    sources = materialize_shared(sources, stages)

    current: Relation | None = None
    previous_code: str | None = None
    for stage in stages:
        if stage.code is not None:
            if current is None:
                current = (
                    _union(sources, settings)
                    if len(sources) > 1
                    else next(iter(sources.values()))
                )
            frames = {name: sources[name] for name in sorted(stage.frames)}
            assert stage.compiled is not None
            current = run_code_stage(
                stage.code, stage.compiled, current, frames, settings.batch_size
            )
            previous_code = stage.code.name
        else:
            current = run_sql_stage(stage, sources, current, previous_code, settings)
    if current is None:
        if len(sources) == 1:
            return next(iter(sources.values()))
        current = _union(sources, settings)
    return current


def _union(sources: dict[str, Relation], settings: StageSettings) -> Relation:
    """All sources as one relation, by column name."""
    stage = Stage(steps=[], scans=Counter({s: 1 for s in sources}))
    return run_sql_stage(stage, sources, None, None, settings)
