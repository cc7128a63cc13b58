"""The benchmark's table (tests/benchmarks/run.py): each row's ratio is against its own
baseline row, start-up rows show seconds above theirs, targets are judged, and ``--readme``
replaces only what is between the bench markers."""

from __future__ import annotations

import pytest

from tests.benchmarks import run


def rows() -> list[run.Row]:
    raw = run.Row("raw pipe of the SELECT", 2.0, 1000, 60, moved="1,000 kept rows",
                  tag="raw SELECT pipe", load=1.0)
    ours = run.Row("nexus pushdown", 2.5, 1000, 250, moved=raw.moved, baseline=raw, goal=1.2,
                   load=1.5)
    bare = run.Row("import dagster", 1.0, 0, 64, moved="none", tag="import dagster", load=0.5)
    start = run.Row("10-row job", 2.5, 10, 190, "whole command", moved="10 rows",
                    baseline=bare, delta=True, goal=2.0, load=0.5)
    return [raw, ours, bare, start]


def test_each_row_is_compared_with_its_own_baseline_and_judged_against_its_target():
    raw, ours, _bare, start = rows()
    assert raw.versus() == "baseline (raw SELECT pipe)" and raw.verdict() == ""
    assert ours.versus() == "1.25x raw SELECT pipe"
    assert ours.verdict() == "<= 1.2x: MISSED"
    assert start.versus() == "+1.50 s over import dagster"
    assert start.verdict() == "<= +2.0 s: met"


def test_table_lists_rows_moved_baseline_target_and_load():
    text = run.table(rows())
    lines = text.splitlines()
    assert lines[0].startswith("| tool | rows moved | wall s | rows/s | peak RSS MB | vs baseline")
    assert lines[3] == ("| nexus pushdown | 1,000 kept rows | 2.50 | 400 | 250 | "
                        "1.25x raw SELECT pipe | <= 1.2x: MISSED | 1.5 |  |")
    assert lines[4].split(" | ")[3] == ""  # no rows moved: no rows/s


def test_readme_block_between_the_markers_is_replaced_and_the_rest_kept(tmp_path, monkeypatch):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- bench:start -->\nold table\n<!-- bench:end -->\noutro\n")
    monkeypatch.setattr(run, "README", readme)
    run.write_readme("new table")
    assert readme.read_text() == (
        "intro\n<!-- bench:start -->\nnew table\n<!-- bench:end -->\noutro\n"
    )


def test_readme_without_markers_is_refused(tmp_path, monkeypatch):
    readme = tmp_path / "README.md"
    readme.write_text("no markers here\n")
    monkeypatch.setattr(run, "README", readme)
    with pytest.raises(SystemExit, match="bench:start"):
        run.write_readme("table")
    assert readme.read_text() == "no markers here\n"


def test_the_repository_readme_has_one_bench_block():
    text = run.README.read_text()
    assert text.count(run.MARKERS[0]) == 1 and text.count(run.MARKERS[1]) == 1
    assert text.index(run.MARKERS[0]) < text.index(run.MARKERS[1])
