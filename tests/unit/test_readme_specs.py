"""Every job spec shown in the README is a valid spec (model and expression checks)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from nexus_dagster.spec.loader import JobSpec, _UniqueKeyLoader
from nexus_dagster.spec.models import ETLJob
from nexus_dagster.spec.validate import check_job

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = [
    block
    for block in re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    if re.search(r"^name:", block, re.M) and re.search(r"^sources:", block, re.M)
]


def test_readme_has_job_specs():
    assert len(BLOCKS) >= 7


@pytest.mark.parametrize("block", BLOCKS, ids=[re.search(r"^name: *(\S+)", b, re.M).group(1)
                                                for b in BLOCKS])
def test_readme_spec_is_valid(block: str):
    job = ETLJob.model_validate(yaml.load(block, Loader=_UniqueKeyLoader))
    connections = {
        endpoint.connection for endpoint in [*job.sources, *job.targets] if endpoint.connection
    }
    problems = [
        p for p in check_job(JobSpec(job=job, file=None, root=README.parent), {})
        if not any(f"connection {c!r} is not in connections.yaml" in p.message
                   for c in connections)
        and "is not a job" not in p.message and "unknown job" not in p.message
    ]
    assert problems == []
