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

__all__ = ["column_lineage"]


def column_lineage(
    steps: Sequence[Transformation],
    source_columns: Mapping[str, Sequence[str]],
    output_columns: Iterable[str],
) -> dict[str, set[Dep]]:
    """Each output column -> the (source, column) pairs it is derived from.

    Args:
        steps: the transformations, ordered and filtered for ``enabled``
            (``job.ordered_transformations()``).
        source_columns: source name -> the columns it was read with.
        output_columns: the columns of the data loaded into the targets.

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
        current = kind.lineage(current, named, step.config)
        if kind.inputs(step.config):
            named[step.name] = current
    return {name: current.of(name) for name in output_columns}
