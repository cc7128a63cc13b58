"""Hundreds of generated malformed specs: each gives exactly one clear problem with the file,
line and field, never a traceback; the loader never calls eval/exec on spec text."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus_dagster import cli
from nexus_dagster.spec.loader import collect
from tests.unit.security.guards import no_eval, strings_in
from tests.unit.security.malformed import CONNECTIONS, base_spec, cases

CASES = list(cases())


def _write(folder: Path, spec, name: str = "job.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "connections.yaml").write_text(yaml.safe_dump(CONNECTIONS))
    path = folder / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_there_are_at_least_200_cases():
    assert len(CASES) >= 200
    assert len({c.id for c in CASES}) == len(CASES)


def test_the_base_spec_is_valid(tmp_path):
    _write(tmp_path / "job_specs", base_spec())
    assert collect([tmp_path / "job_specs"])[1] == []


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_one_clear_problem(case, tmp_path):
    path = _write(tmp_path / "job_specs", case.spec)
    with no_eval(*strings_in(case.spec)):
        _, problems = collect([tmp_path / "job_specs"])
    assert len(problems) == 1, [str(p) for p in problems]
    problem = problems[0]
    assert problem.file == str(path) and problem.line
    assert f"{path}:{problem.line}: " in str(problem)
    assert "Traceback" not in str(problem)
    if case.field:
        # the problem names the broken field, the item that holds it, or the bad part of it
        assert problem.field, str(problem)
        assert (case.field.startswith(problem.field)
                or problem.field.startswith(case.field)), str(problem)


def test_nexus_validate_lists_every_broken_file(tmp_path, capsys):
    folder = tmp_path / "job_specs"
    chosen = [c for c in CASES if isinstance(c.spec, dict) and c.spec.get("name") == "good_job"]
    chosen = chosen[::4]
    for index, case in enumerate(chosen):
        _write(folder, {**case.spec, "name": f"job_{index}"}, f"job_{index}.yaml")
    assert cli.main(["validate", str(folder)]) == 1
    out = capsys.readouterr().out
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert len(errors) == len(chosen)
    assert all(".yaml:" in line for line in errors)
    assert "Traceback" not in out


def test_nexus_validate_process_prints_no_traceback(tmp_path):
    folder = tmp_path / "job_specs"
    _write(folder, CASES[0].spec, "a.yaml")
    (folder / "b.yaml").write_text("name: [unclosed\n  - x: {\n")
    (folder / "c.yaml").write_bytes(b"\xff\xfe\x00garbage")
    proc = subprocess.run([sys.executable, "-m", "nexus_dagster.cli", "validate", str(folder)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "b.yaml:" in proc.stdout and "c.yaml" in proc.stdout


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(path=st.lists(st.sampled_from(["name", "sources", "targets", "transformations", 0, 1,
                                      "config", "condition", "mappings", "connection_params",
                                      "options", "schedule", "write_mode"]), max_size=4),
       value=JSONISH)
def test_fuzzed_specs_never_crash_the_loader(tmp_path, path, value):
    """Random values anywhere in a spec: problems, never an exception, never eval/exec."""
    spec = base_spec()
    node = spec
    for part in path[:-1] if path else []:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
    if path and isinstance(node, dict | list):
        with contextlib.suppress(IndexError, TypeError):
            node[path[-1]] = value
    folder = tmp_path / f"f{abs(hash((str(path), repr(value))))}"
    try:
        _write(folder, spec)
    except yaml.YAMLError:
        return
    with no_eval(*strings_in(spec)):
        _, problems = collect([folder])
    assert all(p.file and "Traceback" not in str(p) for p in problems)
