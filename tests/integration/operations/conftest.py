"""Helpers for the operations tests: a spec folder over a SQLite source with dated events."""

from __future__ import annotations

import sqlite3
import textwrap
from pathlib import Path

import dagster as dg
import pytest

from nexus_dagster.dagster.factory import build_definitions
from nexus_dagster.spec.loader import load_project


def make_source(db: Path, days: int = 5, per_day: int = 4) -> int:
    """``events(id, kind, amount, ts)``: ``per_day`` rows on each of ``days`` days from
    2024-01-01; returns the row count."""
    db.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(db) as con:
        con.execute("create table events (id integer primary key, kind text, amount real, "
                    "ts timestamp)")
        rows = []
        for day in range(days):
            for i in range(per_day):
                ident = day * per_day + i + 1
                rows.append((ident, "paid" if i % 2 == 0 else "open", float(ident),
                             f"2024-01-0{day + 1} {6 * i + 1:02d}:00:00"))
        con.executemany("insert into events values (?, ?, ?, ?)", rows)
    return len(rows)


def write_spec(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(body))
    return path


def sqlite_rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute(sql).fetchall()


def run(folder: Path, job: str, instance: dg.DagsterInstance, **kwargs):
    defs = build_definitions(load_project(folder))
    return defs.resolve_job_def(job).execute_in_process(
        instance=instance, raise_on_error=False, **kwargs
    )


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst
