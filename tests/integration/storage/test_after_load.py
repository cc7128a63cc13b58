"""after_load on file sources (local disk and every object store / server): the files read are
deleted or moved only after every target committed, never when a target failed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import dagster as dg
import pytest

from nexus_dagster.errors import LoadError
from nexus_dagster.run import execute
from nexus_dagster.run.events import SourceExtracted
from nexus_dagster.spec.loader import load_project
from tests.support import Store, endpoint_events, run_job, write_job

ROWS_A = b"id,city\n1,Oslo\n2,Kyoto\n"
ROWS_B = b"id,city\n3,Lima\n"


def _job(source: dict, after_load: dict, *targets: dict) -> dict:
    return {"name": "archive_job", "sources": [{"name": "raw", **source,
                                                "after_load": after_load}],
            "targets": list(targets)}


def _run(folder: Path) -> dict[str, int] | None:
    """Run the job with the run engine alone (no Dagster); what after_load reported."""
    project = load_project(folder)
    events = list(execute(project.jobs[0], project.connections, run_id="r1"))
    return next(e.after_load for e in events if isinstance(e, SourceExtracted))


def _sqlite_target(path: Path, name: str = "warehouse") -> dict:
    return {"name": name, "target_type": "database",
            "connection_params": {"type": "sqlite", "database": str(path)},
            "table": "cities", "write_mode": "append"}


def _local_files(tmp_path: Path) -> None:
    (tmp_path / "in" / "2024").mkdir(parents=True)
    (tmp_path / "in" / "2024" / "a.csv").write_bytes(ROWS_A)
    (tmp_path / "in" / "b.csv").write_bytes(ROWS_B)


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_local_files_move_under_move_to_keeping_their_subfolders(tmp_path: Path) -> None:
    _local_files(tmp_path)
    job = _job({"source_type": "file", "file_path": "in/**/*.csv"}, {"move_to": "done/"},
               _sqlite_target(tmp_path / "dw.db"))
    result = run_job(write_job(tmp_path, job), "archive_job", dg.DagsterInstance.ephemeral())
    assert result.success
    assert _listing(tmp_path / "in") == []
    assert _listing(tmp_path / "done") == ["2024/a.csv", "b.csv"]
    assert (tmp_path / "done" / "b.csv").read_bytes() == ROWS_B
    assert endpoint_events(result)["archive_job/raw"]["nexus/after_load_files_moved"].value == 2
    with sqlite3.connect(tmp_path / "dw.db") as db:
        assert db.execute("SELECT count(*) FROM cities").fetchone() == (3,)
    # a file of the same name read later lands next to the first, never over it
    (tmp_path / "in" / "b.csv").write_bytes(b"id,city\n4,Rome\n")
    assert run_job(write_job(tmp_path, job), "archive_job",
                   dg.DagsterInstance.ephemeral()).success
    moved = [n for n in _listing(tmp_path / "done") if n.startswith("b")]
    assert len(moved) == 2 and "b.csv" in moved


def test_local_files_stay_when_a_target_fails(tmp_path: Path) -> None:
    _local_files(tmp_path)
    broken = tmp_path / "broken.db"
    with sqlite3.connect(broken) as db:
        db.execute("CREATE TABLE cities (other INTEGER)")  # the load's columns do not exist
    job = _job({"source_type": "file", "file_path": "in/**/*.csv"}, {"delete": True},
               _sqlite_target(tmp_path / "dw.db"), _sqlite_target(broken, "broken"))
    result = run_job(write_job(tmp_path, job), "archive_job", dg.DagsterInstance.ephemeral())
    assert not result.success
    assert _listing(tmp_path / "in") == ["2024/a.csv", "b.csv"]


def test_object_store_files_are_deleted_after_the_load(store: Store, tmp_path: Path) -> None:
    store.put("in/a.csv", ROWS_A)
    store.put("in/b.csv", ROWS_B)
    store.put("keep/c.csv", ROWS_B)
    source = {"source_type": store.kind, "connection_params": store.params,
              "file_path": "in/*.csv"}
    job = _job(source, {"delete": True}, _sqlite_target(tmp_path / "dw.db"))
    assert _run(write_job(tmp_path, job)) == {"files_deleted": 2}
    assert store.listing() == ["keep/c.csv"]


def test_object_store_files_move_to_an_archive_prefix(store: Store, tmp_path: Path) -> None:
    store.put("in/a.csv", ROWS_A)
    store.put("in/b.csv", ROWS_B)
    source = {"source_type": store.kind, "connection_params": store.params,
              "file_path": "in/"}
    job = _job(source, {"move_to": "archive/2024/"}, _sqlite_target(tmp_path / "dw.db"))
    assert _run(write_job(tmp_path, job)) == {"files_moved": 2}
    assert store.listing() == ["archive/2024/a.csv", "archive/2024/b.csv"]
    assert store.get("archive/2024/a.csv") == ROWS_A
    with sqlite3.connect(tmp_path / "dw.db") as db:
        assert db.execute("SELECT count(*) FROM cities").fetchone() == (3,)


@pytest.mark.s3
def test_object_store_files_stay_when_a_target_fails(store_factory, tmp_path: Path) -> None:
    store = store_factory("s3")
    store.put("in/a.csv", ROWS_A)
    broken = tmp_path / "broken.db"
    with sqlite3.connect(broken) as db:
        db.execute("CREATE TABLE cities (other INTEGER)")
    source = {"source_type": "s3", "connection_params": store.params, "file_path": "in/*.csv"}
    job = _job(source, {"move_to": "done/"}, _sqlite_target(tmp_path / "dw.db"),
               _sqlite_target(broken, "broken"))
    with pytest.raises(LoadError, match="do not exist"):
        _run(write_job(tmp_path, job))
    assert store.listing() == ["in/a.csv"]
