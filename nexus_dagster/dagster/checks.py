"""Spec ``checks`` -> Dagster asset checks on the targets.

Checks run in the job's step right after every target committed: each target is read back
through its own connector (for a partition run, only the partition's window), copied once into
DuckDB, and every check of that target is one query over it. A result carries the number of
failing rows and a few of them (sensitive columns and registered secrets masked); a
``blocking`` check that fails fails the run, so nothing downstream runs on bad data.

Example:
    >>> specs = check_specs(job, {"fact_orders": dg.AssetKey(["orders", "fact_orders"])})
    >>> for result in evaluate(spec, connections, plan):  # inside the asset  # doctest: +SKIP
    ...     yield result
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dagster as dg
import pyarrow as pa

from nexus_dagster import secrets
from nexus_dagster.connectors.base import Connector
from nexus_dagster.run.cursors import filter_cursor, window_cursor
from nexus_dagster.run.endpoints import read_back_request
from nexus_dagster.spec.models import DataTarget, ETLJob
from nexus_dagster.spec.operations import CheckSpec, CheckType

if TYPE_CHECKING:
    import duckdb

#: failing rows shown in a check's metadata
SAMPLE_ROWS = 5
_MAX_TEXT = 200


@dataclass(frozen=True)
class PlannedCheck:
    """One spec check bound to one target asset."""

    check: CheckSpec
    target: DataTarget
    key: dg.AssetKey


@dataclass
class Outcome:
    """What a check found: pass/fail, failing row count, a sample and extra facts."""

    passed: bool
    failing_rows: int
    sample: list[dict[str, Any]]
    facts: dict[str, Any]


def plan(job: ETLJob, target_keys: Mapping[str, dg.AssetKey]) -> list[PlannedCheck]:
    """Every check of the job on every target it applies to (``target:`` or all targets)."""
    planned = []
    for check in job.checks:
        for target in job.targets:
            if check.target in (None, target.name):
                planned.append(PlannedCheck(check, target, target_keys[target.name]))
    return planned


def check_specs(planned: Sequence[PlannedCheck], partitions_def=None) -> list[dg.AssetCheckSpec]:
    """The Dagster asset check specs for a planned list (declared on the job's multi-asset)."""
    return [
        dg.AssetCheckSpec(
            p.check.key,
            asset=p.key,
            blocking=p.check.blocking,
            description=p.check.description or describe(p.check),
            partitions_def=partitions_def,
        )
        for p in planned
    ]


def describe(check: CheckSpec) -> str:
    """A one-line, human description of a check."""
    col = ", ".join(check.columns or ([check.column] if check.column else []))
    kind = check.check
    if kind == CheckType.ACCEPTED_VALUES:
        return f"{col} in {check.values}"
    if kind in (CheckType.RANGE, CheckType.ROW_COUNT):
        what = "row count" if kind == CheckType.ROW_COUNT else col
        return f"{what} between {check.min} and {check.max}"
    if kind == CheckType.REGEX:
        return f"{col} matches {check.pattern!r}"
    if kind == CheckType.FRESHNESS:
        return f"newest {col} at most {check.max_age} old"
    if kind == CheckType.SQL:
        return f"no rows from: {check.sql}"
    if kind == CheckType.EXPRESSION:
        return f"every row: {check.expression}"
    return f"{col} {kind.value.replace('_', ' ')}"


def evaluate(
    spec, opener: Callable[[DataTarget], Connector], planned: Sequence[PlannedCheck],
    window: tuple[Any, Any] | None = None, log=None,
) -> Iterator[dg.AssetCheckResult]:  # fmt: skip
    """Run the planned checks, one read of each target (its connector from ``opener``, the
    step's resources), and yield their results."""
    by_target: dict[str, list[PlannedCheck]] = {}
    for item in planned:
        by_target.setdefault(item.target.name, []).append(item)
    for items in by_target.values():
        target = items[0].target
        connector = opener(target)
        try:
            column = next((s.incremental_column for s in spec.job.sources
                           if s.incremental_column), None)
            cursor = window_cursor(column, window)
            relation = connector.read(read_back_request(target, connector, spec.root, cursor))
            if cursor and not connector.supports_incremental:
                relation = filter_cursor(relation, cursor, target.name)
            import duckdb  # loaded by the first check run, not by the definitions

            with duckdb.connect(":memory:") as con:
                reader = relation.reader()  # noqa: F841 - scanned by name below
                con.execute("CREATE TABLE data AS SELECT * FROM reader")
                for item in items:
                    yield _result(item, run_check(con, item.check, relation.schema))
        finally:
            connector.close()
        if log:
            log.info(f"checked {target.name}: {len(items)} check(s)")


def _result(item: PlannedCheck, outcome: Outcome) -> dg.AssetCheckResult:
    metadata: dict[str, Any] = {"nexus/failing_rows": outcome.failing_rows, **outcome.facts}
    if outcome.sample:
        metadata["nexus/failing_sample"] = dg.MetadataValue.json(outcome.sample)
    severity = (dg.AssetCheckSeverity.WARN if item.check.severity == "warn"
                else dg.AssetCheckSeverity.ERROR)
    return dg.AssetCheckResult(
        asset_key=item.key,
        check_name=item.check.key,
        passed=outcome.passed,
        severity=severity,
        metadata=metadata,
        description=describe(item.check),
    )


# ----------------------------------------------------------------------------- the checks
def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def run_check(con: duckdb.DuckDBPyConnection, check: CheckSpec, schema: pa.Schema) -> Outcome:
    """Evaluate one check against table ``data`` on a DuckDB connection."""
    kind = check.check
    col = _q(check.column) if check.column else ""
    params: list[Any] = []
    if kind == CheckType.ROW_COUNT:
        rows = con.execute("SELECT count(*) FROM data").fetchone()[0]
        ok = (check.min is None or rows >= check.min) and (check.max is None or rows <= check.max)
        return Outcome(ok, 0, [], {"dagster/row_count": int(rows)})
    if kind == CheckType.FRESHNESS:
        return _freshness(con, check)
    if kind == CheckType.NOT_NULL:
        where = f"{col} IS NULL"
    elif kind == CheckType.UNIQUE:
        keys = ", ".join(_q(c) for c in (check.columns or [check.column]))
        not_null = " AND ".join(f"{_q(c)} IS NOT NULL" for c in (check.columns or [check.column]))
        failing = (f"SELECT * FROM data WHERE {not_null} "
                   f"QUALIFY count(*) OVER (PARTITION BY {keys}) > 1")
        return _failing(con, failing, [])
    elif kind == CheckType.ACCEPTED_VALUES:
        marks = ", ".join("?" for _ in check.values or [])
        where = f"{col} IS NOT NULL AND {col} NOT IN ({marks})"
        params = list(check.values or [])
    elif kind == CheckType.RANGE:
        parts = []
        if check.min is not None:
            parts.append(f"{col} < ?")
            params.append(check.min)
        if check.max is not None:
            parts.append(f"{col} > ?")
            params.append(check.max)
        where = " OR ".join(parts)
    elif kind == CheckType.REGEX:
        where = f"{col} IS NOT NULL AND NOT regexp_full_match(CAST({col} AS VARCHAR), ?)"
        params = [check.pattern]
    elif kind == CheckType.EXPRESSION:
        where, params = _expression(check.expression or "", schema)
    else:  # SQL: the query's rows are the failures
        return _failing(con, (check.sql or "").strip().rstrip(";"), [])
    return _failing(con, f"SELECT * FROM data WHERE {where}", params)


def _failing(con: duckdb.DuckDBPyConnection, query: str, params: list[Any]) -> Outcome:
    count = con.execute(f"SELECT count(*) FROM ({query}) AS failing", params).fetchone()[0]
    sample: list[dict[str, Any]] = []
    if count:
        cursor = con.execute(f"SELECT * FROM ({query}) AS failing LIMIT {SAMPLE_ROWS}", params)
        names = [d[0] for d in cursor.description]
        sample = [_safe_row(names, row) for row in cursor.fetchall()]
    return Outcome(count == 0, int(count), sample, {})


def _safe_row(names: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
    """A sampled row fit for metadata: sensitive columns hidden, secrets masked, text cut."""
    out: dict[str, Any] = {}
    for name, value in zip(names, row, strict=True):
        if secrets.is_sensitive(name):
            out[name] = "***"
        elif value is None or isinstance(value, bool | int | float):
            out[name] = value
        else:
            text = secrets.mask(value if isinstance(value, str) else str(value))
            out[name] = text[:_MAX_TEXT]
    json.dumps(out)
    return out


def _expression(expression: str, schema: pa.Schema) -> tuple[str, list[Any]]:
    """``NOT coalesce(<condition>, false)`` compiled for DuckDB with bound parameters."""
    from nexus_dagster.transforms.rules_sql import broken_expression_sql

    return broken_expression_sql(expression, schema)


def _freshness(con: duckdb.DuckDBPyConnection, check: CheckSpec) -> Outcome:
    newest = con.execute(f"SELECT max({_q(check.column or '')}) FROM data").fetchone()[0]
    limit = check.max_age_seconds or 0
    now = dt.datetime.now(dt.UTC)
    if newest is None:
        return Outcome(False, 0, [], {"nexus/newest": "no rows"})
    if isinstance(newest, str):
        newest = dt.datetime.fromisoformat(newest)
    if not isinstance(newest, dt.datetime):
        newest = dt.datetime.combine(newest, dt.time())
    if newest.tzinfo is None:  # naive timestamps are read as UTC
        newest = newest.replace(tzinfo=dt.UTC)
    age = (now - newest).total_seconds()
    facts = {"nexus/newest": newest.isoformat(), "nexus/age_seconds": round(age, 1),
             "nexus/max_age_seconds": limit}
    return Outcome(age <= limit, 0, [], facts)
