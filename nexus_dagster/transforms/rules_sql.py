"""Row rules compiled to one DuckDB query, and the good/rejected split of a result.

:func:`rules_query` builds ``SELECT *, <rule 0 broken>, ..., <reason> FROM data``: each rule is
a boolean column (null-safe: ``coalesce(..., false)``), and the reason is a ``CASE`` per rule
joined by ``concat_ws`` (``"amount_range: amount >= 0; id_not_null: id is not null"``), null
for a good row. Values are bound parameters, identifiers quoted. :func:`split_rows` streams a
relation through that query once, writing the good rows and the rejected rows (with
``_reject_reason`` and ``_rejected_at``) to two spool files as it goes, and counts the rows
breaking each rule; when an ``action: fail`` rule is broken it raises :class:`RuleGateError`
after the pass (nothing has been written to any target then).

Example:
    >>> split = split_rows(relation, job.rules, folder, rejected_at)  # doctest: +SKIP
    >>> split.good.to_table().num_rows, split.counts.quarantined  # doctest: +SKIP
    (98, 2)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from nexus_dagster import secrets
from nexus_dagster.errors import TransformError
from nexus_dagster.relation import Relation, conform
from nexus_dagster.spec.rules import (
    REASON_COLUMN,
    REJECTED_AT_COLUMN,
    RuleAction,
    RuleCheck,
    RuleSpec,
)
from nexus_dagster.transforms.expressions import (
    compile_expression,
    referenced_columns,
    sqlalchemy_type,
)
from nexus_dagster.transforms.spool import spool_relation
from nexus_dagster.transforms.sql_scope import HIDDEN_PREFIX, compile_sql

__all__ = ["RuleCounts", "RuleGateError", "RuleSplit", "rules_query", "split_rows"]

#: example values shown per broken ``action: fail`` rule
EXAMPLES = 5
_MAX_TEXT = 80
_ORDINAL = f"{HIDDEN_PREFIX}rule_ord"


def _flag(index: int) -> str:
    return f"{HIDDEN_PREFIX}rule_{index}"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class RuleCounts:
    """What the rules found in one run: rows in, rows kept, rows quarantined, and per rule
    (by key) the rows that broke it (a row may break several rules)."""

    rows_in: int = 0
    passed: int = 0
    quarantined: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)
    #: rule key -> a few masked example values of the rows that broke it (``action: fail``)
    examples: dict[str, list[Any]] = field(default_factory=dict)


@dataclass
class RuleSplit:
    """The rows that passed every quarantine rule, the rejected rows, and the counts."""

    good: Relation
    rejected: Relation
    counts: RuleCounts


class RuleGateError(TransformError):
    """An ``action: fail`` rule was broken: the run stops before any target commits.

    Attributes:
        counts: the counts of every rule (what the asset check results report).
        broken: keys of the ``action: fail`` rules that rows broke.
    """

    def __init__(self, message: str, counts: RuleCounts, broken: list[str]):
        super().__init__(message)
        self.counts = counts
        self.broken = broken


def _condition(rule: RuleSpec, schema: pa.Schema) -> tuple[str, list[Any]]:
    """SQL that is true when a row breaks the rule (never null), and its parameters."""
    kind = rule.check
    col = _q(rule.column) if rule.column else ""
    if kind == RuleCheck.NOT_NULL:
        return f"{col} IS NULL", []
    if kind == RuleCheck.UNIQUE:
        cols = [_q(c) for c in rule.column_names]
        present = " AND ".join(f"{c} IS NOT NULL" for c in cols)
        return f"({present} AND count(*) OVER (PARTITION BY {', '.join(cols)}) > 1)", []
    if kind == RuleCheck.ACCEPTED_VALUES:
        marks = ", ".join("?" for _ in rule.values or [])
        return f"coalesce({col} NOT IN ({marks}), false)", list(rule.values or [])
    if kind == RuleCheck.RANGE:
        parts, params = [], []
        if rule.min is not None:
            parts.append(f"{col} < ?")
            params.append(rule.min)
        if rule.max is not None:
            parts.append(f"{col} > ?")
            params.append(rule.max)
        return f"coalesce({' OR '.join(parts)}, false)", params
    if kind == RuleCheck.REGEX:
        text = f"CAST({col} AS VARCHAR)"
        return f"coalesce(NOT regexp_full_match({text}, ?), false)", [rule.pattern]
    sql, params = broken_expression_sql(rule.expression or "", schema)
    return f"({sql})", params


def broken_expression_sql(expression: str, schema: pa.Schema) -> tuple[str, list[Any]]:
    """DuckDB SQL over table ``data`` (columns of ``schema``) that is true when a row breaks
    ``expression`` — ``NOT coalesce(<condition>, false)``: a null condition breaks it — and
    its bound parameters. Row rules and the ``expression`` check of ``checks`` share it."""
    table = sa.table("data", *[sa.column(f.name, sqlalchemy_type(f.type)) for f in schema])
    condition = compile_expression(expression, {c.name: c for c in table.c}, condition=True)
    return compile_sql(sa.not_(sa.func.coalesce(condition, sa.false())))


def rules_query(rules: Sequence[RuleSpec], schema: pa.Schema) -> tuple[str, list[Any]]:
    """``SELECT *, <flag per rule>, <reason> FROM data`` for DuckDB, and its parameters.

    The flag of rule ``i`` is column ``__nexus_rule_<i>`` (true: the row breaks it); the
    reason column names every broken ``action: quarantine`` rule with what a good row meets,
    and is null for a row that breaks none. Rows keep their order (a ``unique`` rule's window
    is ordered back by the input's row number).

    Raises:
        TransformError: a rule names a column the data does not have.
    """
    known = set(schema.names)
    for rule in rules:
        used = set(rule.column_names)
        if rule.check == RuleCheck.EXPRESSION:
            used |= referenced_columns(rule.expression or "")
        missing = sorted(used - known)
        if missing:
            raise TransformError(
                f"rule {rule.key!r}: unknown column {missing[0]!r}; "
                f"columns here: {', '.join(schema.names)}"
            )
    flags, params = [], []
    for index, rule in enumerate(rules):
        sql, values = _condition(rule, schema)
        flags.append(f"{sql} AS {_q(_flag(index))}")
        params += values
    reasons, reason_params = [], []
    for index, rule in enumerate(rules):
        if rule.action == RuleAction.QUARANTINE:
            reasons.append(f"CASE WHEN {_q(_flag(index))} THEN ? END")
            reason_params.append(f"{rule.key}: {rule.describe()}")
    reason = (f"nullif(concat_ws('; ', {', '.join(reasons)}), '')" if reasons
              else "CAST(NULL AS VARCHAR)")
    windowed = any(r.check == RuleCheck.UNIQUE for r in rules)
    if windowed:
        inner = (f"SELECT *, {', '.join(flags)} FROM "
                 f"(SELECT *, row_number() OVER () AS {_q(_ORDINAL)} FROM data) AS data "
                 f"ORDER BY {_q(_ORDINAL)}")
    else:
        inner = f"SELECT *, {', '.join(flags)} FROM data"
    query = f"SELECT *, {reason} AS {_q(REASON_COLUMN)} FROM ({inner}) AS flagged"
    return query, reason_params + params  # the reasons' marks come first in the text


def _example(rule: RuleSpec, batch: pa.RecordBatch, mask: pa.Array) -> list[Any]:
    """Up to :data:`EXAMPLES` values (dicts for several columns) of rows breaking ``rule``."""
    columns = rule.column_names or sorted(referenced_columns(rule.expression or ""))
    rows = batch.filter(mask).slice(0, EXAMPLES).select(columns).to_pylist()
    out = []
    for row in rows:
        safe = {name: _safe(name, value) for name, value in row.items()}
        out.append(next(iter(safe.values())) if len(safe) == 1 else safe)
    return out


def _safe(name: str, value: Any) -> Any:
    if secrets.is_sensitive(name):
        return "***"
    if value is None or isinstance(value, bool | int | float):
        return value
    return secrets.mask(str(value))[:_MAX_TEXT]


def split_rows(
    relation: Relation,
    rules: Sequence[RuleSpec],
    folder: Path,
    rejected_at: dt.datetime,
    *,
    batch_size: int = 50_000,
    memory_limit: str | None = None,
    temp_directory: str | None = None,
    threads: int | None = None,
) -> RuleSplit:
    """Split a relation by its rules in one pass (see the module docstring).

    Args:
        relation: the rows the good targets would load (read once).
        rules: the job's rules.
        folder: where the two spool files are written (the caller removes it).
        rejected_at: the ``_rejected_at`` of every rejected row (the run's start, UTC).
        batch_size: rows per batch read from DuckDB.
        memory_limit: DuckDB ``memory_limit``; a ``unique`` rule's window spills past it.
        temp_directory: where DuckDB spills.
        threads: DuckDB threads.

    Returns:
        The good and rejected rows as re-readable relations, and the counts.

    Raises:
        RuleGateError: rows broke an ``action: fail`` rule (after the whole pass).
        TransformError: a rule names an unknown column.
    """
    query, params = rules_query(rules, relation.schema)
    names = relation.schema.names
    stamp = pa.scalar(rejected_at.astimezone(dt.UTC), pa.timestamp("us", tz="UTC"))
    rejected_schema = relation.schema.append(pa.field(REASON_COLUMN, pa.string())).append(
        pa.field(REJECTED_AT_COLUMN, pa.timestamp("us", tz="UTC")))
    counts = RuleCounts(by_rule={r.key: 0 for r in rules})
    quarantining = [i for i, r in enumerate(rules) if r.action == RuleAction.QUARANTINE]
    good_path, bad_path = folder / "rules_good.arrow", folder / "rules_rejected.arrow"
    config: dict[str, Any] = {}
    if memory_limit:
        config["memory_limit"] = memory_limit
    if temp_directory:
        config["temp_directory"] = temp_directory
    if threads:
        config["threads"] = threads
    import duckdb  # loaded by the first run with rules, not with the definitions

    with duckdb.connect(":memory:", config=config) as con, \
            pa.OSFile(str(good_path), "wb") as good_sink, \
            pa.ipc.new_file(good_sink, relation.schema) as good_out, \
            pa.OSFile(str(bad_path), "wb") as bad_sink, \
            pa.ipc.new_file(bad_sink, rejected_schema) as bad_out:  # fmt: skip
        data = relation.reader()
        con.register("data", data)
        reader = con.sql(query, params=params).to_arrow_reader(batch_size)
        for batch in reader:
            counts.rows_in += batch.num_rows
            flags = [pc.fill_null(batch.column(_flag(i)), False) for i in range(len(rules))]
            for rule, flag in zip(rules, flags, strict=True):
                broken = pc.sum(flag).as_py() or 0
                counts.by_rule[rule.key] += broken
                if broken and rule.action == RuleAction.FAIL:
                    shown = counts.examples.setdefault(rule.key, [])
                    if len(shown) < EXAMPLES:
                        shown += _example(rule, batch, flag)[: EXAMPLES - len(shown)]
            bad = pa.array([False] * batch.num_rows)
            for index in quarantining:
                bad = pc.or_(bad, flags[index])
            rows = batch.select(names)
            kept = rows.filter(pc.invert(bad))
            counts.passed += kept.num_rows
            if kept.num_rows:
                good_out.write_batch(conform(kept, relation.schema))
            if kept.num_rows < batch.num_rows:
                rejected = batch.filter(bad).select([*names, REASON_COLUMN])
                at = pa.array([stamp.as_py()] * rejected.num_rows, stamp.type)
                rejected = conform(pa.RecordBatch.from_arrays(
                    [*rejected.columns, at], names=[*names, REASON_COLUMN, REJECTED_AT_COLUMN],
                ), rejected_schema)
                counts.quarantined += rejected.num_rows
                bad_out.write_batch(rejected)
    broken = [r.key for r in rules if r.action == RuleAction.FAIL and counts.by_rule[r.key]]
    if broken:
        parts = []
        for key in broken:
            rule = next(r for r in rules if r.key == key)
            parts.append(f"rule {key!r} ({rule.describe()}, action fail): "
                         f"{counts.by_rule[key]} of {counts.rows_in} rows break it, "
                         f"e.g. {counts.examples.get(key, [])}")
        raise RuleGateError(
            "load stopped before any target was written: " + "; ".join(parts)
            + " (fix the data, or make the rule action: quarantine)",
            counts, broken,
        )
    return RuleSplit(spool_relation(good_path, f"{relation.name} (rules passed)"),
                     spool_relation(bad_path, f"{relation.name} (rejected)"), counts)
