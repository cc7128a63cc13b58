"""Spec ``rules`` -> Dagster asset checks and materialization metadata of the targets.

Every rule is an asset check on each target that loads the good rows (not on the
``quarantine_target``). Its result comes from the counts of the run's one pass over the rows
(:func:`~nexus_dagster.transforms.rules_sql.split_rows`), not from reading the targets back:
passed (with the counts) when no row broke it, failed with WARN severity when rows were
quarantined, failed with ERROR severity when an ``action: fail`` rule stopped the run.

Example:
    >>> planned = plan(job, {"orders_clean": dg.AssetKey(["warehouse", "orders_clean"])})
    >>> specs = check_specs(planned)  # declared on the job's multi-asset  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg

from nexus_dagster.spec.models import ETLJob
from nexus_dagster.spec.rules import RuleAction, RuleSpec
from nexus_dagster.transforms.rules_sql import RuleCounts

__all__ = ["PlannedRule", "check_specs", "metadata", "plan", "results"]


@dataclass(frozen=True)
class PlannedRule:
    """One rule bound to one target asset that loads the good rows."""

    rule: RuleSpec
    key: dg.AssetKey


def plan(job: ETLJob, target_keys: Mapping[str, dg.AssetKey]) -> list[PlannedRule]:
    """Every rule of the job on every target but the quarantine target."""
    return [PlannedRule(rule, target_keys[target.name])
            for rule in job.rules for target in job.targets
            if target.name != job.quarantine_target]


def _description(rule: RuleSpec) -> str:
    return f"row rule ({rule.action.value}): {rule.describe()}"


def check_specs(planned: Sequence[PlannedRule], partitions_def=None) -> list[dg.AssetCheckSpec]:
    """The asset check specs of the planned rules (declared on the job's multi-asset)."""
    return [dg.AssetCheckSpec(p.rule.key, asset=p.key, description=_description(p.rule),
                              partitions_def=partitions_def)
            for p in planned]


def results(planned: Sequence[PlannedRule], counts: RuleCounts,
            stopped: bool = False) -> list[dg.AssetCheckResult]:  # fmt: skip
    """One check result per planned rule from the run's counts; ``stopped``: an
    ``action: fail`` rule stopped the run (its broken rules are ERROR, the rest as usual)."""
    out = []
    for item in planned:
        rule = item.rule
        broken = counts.by_rule.get(rule.key, 0)
        severity = (dg.AssetCheckSeverity.ERROR if rule.action == RuleAction.FAIL
                    else dg.AssetCheckSeverity.WARN)
        meta: dict[str, Any] = {
            "nexus/rows_checked": counts.rows_in,
            "nexus/rows_broken": broken,
            "nexus/rows_passed": counts.rows_in - broken,
            "nexus/action": rule.action.value,
        }
        if rule.action == RuleAction.QUARANTINE and not stopped:
            meta["nexus/rows_quarantined"] = broken
        if counts.examples.get(rule.key):
            meta["nexus/failing_sample"] = dg.MetadataValue.json(counts.examples[rule.key])
        if stopped:
            meta["nexus/run_stopped"] = True
        out.append(dg.AssetCheckResult(
            asset_key=item.key, check_name=rule.key, passed=broken == 0, severity=severity,
            metadata=meta, description=_description(rule),
        ))  # fmt: skip
    return out


def metadata(counts: RuleCounts) -> dict[str, Any]:
    """Materialization metadata of a target of a job with rules: rows checked, passed,
    quarantined, and the rows breaking each rule."""
    return {
        "nexus/rules_rows_checked": counts.rows_in,
        "nexus/rules_rows_passed": counts.passed,
        "nexus/rows_quarantined": counts.quarantined,
        "nexus/rule_failures": dg.MetadataValue.json(dict(counts.by_rule)),
    }
