"""PostgreSQL numeric columns written to JSON/JSONL files by a job: exact JSON numbers with the
column's digits, not strings and not floats."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from nexus_dagster.connectors.database import DatabaseConnector
from nexus_dagster.run import execute
from nexus_dagster.spec.loader import load_project
from tests.integration.database.helpers import execute as sql
from tests.support import write_job

pytestmark = pytest.mark.postgres


def _export(tmp_path: Path, pg: DatabaseConnector, path: Path) -> None:
    job = {
        "name": "numeric_to_json",
        "sources": [{"name": "src", "source_type": "database",
                     "connection_params": dict(pg.params), "table": "ledger"}],
        "targets": [{"name": "out", "target_type": "file", "file_path": str(path)}],
    }
    project = load_project(write_job(tmp_path, job))
    list(execute(project.jobs[0], project.connections, run_id="r1"))


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_pg_numeric_columns_are_written_as_exact_json_numbers(
    pg: DatabaseConnector, tmp_path: Path, fmt: str
) -> None:
    sql(pg,
        "CREATE TABLE ledger (id int, amount numeric(12,4), big numeric(21,2))",
        "INSERT INTO ledger VALUES (1, 900.1, 12345678901234567.89), (2, -0.0001, 0), "
        "(3, NULL, -0.10)")
    out = tmp_path / f"ledger.{fmt}"
    _export(tmp_path, pg, out)
    text = out.read_text()
    assert '"amount": 900.1000, "big": 12345678901234567.89' in text
    assert '"amount": -0.0001, "big": 0.00' in text
    assert '"amount": null, "big": -0.10' in text
    if fmt == "jsonl":
        rows = [json.loads(line, parse_float=Decimal) for line in text.splitlines()]
    else:
        rows = json.loads(text, parse_float=Decimal)
    rows.sort(key=lambda r: r["id"])
    assert [(r["amount"], r["big"]) for r in rows] == [
        (Decimal("900.1000"), Decimal("12345678901234567.89")),
        (Decimal("-0.0001"), Decimal("0.00")),
        (None, Decimal("-0.10")),
    ]
    assert [str(r["big"]) for r in rows] == ["12345678901234567.89", "0.00", "-0.10"]
