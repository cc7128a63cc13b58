"""`nexus validate` reports rule problems with file:line, the field and the fix: an unknown
quarantine target, a column no source has (when the sources' columns are known), a check type
that is not a row rule, a quarantine rule without a quarantine target, a name shared with a
check."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from nexus_dagster.cli import main


def project(tmp_path: Path, rules: str, extra: str = "quarantine_target: rejects\n") -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "orders.csv").write_text("id,status,amount\n1,paid,2.5\n")
    folder = tmp_path / "job_specs"
    folder.mkdir(exist_ok=True)
    job = textwrap.dedent("""\
        name: gated
        sources:
          - {name: orders, source_type: file, file_path: data/orders.csv}
        targets:
          - {name: clean, target_type: file, file_path: output/clean.parquet}
          - {name: rejects, target_type: file, file_path: output/rejects.parquet}
        rules:
        """) + textwrap.indent(textwrap.dedent(rules), "  ") + extra
    (folder / "job.yaml").write_text(job)
    return folder


def errors(folder: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    code = main(["validate", str(folder)])
    out = capsys.readouterr()
    lines = [line for line in (out.out + out.err).splitlines() if "error" in line.lower()]
    assert code == (1 if lines else 0)
    return lines


def line_of(folder: Path, text: str) -> int:
    lines = (folder / "job.yaml").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def test_valid_rules_validate_cleanly(tmp_path, capsys):
    folder = project(tmp_path, """\
        - {column: amount, check: range, min: 0}
        - {column: status, check: accepted_values, values: [paid, open], action: fail}
        - {check: expression, expression: 'amount < 1000', name: not_huge}
        """)
    assert errors(folder, capsys) == []


def test_unknown_quarantine_target_is_reported_at_its_line(tmp_path, capsys):
    folder = project(tmp_path, "- {column: amount, check: range, min: 0}\n",
                     "quarantine_target: reject\n")
    (error,) = errors(folder, capsys)
    assert f"job.yaml:{line_of(folder, 'quarantine_target')}" in error
    assert "quarantine_target" in error and "'reject' is not a target" in error
    assert "clean, rejects" in error


def test_unknown_column_in_a_rule_is_reported_when_the_source_columns_are_known(tmp_path,
                                                                                capsys):
    folder = project(tmp_path, """\
        - {column: amout, check: range, min: 0}
        - {check: expression, expression: 'statuss != "x"', name: no_x}
        """)
    first, second = errors(folder, capsys)
    assert f"job.yaml:{line_of(folder, 'amout')}" in first
    assert "rules[0].column" in first and "'amout'" in first and "did you mean 'amount'" in first
    assert f"job.yaml:{line_of(folder, 'statuss')}" in second
    assert "rules[1].expression" in second and "'statuss'" in second


def test_a_check_type_that_is_no_row_rule_is_refused_with_the_known_ones(tmp_path, capsys):
    folder = project(tmp_path, "- {check: row_count, min: 1}\n")
    (error,) = errors(folder, capsys)
    assert f"job.yaml:{line_of(folder, 'row_count')}" in error
    assert "rules[0].check" in error
    assert "not_null" in error and "expression" in error


def test_a_quarantine_rule_needs_a_quarantine_target(tmp_path, capsys):
    folder = project(tmp_path, "- {column: amount, check: range, min: 0}\n", "")
    (error,) = errors(folder, capsys)
    assert f"job.yaml:{line_of(folder, 'amount, check: range')}" in error
    assert "needs quarantine_target" in error


def test_a_rule_named_like_a_check_is_refused(tmp_path, capsys):
    folder = project(tmp_path, "- {column: amount, check: range, min: 0}\n",
                     "quarantine_target: rejects\nchecks:\n  - {column: amount, check: range, "
                     "min: 0, target: clean}\n")
    (error,) = errors(folder, capsys)
    assert "rule name 'amount_range' is also the name of a check" in error
    assert "give the rule a unique name" in error
