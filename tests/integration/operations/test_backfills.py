"""Backfills the Dagster way: a partitioned job whose targets replace a window in one
transaction declares a single-run backfill policy, so a range of partitions is ONE run over ONE
window. `dagster asset materialize --partition-range` over 30 days, then the same range again
in-process (a ranged run, as a UI backfill launches it), leaves the target equal to the
source."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import dagster as dg

from nexus_dagster.dagster.factory import build_definitions
from nexus_dagster.spec.loader import load_project
from tests.integration.operations.conftest import sqlite_rows, write_spec

DAYS, PER_DAY = 30, 3
SPEC = """\
name: daily
partitions: {daily: "2024-01-01"}
sources:
  - {name: events, source_type: database, table: events, incremental_column: ts,
     connection_params: {type: sqlite, database: data/source.db}}
targets:
  - {name: out, target_type: database, table: out, write_mode: append,
     connection_params: {type: sqlite, database: output/out.db}}
"""
FIRST, LAST = "2024-01-01", "2024-01-30"


def _source(db: Path) -> None:
    db.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(db) as con:
        con.execute("create table events (id integer primary key, amount real, ts timestamp)")
        con.executemany("insert into events values (?, ?, ?)", [
            (day * PER_DAY + i + 1, float(i), f"2024-01-{day + 1:02d} {8 * i:02d}:00:00")
            for day in range(DAYS) for i in range(PER_DAY)])
        # a row outside the range: a backfill of January 1-30 leaves it alone
        con.execute("insert into events values (1000, 1.0, '2024-01-31 12:00:00')")


def _same(tmp_path: Path) -> None:
    source = sqlite_rows(tmp_path / "data/source.db", "select id, amount, datetime(ts) "
                         f"from events where ts < '{LAST} 24' order by id")
    target = sqlite_rows(tmp_path / "output/out.db",
                         "select id, amount, datetime(ts) from out order by id")
    assert len(source) == DAYS * PER_DAY and target == source


def test_thirty_partition_backfill_as_one_run_leaves_target_equal_to_source(tmp_path: Path):
    _source(tmp_path / "data/source.db")
    folder = tmp_path / "job_specs"
    write_spec(folder, "daily", SPEC)
    defs = build_definitions(load_project(folder))
    etl = next(a for a in defs.assets if getattr(a, "op", None) and a.op.name == "daily__etl")
    assert etl.backfill_policy == dg.BackfillPolicy.single_run()

    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home), "NEXUS_JOB_SPECS": str(folder)}
    target_key = next(k for k in etl.keys if k.path[-1] == "out").to_user_string()
    done = subprocess.run(
        [sys.executable, "-m", "dagster", "asset", "materialize", "-m",
         "nexus_dagster.definitions", "--select", target_key, "--partition-range",
         f"{FIRST}...{LAST}"], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    _same(tmp_path)

    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_run_records()
        assert len(runs) == 1  # thirty partitions, one run
        # again, in-process, as a ranged run: the window is replaced, not appended to
        result = defs.resolve_job_def("daily").execute_in_process(instance=instance, tags={
            "dagster/asset_partition_range_start": FIRST,
            "dagster/asset_partition_range_end": LAST})
        assert result.success
        loaded = result.get_asset_materialization_events()[0].materialization.metadata
        assert loaded["nexus/rows_replaced"].value == DAYS * PER_DAY
    _same(tmp_path)
