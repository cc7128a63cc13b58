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
from collections.abc import Mapping, Sequence
from pathlib import Path

from nexus_dagster.errors import SpecError, SpecProblem, TransformError
from nexus_dagster.relation import Relation
from nexus_dagster.spec.models import Transformation
from nexus_dagster.transforms.custom_code import run_code_stage
from nexus_dagster.transforms.duckdb_stage import StageSettings, run_sql_stage
from nexus_dagster.transforms.spool import spool_relation, spooled
from nexus_dagster.transforms.sql_scope import HIDDEN_PREFIX
from nexus_dagster.transforms.stages import Stage, materialize_shared, plan_stages

__all__ = ["apply_transformations", "transform_outputs"]


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
    sources = _checked(inputs)
    stages = plan_stages(list(sources), steps)
    return _run(materialize_shared(sources, stages), stages, settings, {}, {})


def transform_outputs(
    inputs: Mapping[str, Relation],
    steps: list[Transformation],
    outputs: Sequence[str | None],
    folder: Path,
    *,
    batch_size: int = 50_000,
    memory_limit: str | None = None,
    temp_directory: str | None = None,
    threads: int | None = None,
) -> dict[str | None, Relation]:
    """The results of several steps or sources of one chain (targets reading different
    ``input``), every step computed once.

    A step result that a target reads and later steps read too is kept once (a DuckDB
    temporary table, spilling like any other) and written to a spool file (Arrow IPC) in
    ``folder`` while the stage runs; later steps read the temporary table. A source that a
    target reads raw and the chain reads too is read once into a spool file. The last step
    any output
    needs streams as :func:`apply_transformations`' result does (it can be read once); steps
    after it are not run.

    Args:
        inputs: source name -> relation.
        steps: the transformations, ordered and filtered for ``enabled``.
        outputs: source or step names; None is the chain's result (the last step, or the
            union of the sources without steps).
        folder: where kept results are written (the caller removes it).
        batch_size: see :func:`apply_transformations` (as are the DuckDB settings).

    Returns:
        Each output -> its relation (outputs naming the same result share one relation).

    Raises:
        SpecError: an output names no source or step.
    """
    names = [s.name for s in steps]
    resolved = {o: (names[-1] if o is None and names else o) for o in dict.fromkeys(outputs)}
    for name in resolved.values():
        if name is not None and name not in names and name not in inputs:
            known = ", ".join([*inputs, *names])
            raise SpecError([SpecProblem(f"no source or step named {name!r}; known: {known}",
                                         field="targets.input")])
    wanted = [names.index(n) for n in resolved.values() if n in names]
    steps = steps[: max(wanted) + 1] if wanted else []
    final = steps[-1].name if steps else None
    kept = {n: folder / f"step_{n}.arrow" for n in resolved.values()
            if n in names and n != final}
    settings = StageSettings(batch_size, memory_limit, temp_directory, threads)
    settings.check()
    sources = _checked(inputs)
    stages = plan_stages(list(sources), steps, kept) if steps else []
    read_by_chain = {s for stage in stages for s in sources
                     if stage.scans.get(s) or s in stage.frames}
    for name in set(resolved.values()) & read_by_chain:
        sources[name] = spooled(sources[name], folder / f"source_{name}.arrow")
    code_results: dict[str, Relation] = {}
    main = _run(materialize_shared(sources, stages), stages, settings, kept, code_results)
    results: dict[str | None, Relation] = {}
    for output, name in resolved.items():
        if name is None or name == final:
            results[output] = main
        elif name in code_results:
            results[output] = code_results[name]
        elif name in kept:
            results[output] = spool_relation(kept[name], f"transform {name}")
        else:
            results[output] = sources[name]
    return results


def _checked(inputs: Mapping[str, Relation]) -> dict[str, Relation]:
    """The inputs, refused when a column has the reserved hidden prefix."""
    for name, relation in inputs.items():
        reserved = [n for n in relation.schema.names if n.startswith(HIDDEN_PREFIX)]
        if reserved:
            raise TransformError(
                f"input {name!r} has column {reserved[0]!r}: names starting with "
                f"{HIDDEN_PREFIX!r} are reserved"
            )
    return dict(inputs)


def _run(
    sources: dict[str, Relation],
    stages: list[Stage],
    settings: StageSettings,
    kept: Mapping[str, Path],
    code_results: dict[str, Relation],
) -> Relation:
    """Run the stages in order; a kept custom_code result is spooled into ``code_results``."""
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
            if previous_code in kept:
                current = spooled(current, kept[previous_code])
                code_results[previous_code] = current
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
