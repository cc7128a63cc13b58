"""Column lineage of the transformation chain: which source columns each output column is
derived from (Dagster shows it as ``dagster/column_lineage``; see
:mod:`nexus_dagster.dagster.lineage`).

The walk starts from the sources' columns (several sources without a join: a column comes
from every source that has it) and applies each step's lineage rule from the step table
(:mod:`nexus_dagster.transforms.steps`, whose docstring lists the rules).

Example:
    >>> lineage = column_lineage(job.ordered_transformations(),
    ...                          {"orders": ["id", "quantity", "price"]}, ["id", "revenue"])
    >>> lineage["revenue"]
    {('orders', 'price'), ('orders', 'quantity')}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from nexus_dagster.spec.models import Transformation
from nexus_dagster.transforms.steps import ColumnSources, Dep, step_kind

__all__ = ["column_lineage", "upstream_sources"]


def column_lineage(
    steps: Sequence[Transformation],
    source_columns: Mapping[str, Sequence[str]],
    output_columns: Iterable[str],
    output: str | None = None,
) -> dict[str, set[Dep]]:
    """Each output column -> the (source, column) pairs it is derived from.

    Args:
        steps: the transformations, ordered and filtered for ``enabled``
            (``job.ordered_transformations()``).
        source_columns: source name -> the columns it was read with.
        output_columns: the columns of the data loaded into the target.
        output: the source or step whose result the target loads (a target's ``input``);
            default: the last step.

    Returns:
        Output column -> set of (source name, column); empty for constants.
    """
    named: dict[str, ColumnSources] = {
        name: ColumnSources({c: {(name, c)} for c in cols})
        for name, cols in source_columns.items()
    }
    current = ColumnSources.union(named.values())
    for step in steps:
        kind = step_kind(step)
        if step.input is not None:
            current = named.get(step.input, current)
        current = kind.lineage(current, named, step.config)
        named[step.name] = current
    if output is not None:
        current = named.get(output, current)
    return {name: current.of(name) for name in output_columns}


def upstream_sources(
    steps: Sequence[Transformation], sources: Sequence[str], output: str | None = None
) -> list[str]:
    """The sources whose rows reach ``output`` (a target's ``input``; default the last step),
    in spec order: a target writing a source's raw rows depends on that source only.

    Example:
        >>> upstream_sources([], ["orders", "customers"], "orders")
        ['orders']
    """
    reads: dict[str, set[str]] = {name: {name} for name in sources}
    current = set(sources)
    for step in steps:
        if step.input is not None:
            current = reads.get(step.input, current)
        sides = step_kind(step).inputs(step.config).values()
        if sides:
            current = set().union(*(reads.get(side, current) for side in sides))
        if step.custom_code is not None:  # the code may read any source by name
            current = current | set(sources)
        reads[step.name] = current
    if output is not None:
        current = reads.get(output, current)
    return [name for name in sources if name in current]
