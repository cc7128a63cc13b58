"""NEXUS_ALLOW_CUSTOM_CODE=0: custom_code is a spec error at validation and in the engine."""

from __future__ import annotations

import pyarrow as pa
import pytest
import yaml

from nexus_dagster.errors import SpecError
from nexus_dagster.relation import Relation
from nexus_dagster.spec.loader import collect
from nexus_dagster.spec.models import Transformation
from nexus_dagster.transforms.chain import apply_transformations

SPEC = {
    "name": "coded",
    "sources": [{"name": "src", "source_type": "file", "file_path": "in.csv"}],
    "transformations": [{"name": "double", "transformation_type": "custom_code",
                         "custom_code": "df['x'] = df['x'] * 2"}],
    "targets": [{"name": "out", "target_type": "file", "file_path": "out.csv"}],
}


def _folder(tmp_path):
    folder = tmp_path / "job_specs"
    folder.mkdir()
    (folder / "coded.yaml").write_text(yaml.safe_dump(SPEC, sort_keys=False))
    return folder


@pytest.mark.parametrize("value", ["0", "false", "no"])
def test_validation_refuses_custom_code(tmp_path, monkeypatch, value):
    monkeypatch.setenv("NEXUS_ALLOW_CUSTOM_CODE", value)
    _, problems = collect([_folder(tmp_path)])
    assert len(problems) == 1
    text = str(problems[0])
    assert "coded.yaml:" in text and "transformations[0].custom_code" in text
    assert "NEXUS_ALLOW_CUSTOM_CODE=0" in text


def test_validation_allows_it_by_default(tmp_path, monkeypatch):
    monkeypatch.delenv("NEXUS_ALLOW_CUSTOM_CODE", raising=False)
    assert collect([_folder(tmp_path)])[1] == []


def _relation() -> Relation:
    table = pa.table({"x": [1, 2]})
    return Relation(table.schema, lambda: iter(table.to_batches()), "src")


def test_engine_refuses_custom_code(monkeypatch):
    step = Transformation.model_validate(SPEC["transformations"][0])
    monkeypatch.setenv("NEXUS_ALLOW_CUSTOM_CODE", "0")
    with pytest.raises(SpecError, match="disabled in this deployment"):
        apply_transformations({"src": _relation()}, [step]).to_table()
    monkeypatch.setenv("NEXUS_ALLOW_CUSTOM_CODE", "1")
    out = apply_transformations({"src": _relation()}, [step]).to_table()
    assert out.column("x").to_pylist() == [2, 4]
