"""Column lineage from the transformation chain: which source columns each output column
is derived from (shown by Dagster as ``dagster/column_lineage``).

Rules, walking the chain forward from the sources' columns:

* several sources without a join: a column comes from every source that has it;
* filter, sort, deduplicate: columns pass through unchanged;
* map: the output column depends on the columns its expression names (a literal on none);
* aggregate: group keys keep their lineage, each output depends on its measured column, and
  every other column is dropped;
* join: keys come from both sides, clashing names get the join's suffixes;
* pivot: the index keeps its lineage, every pivoted column depends on ``columns`` and
  ``values`` (their names are only known from the data);
* custom code: declared conservatively, every column afterwards depends on every column
  before it.

Example:
    >>> lineage = column_lineage(job, {"orders": ["id", "quantity", "price"]},
    ...                          ["id", "revenue"])
    >>> lineage["revenue"]
    {('orders', 'price'), ('orders', 'quantity')}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from nexus_dagster.spec.models import (
    AggregateConfig,
    ETLJob,
    JoinConfig,
    MapConfig,
    PivotConfig,
    TransformationType,
)

Dep = tuple[str, str]  # (source name, column)


@dataclass
class _Columns:
    """Column -> source columns, plus what unknown (data-dependent) columns depend on."""

    deps: dict[str, set[Dep]] = field(default_factory=dict)
    rest: set[Dep] | None = None

    def of(self, name: str) -> set[Dep]:
        if name in self.deps:
            return set(self.deps[name])
        return set(self.rest or ())

    def everything(self) -> set[Dep]:
        out = set(self.rest or ())
        for deps in self.deps.values():
            out |= deps
        return out


def column_lineage(
    job: ETLJob,
    source_columns: Mapping[str, Sequence[str]],
    output_columns: Iterable[str],
) -> dict[str, set[Dep]]:
    """Each output column -> the (source, column) pairs it is derived from.

    Args:
        job: the job whose enabled transformations are walked in order.
        source_columns: source name -> the columns it was read with.
        output_columns: the columns of the data loaded into the targets.

    Returns:
        Output column -> set of (source name, column); empty for constants.
    """
    from nexus_dagster.transforms.expressions import referenced_columns

    named: dict[str, _Columns] = {
        name: _Columns({c: {(name, c)} for c in cols}) for name, cols in source_columns.items()
    }
    current = _union(named.values())
    for step in job.ordered_transformations():
        config = step.config
        kind = step.transformation_type
        if isinstance(config, MapConfig):
            for out, expression in config.mappings.items():
                deps: set[Dep] = set()
                for name in referenced_columns(expression):
                    deps |= current.of(name)
                current.deps[out] = deps
        elif isinstance(config, AggregateConfig):
            kept = {k: current.of(k) for k in config.group_by}
            for out, (column, _function) in config.aggregations.items():
                kept[out] = current.of(column)
            current = _Columns(kept)
        elif isinstance(config, JoinConfig):
            current = _join(named.get(config.left, current), named.get(config.right, current),
                            config)
            named[step.name] = current
        elif isinstance(config, PivotConfig):
            kept = {k: current.of(k) for k in config.index}
            current = _Columns(kept, current.of(config.columns) | current.of(config.values))
        elif kind == TransformationType.CUSTOM_CODE:
            everything = current.everything()
            for frame in named.values():
                everything |= frame.everything()
            current = _Columns({}, everything)
    return {name: current.of(name) for name in output_columns}


def _union(frames: Iterable[_Columns]) -> _Columns:
    out = _Columns()
    for frame in frames:
        for name, deps in frame.deps.items():
            out.deps.setdefault(name, set()).update(deps)
    return out


def _join(left: _Columns, right: _Columns, config: JoinConfig) -> _Columns:
    out = _Columns()
    for key in config.on:
        out.deps[key] = left.of(key) | right.of(key)
    for side, other, suffix in ((left, right, config.suffixes[0]),
                                (right, left, config.suffixes[1])):
        for name, deps in side.deps.items():
            if name in config.on:
                continue
            out.deps[name + suffix if name in other.deps else name] = set(deps)
    return out


def with_lineage(result, job: ETLJob, event, source_keys: Mapping[str, object],
                 window: tuple[str, str] | None = None):
    """A target's MaterializeResult with ``dagster/column_lineage`` (and the partition window)
    added.

    Args:
        result: the target's ``dg.MaterializeResult``.
        job: the job.
        event: the runner's ``TargetLoaded`` (output schema and the sources' schemas).
        source_keys: source name -> its asset key.
        window: (start, end) of a partition run.
    """
    import dagster as dg

    columns = {name: list(schema.names) for name, schema in event.source_schemas.items()}
    extra: dict[str, object] = {}
    if columns:
        deps = column_lineage(job, columns, event.schema.names)
        extra["dagster/column_lineage"] = dg.TableColumnLineage({
            out: [dg.TableColumnDep(source_keys[s], c) for s, c in sorted(found)]
            for out, found in deps.items() if found
        })
    if window is not None:
        extra["nexus/partition_window"] = f"[{window[0]}, {window[1]})"
    metadata = {**(result.metadata or {}), **extra}
    return dg.MaterializeResult(
        asset_key=result.asset_key, metadata=metadata, check_results=result.check_results,
        data_version=result.data_version, tags=result.tags,
    )
