"""`nexus schema`: the JSON Schema accepts the shipped specs and refuses what validate refuses
(misspelled keys, unknown connector types), so an editor flags them while typing."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from nexus_dagster.cli import main

REPO = Path(__file__).resolve().parents[2]


def schema_from_cli(capsys, *args: str) -> dict:
    assert main(["schema", *args]) == 0
    return json.loads(capsys.readouterr().out)


def demo_job() -> dict:
    return yaml.safe_load((REPO / "job_specs" / "demo_orders.yaml").read_text())


@pytest.mark.parametrize("name", ["demo_orders.yaml", "category_totals.yaml"])
def test_job_schema_accepts_the_shipped_specs(capsys, name):
    schema = schema_from_cli(capsys)
    jsonschema.validate(yaml.safe_load((REPO / "job_specs" / name).read_text()), schema)


def test_connections_schema_accepts_the_shipped_connections(capsys):
    schema = schema_from_cli(capsys, "--connections")
    jsonschema.validate(yaml.safe_load((REPO / "job_specs" / "connections.yaml").read_text()),
                        schema)


def test_job_schema_refuses_a_misspelled_config_key_of_the_transformation_type(capsys):
    schema = schema_from_cli(capsys)
    job = demo_job()
    step = next(t for t in job["transformations"] if t["transformation_type"] == "filter")
    step["config"]["conditon"] = step["config"].pop("condition")
    with pytest.raises(jsonschema.ValidationError, match="'conditon' was unexpected"):
        jsonschema.validate(job, schema)


def test_job_schema_refuses_an_unregistered_source_type(capsys):
    schema = schema_from_cli(capsys)
    job = demo_job()
    job["sources"][0]["source_type"] = "flie"
    with pytest.raises(jsonschema.ValidationError, match="'flie' is not one of"):
        jsonschema.validate(job, schema)


def test_schema_output_file(tmp_path, capsys):
    out = tmp_path / "nexus-job.schema.json"
    assert main(["schema", "-o", str(out)]) == 0
    assert json.loads(out.read_text())["title"] == "nexus-dagster job spec"
