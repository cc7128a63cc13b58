"""``nexus_dagster.NexusJobs``: a defs.yaml pointing at a spec folder builds the Definitions
that ``build_definitions(load_project(folder))`` builds; ``import nexus_dagster`` stays
Dagster-free."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster.components.testing import create_defs_folder_sandbox

from nexus_dagster import NexusJobs
from nexus_dagster.dagster.factory import build_definitions
from nexus_dagster.errors import SpecError
from nexus_dagster.spec.loader import load_project

REPO = Path(__file__).resolve().parents[2]


def names(defs: dg.Definitions) -> tuple[set[str], set[str], set[str]]:
    """Asset keys, job names and resource keys of a Definitions."""
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    jobs = {job.name for job in defs.resolve_all_job_defs() if not job.name.startswith("__")}
    return keys, jobs, set(defs.resources or {})


@pytest.mark.parametrize(
    ("specs", "where"),
    [("job_specs", "component"), ("{{ context.project_root }}/job_specs", "project_root")],
)
def test_defs_yaml_builds_the_definitions_of_its_spec_folder(specs: str, where: str):
    with create_defs_folder_sandbox() as sandbox:
        defs_path = sandbox.defs_folder_path / "etl"
        folder = (defs_path if where == "component" else sandbox.project_root) / "job_specs"
        shutil.copytree(REPO / "job_specs", folder)
        sandbox.scaffold_component(
            NexusJobs, defs_path="etl",
            defs_yaml_contents={"type": "nexus_dagster.NexusJobs", "attributes": {"specs": specs}},
        )
        with sandbox.load_component_and_build_defs(defs_path=defs_path) as (component, defs):
            assert isinstance(component, NexusJobs)
            expected = build_definitions(load_project(folder))
            assert names(defs) == names(expected)
            assert "demo_orders" in names(defs)[1]
            assert defs.resolve_job_def("demo_orders") is not None


def test_component_from_python_resolves_an_absolute_folder(tmp_path: Path):
    shutil.copytree(REPO / "job_specs", tmp_path / "job_specs")
    defs = dg.build_defs_for_component(NexusJobs(specs=str(tmp_path / "job_specs")))
    assert names(defs) == names(build_definitions(load_project(tmp_path / "job_specs")))


def test_scaffolding_writes_a_loadable_defs_yaml_and_spec_folder():
    with create_defs_folder_sandbox() as sandbox:
        defs_path = sandbox.scaffold_component(NexusJobs, defs_path="etl")
        assert "specs: job_specs" in (defs_path / "defs.yaml").read_text()
        assert (defs_path / "job_specs/connections.yaml").exists()
        with sandbox.load_component_and_build_defs(defs_path=defs_path) as (component, defs):
            assert component.specs == "job_specs"
            assert names(defs) == (set(), set(), set())


def test_a_missing_spec_folder_names_the_defs_yaml_and_the_attribute():
    with create_defs_folder_sandbox() as sandbox:
        sandbox.scaffold_component(
            NexusJobs, defs_path="etl",
            defs_yaml_contents={"type": "nexus_dagster.NexusJobs",
                                "attributes": {"specs": "no_such_folder"}},
        )
        # Dagster shows where in the component tree it failed and chains our SpecError
        with pytest.raises(Exception, match=r"defs\.yaml") as raised, sandbox.build_all_defs():
            pass
        error = raised.value.__cause__
        assert isinstance(error, SpecError)
        assert "etl/defs.yaml: attributes.specs: spec folder " in str(error)
        assert "etl/no_such_folder does not exist" in str(error)


def test_import_nexus_dagster_does_not_import_dagster():
    code = (
        "import sys, nexus_dagster\n"
        "assert 'dagster' not in sys.modules, 'dagster imported'\n"
        "assert 'NexusJobs' in dir(nexus_dagster) and 'NexusJobs' in nexus_dagster.__all__\n"
        "from nexus_dagster import NexusJobs\n"
        "assert NexusJobs.__module__ == 'nexus_dagster.dagster.component'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=120)
    with pytest.raises(AttributeError, match="no attribute 'NoSuchName'"):
        import nexus_dagster

        _ = nexus_dagster.NoSuchName
