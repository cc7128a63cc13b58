"""Fixed decimals inferred from CSV/JSONL files reach database targets as numeric(p, s) columns
with exact values, and DuckDB steps over them keep sums exact (PostgreSQL, MariaDB, SQLite)."""

from __future__ import annotations

import warnings
from decimal import Decimal
from pathlib import Path

import pytest

from nexus_dagster.connectors.database import DatabaseConnector
from nexus_dagster.run import execute
from nexus_dagster.spec.loader import load_project
from tests.integration.database.helpers import fetch
from tests.support import write_job

PRICES = "id,price,big\n1,12.50,12345678901234567.891\n2,-0.05,0.000\n3,,-7.100\n"
BACKENDS = [
    pytest.param("pg", id="postgresql", marks=pytest.mark.postgres),
    pytest.param("maria", id="mariadb", marks=pytest.mark.mariadb),
]


def _run(tmp_path: Path, db: DatabaseConnector, source: dict, steps: list[dict]) -> None:
    job = {
        "name": "fixed_decimals",
        "sources": [{"name": "src", "source_type": "file", **source}],
        "transformations": steps,
        "targets": [{"name": "out", "target_type": "database",
                     "connection_params": dict(db.params), "table": "prices",
                     "write_mode": "overwrite"}],
    }
    project = load_project(write_job(tmp_path, job))
    list(execute(project.jobs[0], project.connections, run_id="r1"))


def _columns(db: DatabaseConnector) -> dict[str, tuple]:
    rows = fetch(db, "SELECT column_name, data_type, numeric_precision, numeric_scale "
                     "FROM information_schema.columns WHERE table_name = 'prices'")
    return {str(name).lower(): (str(kind).lower(), p, s) for name, kind, p, s in rows}


@pytest.mark.parametrize("backend", BACKENDS)
def test_csv_fixed_decimals_create_numeric_columns_with_exact_values(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    db: DatabaseConnector = request.getfixturevalue(backend)
    (tmp_path / "prices.csv").write_text(PRICES)
    _run(tmp_path, db, {"file_path": str(tmp_path / "prices.csv")}, [])
    kind = "numeric" if backend == "pg" else "decimal"
    columns = _columns(db)
    assert columns["price"] == (kind, 18, 2)
    assert columns["big"] == (kind, 23, 3)  # 17 integer digits + 3 + headroom 3
    assert fetch(db, "SELECT id, price, big FROM prices ORDER BY id") == [
        (1, Decimal("12.50"), Decimal("12345678901234567.891")),
        (2, Decimal("-0.05"), Decimal("0.000")),
        (3, None, Decimal("-7.100")),
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_jsonl_fixed_decimals_create_numeric_columns_with_exact_values(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    db: DatabaseConnector = request.getfixturevalue(backend)
    (tmp_path / "prices.jsonl").write_text(
        '{"id": 1, "price": 19.99}\n{"id": 2, "price": 1234567890123456.10}\n'
    )
    _run(tmp_path, db, {"file_path": str(tmp_path / "prices.jsonl")}, [])
    assert _columns(db)["price"][1:] == (21, 2)  # 16 integer digits + 2 + headroom 3
    assert fetch(db, "SELECT id, price FROM prices ORDER BY id") == [
        (1, Decimal("19.99")), (2, Decimal("1234567890123456.10"))
    ]


@pytest.mark.postgres
def test_duckdb_steps_keep_decimal_sums_exact_and_mix_with_floats(
    pg: DatabaseConnector, tmp_path: Path
) -> None:
    # rate: 1.5 (group a) and 1.25 (group b), fraction digits differ: a float column
    rows = "".join(
        f"{i},{'a' if i % 2 else 'b'},0.10,{'1.5' if i % 2 else '1.25'}\n" for i in range(1, 1001)
    )
    (tmp_path / "sales.csv").write_text("id,grp,amount,rate\n" + rows)
    steps = [
        {"name": "calc", "transformation_type": "map",
         "config": {"mappings": {"scaled": "amount * rate", "plus": "amount + 1"}}},
        {"name": "agg", "transformation_type": "aggregate",
         "config": {"group_by": ["grp"],
                    "aggregations": {"total": ["amount", "sum"], "avg_amount": ["amount", "mean"],
                                     "scaled_total": ["scaled", "sum"],
                                     "plus_total": ["plus", "sum"]}}},
    ]
    _run(tmp_path, pg, {"file_path": str(tmp_path / "sales.csv")}, steps)
    columns = _columns(pg)
    assert columns["total"][0] == "numeric"
    assert columns["total"][2] == 2
    assert columns["plus_total"][0] == "numeric"
    assert columns["avg_amount"][0] == "double precision"  # a mean is a float (pandas, DuckDB)
    assert columns["scaled_total"][0] == "double precision"  # decimal * float is a float
    assert fetch(pg, "SELECT grp, total, plus_total FROM prices ORDER BY grp") == [
        ("a", Decimal("50.00"), Decimal("550.00")),
        ("b", Decimal("50.00"), Decimal("550.00")),
    ]
    avg, scaled = fetch(pg, "SELECT avg_amount, scaled_total FROM prices WHERE grp = 'a'")[0]
    assert avg == pytest.approx(0.1)
    assert scaled == pytest.approx(75.0)


def test_sqlite_target_gets_numeric_columns_without_warnings(
    lite: DatabaseConnector, tmp_path: Path
) -> None:
    (tmp_path / "prices.csv").write_text(PRICES)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _run(tmp_path, lite, {"file_path": str(tmp_path / "prices.csv")}, [])
    ddl = fetch(lite, "SELECT sql FROM sqlite_master WHERE name = 'prices'")[0][0]
    assert "price NUMERIC(18, 2)" in ddl
    assert fetch(lite, "SELECT id, price FROM prices ORDER BY id") == [
        (1, 12.5), (2, -0.05), (3, None)
    ]
