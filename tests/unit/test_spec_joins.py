"""Joins, step inputs and target inputs are checked when the spec loads: every problem has the
file:line of the field, the value and the valid names."""

from __future__ import annotations

import textwrap
from pathlib import Path

from nexus_dagster.spec.loader import collect

CONNECTIONS = "warehouse:\n  type: sqlite\n  database: output/w.db\n"

JOB = """\
name: joins
sources:
  - name: orders
    source_type: file
    file_path: data/orders.csv
  - name: customers
    source_type: file
    file_path: data/customers.csv
transformations:
{steps}
targets:
  - name: out
    target_type: database
    connection: warehouse
    table: out
{target}
"""


def problems(tmp_path: Path, steps: str, target: str = "") -> list[str]:
    folder = tmp_path / "job_specs"
    folder.mkdir()
    (folder / "connections.yaml").write_text(CONNECTIONS)
    text = JOB.format(steps=textwrap.indent(textwrap.dedent(steps).strip("\n"), "  "),
                      target=textwrap.indent(target, "    ") if target else "")
    (folder / "job.yaml").write_text(text)
    _, found = collect([folder])
    return [str(p) for p in found]


def line_of(tmp_path: Path, text: str) -> int:
    lines = (tmp_path / "job_specs" / "job.yaml").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def test_a_valid_spec_with_every_new_join_form_loads(tmp_path: Path) -> None:
    found = problems(tmp_path, """\
        - name: totals
          transformation_type: aggregate
          input: orders
          config: {group_by: [o_custkey], aggregations: {total: [amount, sum]}}
        - name: named
          transformation_type: join
          config: {left: totals, right: customers, left_on: o_custkey, right_on: c_custkey}
        - name: idle
          transformation_type: join
          config: {left: customers, right: orders, left_on: c_custkey, right_on: o_custkey,
                   how: anti}
        - name: pairs
          transformation_type: join
          config: {left: idle, right: named, how: cross}
        """, "input: named\n")
    assert found == []


def test_unknown_join_input_names_line_and_valid_names(tmp_path: Path) -> None:
    (found,) = problems(tmp_path, """\
        - name: j
          transformation_type: join
          config:
            left: orders
            right: custmers
            on: id
        """)
    assert f"job.yaml:{line_of(tmp_path, 'right: custmers')}" in found
    assert "join right 'custmers' is not a source or an earlier step" in found
    assert "use one of: orders, customers" in found


def test_a_later_step_as_join_input_is_refused(tmp_path: Path) -> None:
    (found,) = problems(tmp_path, """\
        - name: j
          transformation_type: join
          config: {left: orders, right: totals, on: id}
        - name: totals
          transformation_type: aggregate
          config: {group_by: id, aggregations: {n: [id, count]}}
        """)
    assert f"job.yaml:{line_of(tmp_path, 'right: totals')}" in found
    assert "join right 'totals' is a later step (it runs after 'j')" in found


def test_unknown_step_input_is_refused(tmp_path: Path) -> None:
    (found,) = problems(tmp_path, """\
        - name: f
          transformation_type: filter
          input: order
          config: {condition: 'amount > 1'}
        """)
    assert f"job.yaml:{line_of(tmp_path, 'input: order')}" in found
    assert "input 'order' is not a source or an earlier step" in found


def test_a_step_before_custom_code_is_not_readable_after_it(tmp_path: Path) -> None:
    (found,) = problems(tmp_path, """\
        - name: first
          transformation_type: filter
          config: {condition: 'amount > 1'}
        - name: code
          transformation_type: custom_code
          custom_code: 'df = df'
        - name: j
          transformation_type: join
          config: {left: first, right: customers, on: id}
        """)
    assert f"job.yaml:{line_of(tmp_path, 'left: first')}" in found
    assert "runs before custom_code step 'code'" in found


def test_key_count_mismatch_is_refused_at_its_line(tmp_path: Path) -> None:
    (found,) = problems(tmp_path, """\
        - name: j
          transformation_type: join
          config: {left: orders, right: customers, left_on: [a, b], right_on: [c]}
        """)
    assert f"job.yaml:{line_of(tmp_path, 'left_on: [a, b]')}" in found
    assert "left_on has 2 columns and right_on has 1" in found


def test_keys_on_a_cross_join_are_refused(tmp_path: Path) -> None:
    (found,) = problems(tmp_path, """\
        - name: j
          transformation_type: join
          config: {left: orders, right: customers, on: id, how: cross}
        """)
    assert f"job.yaml:{line_of(tmp_path, 'how: cross')}" in found
    assert "takes no keys: remove on" in found


def test_a_join_without_keys_is_refused(tmp_path: Path) -> None:
    (found,) = problems(tmp_path, """\
        - name: j
          transformation_type: join
          config: {left: orders, right: customers, left_on: a}
        """)
    assert "an inner join needs keys: on: [column]" in found


def test_unknown_target_input_lists_sources_and_steps(tmp_path: Path) -> None:
    (found,) = problems(tmp_path, """\
        - name: paid
          transformation_type: filter
          config: {condition: 'amount > 1'}
        """, "input: payd\n")
    assert f"job.yaml:{line_of(tmp_path, 'input: payd')}" in found
    assert "target 'out': input 'payd' is not a source or a step" in found
    assert "use one of: orders, customers, paid" in found


def test_input_on_a_join_is_refused(tmp_path: Path) -> None:
    (found,) = problems(tmp_path, """\
        - name: j
          transformation_type: join
          input: orders
          config: {left: orders, right: customers, on: id}
        """)
    assert "input is not for join steps: it reads left and right" in found
