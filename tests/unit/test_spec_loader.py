"""Spec loading and validation: good specs load, every bad one gets file:line, field and fix."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from nexus_dagster.cli import main
from nexus_dagster.errors import SpecError
from nexus_dagster.spec.loader import collect, load_project
from nexus_dagster.spec.models import ETLJob, TransformationType, WriteMode

REPO = Path(__file__).resolve().parents[2]

GOOD = """\
name: good_job
sources:
  - name: orders
    source_type: file
    file_path: data/orders.csv
transformations:
  - name: paid
    transformation_type: filter
    config: {condition: 'status == "paid"'}
targets:
  - name: out
    target_type: database
    connection: warehouse
    table: paid_orders
    write_mode: upsert
    key_columns: [order_id]
"""

CONNECTIONS = """\
warehouse:
  type: sqlite
  database: output/w.db
"""


def write_specs(tmp_path: Path, job: str, connections: str = CONNECTIONS) -> Path:
    folder = tmp_path / "job_specs"
    folder.mkdir()
    (folder / "connections.yaml").write_text(connections)
    (folder / "job.yaml").write_text(textwrap.dedent(job))
    return folder


def problems_for(tmp_path: Path, job: str) -> list[str]:
    folder = write_specs(tmp_path, job)
    _, problems = collect([folder])
    return [str(p) for p in problems]


def test_good_spec_loads(tmp_path):
    project = load_project(write_specs(tmp_path, GOOD))
    (spec,) = project.jobs
    assert spec.job.name == "good_job"
    assert spec.job.targets[0].write_mode is WriteMode.UPSERT
    assert spec.job.transformations[0].transformation_type is TransformationType.FILTER
    assert spec.root == tmp_path.resolve()
    assert project.connections["warehouse"].params == {"database": "output/w.db"}


def test_repo_specs_are_valid():
    project, problems = collect([REPO / "job_specs"])
    assert problems == []
    assert {s.job.key for s in project.jobs} >= {"demo_orders"}


@pytest.mark.parametrize(
    ("replace", "by", "expected"),
    [
        ("    table: paid_orders\n", "    tabel: paid_orders\n",
         ["job.yaml:14: targets[0].tabel: Extra inputs are not permitted",
          "did you mean 'table'?"]),
        ("    source_type: file\n", "    source_type: fax\n",
         ["job.yaml:4: sources[0].source_type: source_type 'fax' is not a registered connector",
          "use one of: api, azure_blob, database"]),
        ("    config: {condition: 'status == \"paid\"'}\n", "    config: {}\n",
         ["job.yaml:9: transformations[0].config.condition: Field required", "add 'condition'"]),
        ("    key_columns: [order_id]\n", "",
         ["targets[0]: write_mode upsert needs key_columns"]),
        ("    connection: warehouse\n", "    connection: nowhere\n",
         ["job.yaml:13: targets[0].connection: connection 'nowhere' is not in connections.yaml",
          "use one of: warehouse"]),
        ("name: good_job\n", "name: good_job\nschedule: '61 * * * *'\n",
         ["job.yaml:2: schedule: '61 * * * *' is not a valid cron expression"]),
        ("'status == \"paid\"'", "'__import__(\"os\").system(\"id\")'",
         ["job.yaml:9: transformations[0].config.condition:"]),
        ("    source_type: file\n", "    source_type: redis\n",
         ["job.yaml:3: sources[0].options: a redis source needs options.key_pattern"]),
        ("    write_mode: upsert\n    key_columns: [order_id]\n", "",
         []),
    ],
)
def test_bad_spec_messages(tmp_path, replace, by, expected):
    assert replace in GOOD
    found = problems_for(tmp_path, GOOD.replace(replace, by))
    if not expected:
        assert found == []
        return
    assert len(found) == 1, found
    for part in expected:
        assert part in found[0], found[0]


def test_file_target_rejects_upsert(tmp_path):
    job = GOOD.replace(
        "    target_type: database\n    connection: warehouse\n    table: paid_orders\n",
        "    target_type: file\n    file_path: out.parquet\n",
    )
    (found,) = problems_for(tmp_path, job)
    assert "file targets do not support write_mode 'upsert'" in found
    assert "use one of: append, overwrite" in found


def test_all_problems_reported_at_once(tmp_path):
    job = GOOD.replace("source_type: file", "source_type: fax").replace(
        "write_mode: upsert", "write_mode: merge"
    )
    found = problems_for(tmp_path, job)
    assert len(found) == 2
    assert any("source_type" in p for p in found) and any("write_mode" in p for p in found)


def test_invalid_yaml_names_line(tmp_path):
    found = problems_for(tmp_path, GOOD.replace("  - name: paid\n", "  - name: paid\n   x: [\n"))
    assert len(found) == 1 and "job.yaml:" in found[0] and "invalid YAML" in found[0]


def test_duplicate_key_is_an_error(tmp_path):
    found = problems_for(tmp_path, GOOD.replace("name: good_job\n", "name: a\nname: good_job\n"))
    assert len(found) == 1 and "duplicate key 'name'" in found[0] and "job.yaml:2" in found[0]


def test_join_reference_checked(tmp_path):
    job = GOOD.replace(
        "    transformation_type: filter\n    config: {condition: 'status == \"paid\"'}\n",
        "    transformation_type: join\n    config: {left: orders, right: customers, on: id}\n",
    )
    (found,) = problems_for(tmp_path, job)
    assert "join right 'customers' is not a source or an earlier step" in found


def test_custom_code_syntax_and_switch(tmp_path, monkeypatch):
    job = GOOD.replace(
        "    transformation_type: filter\n    config: {condition: 'status == \"paid\"'}\n",
        "    transformation_type: custom_code\n    custom_code: 'df = df[df.x >'\n",
    )
    (found,) = problems_for(tmp_path, job)
    assert "Python syntax error in custom code line 1" in found
    monkeypatch.setenv("NEXUS_ALLOW_CUSTOM_CODE", "0")
    found = problems_for(tmp_path / "b" if (tmp_path / "b").mkdir() is None else tmp_path, job)
    assert any("custom code is disabled" in p for p in found)


def test_duplicate_names_in_job(tmp_path):
    (found,) = problems_for(tmp_path, GOOD.replace("  - name: out\n", "  - name: orders\n"))
    assert "name 'orders' is used by a source and a target" in found


def test_load_project_raises_all(tmp_path):
    folder = write_specs(tmp_path, GOOD.replace("source_type: file", "source_type: fax"))
    with pytest.raises(SpecError) as info:
        load_project(folder)
    assert len(info.value.problems) == 1


def test_validate_cli(tmp_path, capsys):
    good = write_specs(tmp_path, GOOD)
    assert main(["validate", str(good)]) == 0
    assert "ok: 1 job(s), 1 connection(s)" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("source_type: file", "source_type: fax"))
    assert main(["validate", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "bad.yaml:4: sources[0].source_type" in out
    assert "Traceback" not in out


def test_python_model_is_the_yaml_model():
    job = ETLJob(
        name="PG to MySQL",
        sources=[{"name": "src", "source_type": "database", "table": "users"}],
        targets=[{"name": "dst", "target_type": "database", "table": "users",
                  "write_mode": "overwrite"}],
    )
    assert job.key == "pg_to_mysql"
    dumped = job.model_dump(mode="json", exclude_defaults=True)
    assert ETLJob.model_validate(dumped) == job


def _pure_python_lines(text: str) -> dict[tuple, int]:
    """The line of every field as PyYAML's own (pure-Python) parser sees it."""
    import yaml

    lines: dict[tuple, int] = {}

    def walk(node, path):
        lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                walk(value_node, (*path, key_node.value))
                lines[(*path, key_node.value)] = key_node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*path, index))

    walk(yaml.compose(text, Loader=yaml.SafeLoader), ())
    return lines


TRICKY_YAML = """\
# a comment
name: tricky
anchors: &defaults {a: 1, b: [x, "y"]}
alias: *defaults
on: id
flags: [yes, no, true, False, off]
folded: >
  two
  lines
quoted: 'it''s'
empty:
numbers: [1, 1.5, 0x10, 1e3, .inf]
"""


def test_yaml_parse_gives_the_data_and_lines_of_pyyaml_pure_python_parser(tmp_path):
    """The one-pass libyaml parse keeps the data (YAML 1.2 booleans only: `on`/`yes` stay
    strings) and the line of every field exactly as the pure-Python parser gives them."""
    from nexus_dagster.spec.loader import parse_yaml

    path = tmp_path / "tricky.yaml"
    path.write_text(TRICKY_YAML)
    parsed = parse_yaml(path)
    assert parsed.data == {
        "name": "tricky", "anchors": {"a": 1, "b": ["x", "y"]}, "alias": {"a": 1, "b": ["x", "y"]},
        "on": "id", "flags": ["yes", "no", True, False, "off"], "folded": "two lines\n",
        "quoted": "it's", "empty": None, "numbers": [1, 1.5, 16, "1e3", float("inf")],
    }
    assert parsed.lines == _pure_python_lines(TRICKY_YAML)
    for spec in sorted((REPO / "job_specs").glob("*.yaml")):
        text = spec.read_text()
        assert parse_yaml(spec).lines == _pure_python_lines(text), spec


def test_invalid_yaml_message_is_the_pure_python_parsers(tmp_path):
    """libyaml words errors differently: a refused file is parsed again by PyYAML's own parser,
    so the message and line users see are the ones they always saw."""
    import yaml

    text = GOOD.replace("  - name: paid\n", "  - name: paid\n   x: [\n")
    with pytest.raises(yaml.YAMLError) as pure:
        yaml.compose(text, Loader=yaml.SafeLoader)
    (found,) = problems_for(tmp_path, text)
    assert f"invalid YAML: {pure.value.problem}" in found
    assert f"job.yaml:{pure.value.problem_mark.line + 1}:" in found
