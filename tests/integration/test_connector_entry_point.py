"""A connector from another package, registered only through the entry-point group
``nexus_dagster.connectors``, validates and runs a job like a built-in one.

The package (tests/fixtures/example_connector) is built and installed with uv into a folder of
its own; the ``nexus`` commands run in subprocesses that see it through PYTHONPATH, exactly as
an installed plugin is seen."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "example_connector"
NEXUS = Path(sys.executable).with_name("nexus")

JOB = """\
name: paid_orders
sources:
  - name: orders
    source_type: jsonl_folder
    connection_params: {folder: lake}
    table: orders
transformations:
  - name: only_paid
    transformation_type: filter
    config: {condition: 'status == "paid"'}
  - name: net
    transformation_type: map
    config: {mappings: {net: 'amount - fee'}}
targets:
  - name: paid
    target_type: jsonl_folder
    connection_params: {folder: lake}
    table: paid
    write_mode: overwrite
"""


def _uv() -> list[str]:
    found = shutil.which("uv")
    if found:
        return [found]
    for python in ("python3", sys.executable):
        if subprocess.run([python, "-m", "uv", "--version"], capture_output=True).returncode == 0:
            return [python, "-m", "uv"]
    pytest.fail("uv is needed to install the example connector (scripts/bootstrap.sh installs it)")


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("plugin_site")
    build = tmp_path_factory.mktemp("plugin_src") / "example_connector"
    shutil.copytree(FIXTURE, build)  # build in a scratch copy: no build/ left in the repo
    subprocess.run(
        [*_uv(), "pip", "install", "-q", "--no-deps", "--target", str(site), str(build)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    entry_points = next(site.glob("nexus_example_connector-*.dist-info/entry_points.txt"))
    assert "[nexus_dagster.connectors]" in entry_points.read_text()
    return site


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "job_specs").mkdir()
    (tmp_path / "job_specs" / "paid_orders.yaml").write_text(JOB)
    (tmp_path / "lake").mkdir()
    rows = [
        {"id": 1, "status": "paid", "amount": 10.5, "fee": 0.5},
        {"id": 2, "status": "open", "amount": 7.0, "fee": 0.0},
        {"id": 3, "status": "paid", "amount": 3.0, "fee": 1.0},
    ]
    (tmp_path / "lake" / "orders.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path


def nexus(project: Path, *args: str, site: Path | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["DAGSTER_HOME"] = str(project / ".dagster_home")
    (project / ".dagster_home").mkdir(exist_ok=True)
    if site is not None:
        env["PYTHONPATH"] = str(site)
    return subprocess.run([str(NEXUS), *args], cwd=project, env=env, capture_output=True,
                          text=True, timeout=180)  # fmt: skip


def test_entry_point_connector_validates_and_runs_a_job(project: Path, plugin_site: Path):
    checked = nexus(project, "validate", "job_specs", site=plugin_site)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    ran = nexus(project, "run", "paid_orders", "--specs", "job_specs", site=plugin_site)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "2 loaded (overwrite)" in ran.stdout

    lines = (project / "lake" / "paid.jsonl").read_text().splitlines()
    written = [json.loads(line) for line in lines]
    assert [(r["id"], r["net"]) for r in written] == [(1, 10.0), (3, 2.0)]


def test_entry_point_connector_params_are_checked_at_validate(project: Path, plugin_site: Path):
    spec = project / "job_specs" / "paid_orders.yaml"
    spec.write_text(JOB.replace("{folder: lake}\n    table: orders",
                                "{folder: lake, fodler: x}\n    table: orders"))
    checked = nexus(project, "validate", "job_specs", site=plugin_site)
    assert checked.returncode == 1
    assert ("paid_orders.yaml:5: sources[0].connection_params.fodler: 'x': "
            "Extra inputs are not permitted (fix: did you mean 'folder'? see the "
            "JsonlFolderConnector parameters") in checked.stdout


def test_without_the_plugin_the_type_is_unknown(project: Path):
    checked = nexus(project, "validate", "job_specs", site=None)
    assert checked.returncode == 1
    assert "source_type 'jsonl_folder' is not a registered connector" in checked.stdout
    assert "entry-point group nexus_dagster.connectors" in checked.stdout
