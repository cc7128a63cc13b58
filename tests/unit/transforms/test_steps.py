"""The step table: one entry per transformation type, read by the builder, lineage, pushdown,
planning and the spec checks."""

from __future__ import annotations

import pyarrow as pa
import pytest

from nexus_dagster.spec.models import Transformation, TransformationType
from nexus_dagster.transforms.portable import portable_steps
from nexus_dagster.transforms.steps import STEP_KINDS, step_kind


def _step(kind: str, config: dict, **extra) -> Transformation:
    return Transformation(name="s", transformation_type=kind, config=config, **extra)


@pytest.mark.parametrize("kind", list(TransformationType))
def test_every_type_has_an_entry_with_its_config_model(kind):
    entry = STEP_KINDS[kind]
    assert entry.config.model_fields["kind"].default == kind.value
    assert (entry.sql is None) == (kind == TransformationType.CUSTOM_CODE)


def test_expressions_name_their_config_field_and_output():
    step = _step("map", {"mappings": {"net": "gross - tax", "one": "1"}})
    found = [(e.field, e.text, e.output) for e in step_kind(step).expressions(step.config)]
    assert found == [(("mappings", "net"), "gross - tax", "net"), (("mappings", "one"), "1", "one")]
    step = _step("filter", {"condition": "a > 1"})
    assert [e.field for e in step_kind(step).expressions(step.config)] == [("condition",)]


def test_only_joins_read_named_inputs():
    join = _step("join", {"left": "a", "right": "b", "on": "id"})
    assert step_kind(join).inputs(join.config) == {"left": "a", "right": "b"}
    sort = _step("sort", {"columns": "id"})
    assert step_kind(sort).inputs(sort.config) == {}


def test_portable_steps_follows_the_table_and_the_assigned_types():
    schema = pa.schema([("a", pa.int64()), ("s", pa.string())])
    out = pa.schema([("a", pa.int64()), ("s", pa.string()), ("f", pa.float64())])
    keep = _step("filter", {"condition": "a > 1"})
    assert portable_steps([keep], schema, out)
    assert not portable_steps([keep, _step("sort", {"columns": "a"})], schema, out)
    # "f" is a float afterwards: comparing it with an int is portable, dividing is not
    to_float = _step("map", {"mappings": {"f": "a * 2", "g": "f > 1"}})
    assert portable_steps([to_float], schema, out)
    assert not portable_steps([_step("map", {"mappings": {"f": "a / 2"}})], schema, out)
