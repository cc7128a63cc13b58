"""Spec checks become Dagster asset checks; materializations carry lineage and load counts.
Everything is read back from the Dagster instance."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from tests.integration.operations.conftest import make_source, run, sqlite_rows, write_spec
from tests.support import last_endpoint_metadata

SPEC = """\
name: events_ops
sources:
  - name: events
    source_type: database
    connection_params: {type: sqlite, database: data/source.db}
    table: events
    incremental_column: ts
    incremental_value: "2024-01-01 00:00:00"
transformations:
  - name: derive
    transformation_type: map
    config: {mappings: {amount2: 'amount * 2', label: 'kind + "-x"', one: '1'}}
targets:
  - name: events_out
    target_type: database
    connection_params: {type: sqlite, database: output/out.db}
    table: events_out
    write_mode: upsert
    key_columns: [id]
checks:
  - {column: id, check: unique}
  - {column: kind, check: not_null}
  - {column: kind, check: accepted_values, values: [paid], severity: warn}
  - {column: amount, check: range, min: 0, max: 100}
  - {check: row_count, min: 1, max: 1000}
  - {column: label, check: regex, pattern: '(paid|open)-x'}
  - {column: ts, check: freshness, max_age: 1d}
  - {name: no_big, check: sql, sql: 'SELECT id, amount FROM data WHERE amount > 15'}
  - {name: doubled, check: expression, expression: 'amount > 0 and amount2 == amount * 2'}
"""

#: assets are keyed by where the data lives: <type>/<database>/<table> for inline params
TARGET = dg.AssetKey(["database", "out", "events_out"])
SOURCE = dg.AssetKey(["database", "source", "events"])


def _evaluation(instance: dg.DagsterInstance, name: str):
    record = instance.get_latest_asset_check_evaluation_record(dg.AssetCheckKey(TARGET, name))
    assert record is not None, name
    return record.event.dagster_event.event_specific_data


def test_checks_results_and_metadata_in_instance(tmp_path: Path, instance):
    total = make_source(tmp_path / "data/source.db")
    folder = tmp_path / "job_specs"
    write_spec(folder, "events_ops", SPEC)
    result = run(folder, "events_ops", instance)
    assert result.success  # no blocking check

    passed = {n: _evaluation(instance, n).passed for n in (
        "id_unique", "kind_not_null", "kind_accepted_values", "amount_range", "row_count",
        "label_regex", "ts_freshness", "no_big", "doubled")}
    assert passed == {"id_unique": True, "kind_not_null": True, "kind_accepted_values": False,
                      "amount_range": True, "row_count": True, "label_regex": True,
                      "ts_freshness": False, "no_big": False, "doubled": True}
    accepted = _evaluation(instance, "kind_accepted_values")
    assert accepted.severity == dg.AssetCheckSeverity.WARN
    assert accepted.metadata["nexus/failing_rows"].value == total // 2
    big = _evaluation(instance, "no_big")
    assert big.metadata["nexus/failing_rows"].value == total - 15
    sample = big.metadata["nexus/failing_sample"].data
    assert len(sample) == 5 and set(sample[0]) == {"id", "amount"}
    assert _evaluation(instance, "row_count").metadata["dagster/row_count"].value == total
    assert "nexus/age_seconds" in _evaluation(instance, "ts_freshness").metadata

    target = instance.get_latest_materialization_event(TARGET).asset_materialization.metadata
    assert target["dagster/row_count"].value == total
    assert target["nexus/rows_inserted"].value == total
    lineage = target["dagster/column_lineage"].value.deps_by_column
    assert {d.column_name for d in lineage["amount2"]} == {"amount"}
    assert {d.column_name for d in lineage["label"]} == {"kind"}
    assert {d.asset_key for d in lineage["id"]} == {SOURCE}
    assert "one" not in lineage  # a constant depends on nothing
    source = last_endpoint_metadata(instance, "events_ops", "events")
    assert source["nexus/cursor_after"].value == "2024-01-05T19:00:00"
    assert "nexus/cursor_before" not in source  # first run: no stored cursor

    # second run: one changed row and one new row past the cursor, one untouched row re-read
    import sqlite3

    with sqlite3.connect(tmp_path / "data/source.db") as con:
        con.execute("update events set amount = 1.5, ts = '2024-01-06 00:00:00' where id = 1")
        con.execute("insert into events values (100, 'paid', 3.0, '2024-01-06 00:00:00')")
        con.execute("update events set ts = '2024-01-06 00:00:00' where id = 2")
    with sqlite3.connect(tmp_path / "output/out.db") as con:  # the same change already there
        con.execute("update events_out set ts = '2024-01-06 00:00:00.000000' where id = 2")
    assert run(folder, "events_ops", instance).success
    target = instance.get_latest_materialization_event(TARGET).asset_materialization.metadata
    assert (target["nexus/rows_inserted"].value, target["nexus/rows_updated"].value,
            target["nexus/rows_unchanged"].value) == (1, 1, 1)
    source = last_endpoint_metadata(instance, "events_ops", "events")
    assert source["nexus/cursor_before"].value == "2024-01-05T19:00:00"
    assert source["nexus/cursor_after"].value == "2024-01-06T00:00:00"
    out = tmp_path / "output/out.db"
    assert sqlite_rows(out, "select count(*) from events_out") == [(total + 1,)]


BLOCKING = """\
name: blocked
sources:
  - {name: events, source_type: database, table: events,
     connection_params: {type: sqlite, database: data/source.db}}
targets:
  - {name: out, target_type: database, table: out,
     connection_params: {type: sqlite, database: output/out.db}}
checks:
  - {column: amount, check: range, max: 3, blocking: true}
"""


def test_blocking_check_fails_the_run(tmp_path: Path, instance):
    make_source(tmp_path / "data/source.db", days=1)
    folder = tmp_path / "job_specs"
    write_spec(folder, "blocked", BLOCKING)
    result = run(folder, "blocked", instance)
    assert not result.success
    key = dg.AssetCheckKey(dg.AssetKey(["database", "out", "out"]), "amount_range")
    evaluation = instance.get_latest_asset_check_evaluation_record(key).event.dagster_event
    assert evaluation.event_specific_data.passed is False
    assert evaluation.event_specific_data.metadata["nexus/failing_rows"].value == 1
