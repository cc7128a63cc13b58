"""`nexus validate` checks the columns steps and target keys name against the sources' known
columns (local CSV/Parquet files; database tables with --connect): file:line, the column and a
"did you mean"; columns flow through map, aggregate and join; unknown schemas are not
guessed."""

from __future__ import annotations

import sqlite3
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nexus_dagster.cli import main

CONNECTIONS = "shop:\n  type: sqlite\n  database: data/shop.db\n"


def project(tmp_path: Path, steps: str, target: str = "") -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "orders.csv").write_text("order_id,customer_id,amount\n1,7,2.5\n")
    pq.write_table(pa.table({"c_id": [7], "name": ["Ann"]}), tmp_path / "data" / "cust.parquet")
    folder = tmp_path / "job_specs"
    folder.mkdir(exist_ok=True)
    (folder / "connections.yaml").write_text(CONNECTIONS)
    job = textwrap.dedent("""\
        name: checked
        sources:
          - {name: orders, source_type: file, file_path: data/orders.csv}
          - {name: customers, source_type: file, file_path: data/cust.parquet}
        transformations:
        """) + textwrap.indent(textwrap.dedent(steps), "  ") + textwrap.dedent("""\
        targets:
          - {name: out, target_type: file, file_path: output/out.parquet""") + target + "}\n"
    (folder / "job.yaml").write_text(job)
    return folder


def errors(folder: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> list[str]:
    code = main(["validate", str(folder), *flags])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("error:")]
    assert code == (1 if lines else 0)
    return lines


def line_of(folder: Path, text: str) -> int:
    lines = (folder / "job.yaml").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def test_a_misspelled_column_in_a_filter_is_reported_with_did_you_mean(tmp_path, capsys):
    folder = project(tmp_path, """\
        - name: paid
          transformation_type: filter
          input: orders
          config: {condition: amout > 1}
        """)
    (error,) = errors(folder, capsys)
    assert f"job.yaml:{line_of(folder, 'amout > 1')}" in error
    assert "transformation 'paid': unknown column 'amout'" in error
    assert "did you mean 'amount'? columns here: order_id, customer_id, amount" in error


def test_columns_flow_through_map_aggregate_and_join(tmp_path, capsys):
    folder = project(tmp_path, """\
        - name: priced
          transformation_type: map
          input: orders
          config: {mappings: {net: amount * 0.8, gross: net * 1.2}}
        - name: totals
          transformation_type: aggregate
          config: {group_by: [customer_id], aggregations: {total: [gross, sum]}}
        - name: late
          transformation_type: filter
          config: {condition: amount > 1}
        - name: named
          transformation_type: join
          config: {left: totals, right: customers, left_on: customer_id, right_on: c_idd}
        """, ", key_columns: [custmer_id]")
    found = errors(folder, capsys)
    assert len(found) == 3, found
    # the aggregate dropped amount
    assert "transformation 'late': unknown column 'amount'" in found[0]
    assert "columns here: customer_id, total" in found[0]
    # a join key is checked against its own side
    assert f"job.yaml:{line_of(folder, 'right_on: c_idd')}" in found[1]
    assert "unknown column 'c_idd' (fix: did you mean 'c_id'? columns here: c_id, name)" in found[1]
    assert "target 'out': unknown column 'custmer_id'" in found[2]
    assert "did you mean 'customer_id'?" in found[2]


def test_a_valid_chain_reports_nothing(tmp_path, capsys):
    folder = project(tmp_path, """\
        - name: totals
          transformation_type: aggregate
          input: orders
          config: {group_by: [customer_id], aggregations: {total: [amount, sum]}}
        - name: named
          transformation_type: join
          config: {left: totals, right: customers, left_on: customer_id, right_on: c_id}
        - name: big
          transformation_type: filter
          config: {condition: 'total > 1 and name != "x"'}
        """)
    assert errors(folder, capsys) == []


def test_nothing_is_guessed_after_a_pivot_or_custom_code(tmp_path, capsys):
    folder = project(tmp_path, """\
        - name: wide
          transformation_type: pivot
          input: orders
          config: {index: customer_id, columns: order_id, values: amount}
        - name: any
          transformation_type: filter
          config: {condition: whatever > 1}
        """)
    assert errors(folder, capsys) == []


def test_database_columns_are_read_only_with_connect(tmp_path, capsys, monkeypatch):
    folder = project(tmp_path, """\
        - name: rich
          transformation_type: filter
          input: accounts
          config: {condition: balanse > 100}
        """)
    with sqlite3.connect(tmp_path / "data" / "shop.db") as con:
        con.execute("create table accounts (id integer, balance real)")
    text = (folder / "job.yaml").read_text().replace(
        "sources:\n", "sources:\n  - {name: accounts, source_type: database, connection: shop, "
        "table: accounts}\n")
    (folder / "job.yaml").write_text(text)
    monkeypatch.delenv("NEXUS_VALIDATE_CONNECT", raising=False)
    assert errors(folder, capsys) == []
    (error,) = errors(folder, capsys, "--connect")
    assert "unknown column 'balanse' (fix: did you mean 'balance'? columns here: id, balance)" \
        in error
    monkeypatch.setenv("NEXUS_VALIDATE_CONNECT", "1")
    assert len(errors(folder, capsys)) == 1
