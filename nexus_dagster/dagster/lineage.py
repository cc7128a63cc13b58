"""Column lineage as Dagster metadata: ``dagster/column_lineage`` on each target.

Which source columns each output column is derived from is computed without Dagster by
:func:`nexus_dagster.transforms.column_lineage.column_lineage` (the rules per transformation
type are in the step table, :mod:`nexus_dagster.transforms.steps`); this module turns it into
``dg.TableColumnLineage``.
"""

from __future__ import annotations

from collections.abc import Mapping

from nexus_dagster.spec.models import ETLJob
from nexus_dagster.transforms.column_lineage import column_lineage, upstream_sources


def target_deps(job: ETLJob, target, source_keys: Mapping[str, object]) -> list:
    """The asset keys of the sources whose rows reach a target through its ``input`` (all
    the job's sources feeding the last step by default), without repeats.

    Args:
        job: the job.
        target: one of its targets.
        source_keys: source name -> its asset key.
    """
    names = upstream_sources(job.ordered_transformations(), [s.name for s in job.sources],
                             target.input)
    return list(dict.fromkeys(source_keys[name] for name in names))


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
        deps = column_lineage(job.ordered_transformations(), columns, event.schema.names,
                              event.target.input)
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
