"""Corrupt, mis-encoded, header-only and empty input files through a whole Dagster job: a clear
failure (or an empty load) and the target exactly as it was."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nexus_dagster.dagster.factory import build_definitions
from nexus_dagster.spec.loader import load_project

JOB = """\
name: load_input
sources:
  - name: raw
    source_type: file
    file_path: data/{name}
    file_format: {fmt}
{options}
targets:
  - name: table
    target_type: database
    connection_params: {{type: sqlite, database: out/target.db}}
    table: target
    write_mode: {mode}
"""


def _good_parquet() -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"]}), sink)
    return sink.getvalue().to_pybytes()


PARQUET = _good_parquet()

# name, format, bytes, options, expected: "fail" with a word of the message, or rows loaded
CASES = [
    ("trunc.parquet", "parquet", PARQUET[: len(PARQUET) // 2], "", ("fail", "parquet")),
    ("garbage.parquet", "parquet", b"PAR1 this is not parquet at all PAR1", "",
     ("fail", "parquet")),
    ("broken.json", "json", b'[{"id": 1, "name": "a"}, {"id": 2, "name": ', "",
     ("fail", "json")),
    ("broken.jsonl", "jsonl", b'{"id": 1, "name": "a"}\n{"id": 2, name: b}\n', "",
     ("fail", "json")),
    ("ragged.csv", "csv", b"id,name\n1,a\n2,b,extra,fields\n3,c\n", "", ("fail", "")),
    ("latin1.csv", "csv", "id,name\n1,café\n2,Müller\n".encode("latin-1"), "",
     ("fail", "utf")),
    ("latin1_declared.csv", "csv", "id,name\n1,café\n2,Müller\n".encode("latin-1"),
     "    options: {encoding: latin-1}", 2),
    ("binary.csv", "csv", bytes(range(256)) * 4, "", ("fail", "")),
    ("header_only.csv", "csv", b"id,name\n", "", 0),
    ("empty.csv", "csv", b"", "", ("fail", "empty")),
    ("empty.parquet", "parquet", b"", "", ("fail", "")),
    ("empty.jsonl", "jsonl", b"", "", ("fail", "")),
]


def _project(tmp_path: Path, name: str, fmt: str, data: bytes, options: str, mode: str) -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "out").mkdir(exist_ok=True)
    (tmp_path / "data" / name).write_bytes(data)
    specs = tmp_path / "job_specs"
    specs.mkdir(exist_ok=True)
    (specs / "load_input.yaml").write_text(
        JOB.format(name=name, fmt=fmt, options=options, mode=mode))
    with sqlite3.connect(tmp_path / "out/target.db") as con:
        con.execute("CREATE TABLE IF NOT EXISTS target (id INTEGER, name TEXT)")
        con.execute("DELETE FROM target")
        con.executemany("INSERT INTO target VALUES (?, ?)", [(100, "keep"), (101, "me")])
    return specs


def _target(tmp_path: Path) -> list[tuple]:
    with sqlite3.connect(tmp_path / "out/target.db") as con:
        return con.execute("SELECT id, name FROM target ORDER BY id").fetchall()


@pytest.mark.parametrize("mode", ["append", "overwrite"])
@pytest.mark.parametrize(("name", "fmt", "data", "options", "expected"), CASES,
                         ids=[c[0] for c in CASES])
def test_bad_input_through_a_job(tmp_path, name, fmt, data, options, expected, mode,
                                 monkeypatch):
    monkeypatch.setenv("NEXUS_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    specs = _project(tmp_path, name, fmt, data, options, mode)
    before = _target(tmp_path)
    job = build_definitions(load_project(specs)).resolve_job_def("load_input")
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(),
                                    raise_on_error=False)
    if isinstance(expected, tuple):
        assert not result.success
        failure = next(e for e in result.all_events if e.is_step_failure)
        error = failure.event_specific_data.error
        while error.cause is not None:
            error = error.cause
        message = error.message
        assert expected[1] in message.lower(), message
        assert name in message or "raw" in message, message  # says which input
        assert "Traceback" not in message
        assert _target(tmp_path) == before  # nothing half-loaded
    else:
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        rows = _target(tmp_path)
        loaded = [r for r in rows if r[0] < 100]
        assert len(loaded) == expected
        if mode == "append":
            assert [r for r in rows if r[0] >= 100] == before
