"""Contract 6: a check reads back exactly what the load wrote.

The target is a spec's DataTarget (connection params and fields as a spec writes them: a
RELATIVE ``file_path`` for file and object-store targets, a relative SQLite ``database``), its
connector is opened the way a run opens it (``run.endpoints.open_endpoint`` with a project
root), the load uses ``write_request`` and the check ``read_back_request``, as the runner and
the asset checks do. The read-back uses the target's own fields only, so values come back in
the system's own representation: they are compared as the type that was written.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from nexus_dagster.run.endpoints import open_endpoint, read_back_request, write_request
from nexus_dagster.spec.loader import JobSpec
from nexus_dagster.spec.models import DataSource, DataTarget, ETLJob
from nexus_dagster.spec.validate_operations import operations_problems
from tests.contract.endpoints import ENTRIES, Endpoint, Entry, cases
from tests.contract.rows import SAMPLE, canonical, relation

TARGETS = [e for e in ENTRIES if e.cls.is_target and e.cls.is_source and e.cls.supports_read_back]
UNREADABLE = [e for e in ENTRIES if e.cls.is_target and not (e.cls.is_source
                                                              and e.cls.supports_read_back)]


def _spec(endpoint: Endpoint, mode: str, root: Path) -> tuple[JobSpec, DataTarget]:
    fields = dict(endpoint.spec_target)
    if mode == "upsert":
        fields["key_columns"] = ["id"]
    target = DataTarget(name="contract_target", target_type=endpoint.type_name,
                        connection_params=endpoint.spec_params, write_mode=mode, **fields)
    source = DataSource(name="contract_source", source_type="file", file_path="in.csv")
    job = ETLJob(name="contract_job", sources=[source], targets=[target])
    return JobSpec(job=job, file=None, root=root), target


@pytest.mark.parametrize(
    ("entry", "mode"), cases("test_check_reads_back_what_the_load_wrote", TARGETS,
                             modes=Entry.modes),
)
def test_check_reads_back_what_the_load_wrote(
    endpoint: Endpoint, entry: Entry, mode: str, tmp_path: Path
):
    root = tmp_path / "project"
    root.mkdir()
    spec, target = _spec(endpoint, mode, root)

    loader = open_endpoint(target, spec, {})
    try:
        loader.write(relation(SAMPLE), write_request(target, loader, root,
                                                     run_id=uuid.uuid4().hex))
    finally:
        loader.close()

    checker = open_endpoint(target, spec, {})
    try:
        back = checker.read(read_back_request(target, checker, root)).to_table()
    finally:
        checker.close()
    assert canonical(back, endpoint.drop, endpoint.ts_unit, as_text="*") == canonical(
        SAMPLE, ts_unit=endpoint.ts_unit)


@pytest.mark.parametrize("entry", [pytest.param(e, id=e.id) for e in UNREADABLE])
def test_checks_on_a_target_that_cannot_be_read_back_are_refused_at_validation(
    entry: Entry, tmp_path: Path
):
    target = DataTarget(name="out", target_type=entry.type_name,
                        connection_params={"type": entry.type_name})
    source = DataSource(name="contract_source", source_type="file", file_path="in.csv")
    job = ETLJob(name="contract_job", sources=[source], targets=[target],
                 checks=[{"check": "row_count", "min": 1}])
    problems = operations_problems(JobSpec(job=job, file=None, root=tmp_path))
    assert [p.message for p in problems] == ["target 'out' cannot be read back, so it cannot be "
                                             "checked"]
