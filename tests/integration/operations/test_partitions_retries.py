"""Partitioned jobs load exactly their window and re-runs replace it; retries load once."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from tests.integration.operations.conftest import make_source, run, sqlite_rows, write_spec

PARTITIONED = """\
name: daily_events
partitions: {daily: "2024-01-01"}
sources:
  - {name: events, source_type: database, table: events, incremental_column: ts,
     connection_params: {type: sqlite, database: data/source.db}}
targets:
  - {name: events_out, target_type: database, table: events_out, write_mode: append,
     connection_params: {type: sqlite, database: output/out.db}}
checks:
  - {check: row_count, min: 4, max: 4}
"""

DAY_COUNTS = "select substr(ts, 1, 10), count(*) from events_out group by 1 order by 1"


def test_partition_runs_backfill_and_rerun(tmp_path: Path, instance):
    make_source(tmp_path / "data/source.db", days=5, per_day=4)
    folder = tmp_path / "job_specs"
    write_spec(folder, "daily_events", PARTITIONED)
    out = tmp_path / "output/out.db"

    # a 3-day backfill as one run over a partition range
    tags = {"dagster/asset_partition_range_start": "2024-01-01",
            "dagster/asset_partition_range_end": "2024-01-03"}
    result = run(folder, "daily_events", instance, tags=tags)
    assert result.success
    assert sqlite_rows(out, DAY_COUNTS) == [("2024-01-01", 4), ("2024-01-02", 4),
                                            ("2024-01-03", 4)]

    # re-running one partition replaces its window: same row count, same rows
    before = sqlite_rows(out, "select * from events_out order by id")
    result = run(folder, "daily_events", instance, partition_key="2024-01-02")
    assert result.success
    assert sqlite_rows(out, "select * from events_out order by id") == before
    key = dg.AssetKey(["database", "out", "events_out"])
    meta = instance.get_latest_materialization_event(key).asset_materialization.metadata
    assert meta["nexus/rows_replaced"].value == 4
    assert meta["nexus/partition_window"].value.startswith("[2024-01-02T00:00:00+00:00")
    check = instance.get_latest_asset_check_evaluation_record(
        dg.AssetCheckKey(key, "row_count")).event.dagster_event.event_specific_data
    assert check.passed  # the check sees the partition's window only

    # one more partition, run on its own, adds exactly its day
    assert run(folder, "daily_events", instance, partition_key="2024-01-05").success
    assert sqlite_rows(out, DAY_COUNTS)[-1] == ("2024-01-05", 4)
    assert sqlite_rows(out, "select count(*) from events_out") == [(16,)]
    assert instance.get_materialized_partitions(key) == {
        "2024-01-01", "2024-01-02", "2024-01-03", "2024-01-05"}


FLAKY = """\
name: flaky
retries: {{max_retries: 2, delay_seconds: 0.2, backoff: linear}}
sources:
  - {{name: events, source_type: database, table: events, batch_size: 5,
     connection_params: {{type: sqlite, database: data/source.db}}}}
transformations:
  - name: flaky_stream
    transformation_type: custom_code
    config: {{per_batch: true}}
    custom_code: |
      import pathlib
      marker = pathlib.Path({marker!r})
      if int(df["id"].max()) > 10 and not marker.exists():
          marker.write_text("failed once")
          raise ConnectionError("connection reset by peer (transient)")
targets:
  - {{name: events_out, target_type: database, table: events_out, write_mode: append,
     connection_params: {{type: sqlite, database: output/out.db}}}}
"""


def test_transient_failure_is_retried_and_loads_once(tmp_path: Path, instance):
    total = make_source(tmp_path / "data/source.db", days=5, per_day=4)
    folder = tmp_path / "job_specs"
    marker = tmp_path / "failed-once"
    write_spec(folder, "flaky", FLAKY.format(marker=str(marker)))
    result = run(folder, "flaky", instance)
    assert result.success and marker.exists()
    up_for_retry = dg.DagsterEventType.STEP_UP_FOR_RETRY
    retries = [e for e in result.all_events if e.event_type == up_for_retry]
    assert len(retries) == 1  # attempt 1 failed mid-stream, attempt 2 succeeded
    out = tmp_path / "output/out.db"
    assert sqlite_rows(out, "select count(*), count(distinct id) from events_out") == [
        (total, total)]


DATE_PARTITIONED = """\
name: daily_dates
partitions: {daily: "2024-01-01"}
sources:
  - {name: events, source_type: database, table: events, incremental_column: day,
     connection_params: {type: sqlite, database: data/dates.db}}
targets:
  - {name: events_out, target_type: database, table: events_out, write_mode: append,
     connection_params: {type: sqlite, database: output/out.db}}
"""


def test_a_daily_partition_of_a_date_column_loads_and_replaces_its_day(tmp_path: Path,
                                                                       instance):
    import sqlite3

    (tmp_path / "data").mkdir()
    with sqlite3.connect(tmp_path / "data/dates.db") as db:
        db.execute("create table events (id integer primary key, day date)")
        db.executemany("insert into events values (?, ?)",
                       [(i, f"2024-01-0{1 + i % 3}") for i in range(9)])
    folder = tmp_path / "job_specs"
    write_spec(folder, "daily_dates", DATE_PARTITIONED)
    out = tmp_path / "output/out.db"
    for _ in range(2):  # the re-run replaces the day's window instead of appending it again
        assert run(folder, "daily_dates", instance, partition_key="2024-01-02").success
        assert sqlite_rows(out, "select id, day from events_out order by id") == [
            (1, "2024-01-02"), (4, "2024-01-02"), (7, "2024-01-02")]
