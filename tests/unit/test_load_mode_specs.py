"""Spec checks of scd2, sync, delete_where and after_load: misuse is reported with file:line,
the field and the fix; good specs load."""

from __future__ import annotations

from pathlib import Path

import pytest

from nexus_dagster.spec.loader import load_project
from nexus_dagster.spec.models import WriteMode
from tests.unit.test_spec_loader import problems_for, write_specs

SOURCE = """\
name: job
sources:
  - name: src
    source_type: {source_type}
{source}
targets:
  - name: out
    target_type: {target_type}
{target}
"""
DB = "    connection: warehouse\n    table: t\n"
FILE = "    file_path: data/in/*.csv\n"


def spec(source: str = DB, target: str = DB, source_type: str = "database",
         target_type: str = "database") -> str:
    return SOURCE.format(source=source.rstrip("\n"), target=target.rstrip("\n"),
                         source_type=source_type, target_type=target_type)


def test_scd2_sync_delete_where_and_after_load_specs_load(tmp_path: Path) -> None:
    folder = write_specs(tmp_path, spec(
        source=FILE + "    after_load: {move_to: data/done/}\n",
        source_type="file",
        target=DB + "    write_mode: scd2\n    key_columns: [id]\n"
               "    scd2: {compare_columns: [city], valid_from: start_at, close_missing: true}\n"
               "    delete_where: \"start_at < '2020-01-01'\"\n",
    ))
    target = load_project(folder).jobs[0].job.targets[0]
    assert target.write_mode is WriteMode.SCD2
    assert target.scd2_settings().valid_from == "start_at"
    assert target.scd2_settings().close_missing is True


@pytest.mark.parametrize(("target", "expected"), [
    ("    write_mode: scd2\n", "job.yaml:8: targets[0]: write_mode scd2 needs key_columns"),
    ("    write_mode: sync\n", "job.yaml:8: targets[0]: write_mode sync needs key_columns"),
    ("    write_mode: upsert\n    key_columns: [id]\n    scd2: {close_missing: true}\n",
     "scd2 settings are for write_mode scd2, not upsert"),
    ("    write_mode: scd2\n    key_columns: [id]\n    scd2: {compare_columns: [id]}\n",
     "scd2.compare_columns ['id'] are key columns"),
    ("    write_mode: scd2\n    key_columns: [id]\n    scd2: {valid_from: x, valid_to: x}\n",
     "must be three different columns"),
    ("    write_mode: sync\n    key_columns: [id]\n    max_delete_fraction: 2\n",
     "targets[0].max_delete_fraction"),
    ("    delete_where: 'import os'\n", "targets[0].delete_where"),
])
def test_target_misuse_is_reported_with_line_and_fix(tmp_path: Path, target: str,
                                                     expected: str) -> None:
    found = problems_for(tmp_path, spec(target=DB + target))
    assert any(expected in p for p in found), found


def test_sync_on_a_file_target_is_refused(tmp_path: Path) -> None:
    found = problems_for(tmp_path, spec(target="    file_path: out.csv\n    write_mode: sync\n"
                                               "    key_columns: [id]\n", target_type="file"))
    assert any("job.yaml:" in p and "targets[0].write_mode" in p
               and "file targets do not support write_mode 'sync'" in p for p in found), found


def test_delete_where_on_a_file_target_is_refused(tmp_path: Path) -> None:
    found = problems_for(tmp_path, spec(target="    file_path: out.csv\n    delete_where: "
                                               "'id < 3'\n", target_type="file"))
    assert any("targets[0].delete_where" in p and "cannot delete rows" in p
               for p in found), found


@pytest.mark.parametrize("target", [
    "    write_mode: sync\n    key_columns: [id]\n",
    "    write_mode: scd2\n    key_columns: [id]\n    scd2: {close_missing: true}\n",
])
def test_full_extract_modes_refuse_an_incremental_source(tmp_path: Path, target: str) -> None:
    found = problems_for(tmp_path, spec(source=DB + "    incremental_column: updated_at\n",
                                        target=DB + target))
    assert any("job.yaml:" in p and "targets[0].write_mode" in p and "incrementally" in p
               and "remove incremental_column" in p for p in found), found


@pytest.mark.parametrize(("source", "source_type", "expected"), [
    (DB + "    after_load: {move_to: archive/}\n", "database",
     "after_load move_to is not possible on a database source (it can do: delete)"),
    (DB + "    after_load: {delete: true}\n", "database",
     "after_load delete must know which rows this run read"),
    ("    connection: warehouse\n    query: SELECT 1 AS id\n"
     "    after_load: {delete: true, key_columns: [id]}\n", "database",
     "a query's rows cannot be deleted"),
    (FILE + "    after_load: {delete: true, key_columns: [id]}\n", "file",
     "after_load key_columns are for database table sources"),
    (FILE + "    after_load: {delete: true, move_to: done/}\n", "file",
     "give exactly one of delete: true or move_to"),
    ("    topic: t\n    connection_params: {bootstrap_servers: 'localhost:9092'}\n"
     "    after_load: {delete: true}\n", "kafka",
     "after_load delete is not possible on a kafka source"),
])
def test_after_load_misuse_is_reported_with_line_and_fix(
    tmp_path: Path, source: str, source_type: str, expected: str
) -> None:
    found = problems_for(tmp_path, spec(source=source, source_type=source_type))
    assert any("job.yaml:" in p and "sources[0].after_load" in p and expected in p
               for p in found), found
