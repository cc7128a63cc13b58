"""A SQL stage opens one DuckDB connection for its dry run and first read, reads again with a
fresh one, and leaves nothing behind when its result is never read."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from nexus_dagster.relation import Relation
from nexus_dagster.transforms.chain import apply_transformations
from tests.unit.transforms.helpers import step

STEPS = [step("big", "filter", condition="a > 1"), step("ordered", "sort", columns=["a"])]


def _counted_connects(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    opened: list[str] = []
    connect = duckdb.connect

    def counting(*args: Any, **kwargs: Any) -> duckdb.DuckDBPyConnection:
        opened.append("connect")
        return connect(*args, **kwargs)

    monkeypatch.setattr(duckdb, "connect", counting)
    return opened


def test_dry_run_and_first_read_share_one_connection_and_a_second_read_opens_another(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    opened = _counted_connects(monkeypatch)
    table = pa.table({"a": [3, 1, 2], "b": ["x", "y", "z"]})
    result = apply_transformations({"src": Relation.from_table(table)}, STEPS,
                                   temp_directory=str(tmp_path))
    assert len(opened) == 1  # the dry run (output schema)
    first = result.to_table()
    assert len(opened) == 1  # the first read reused it
    second = result.to_table()
    assert len(opened) == 2
    assert first.to_pydict() == second.to_pydict() == {"a": [2, 3], "b": ["z", "x"]}
    assert list(tmp_path.iterdir()) == []  # every spill folder removed


def test_a_result_never_read_closes_its_connection_and_spill_folder_when_dropped(
    tmp_path: Path,
) -> None:
    table = pa.table({"a": [3, 1, 2]})
    result = apply_transformations({"src": Relation.from_table(table)}, STEPS,
                                   temp_directory=str(tmp_path))
    assert len(list(tmp_path.iterdir())) == 1
    del result
    gc.collect()
    assert list(tmp_path.iterdir()) == []
