"""`nexus validate`: every problem of every file in one pass, each with file:line, field, the
offending value (secrets masked), the message and a fix with "did you mean"; `--format json`."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from nexus_dagster.cli import main
from nexus_dagster.spec.validate_values import shown_value

CONNECTIONS = """\
warehouse:
  type: sqlite
  database: output/w.db
"""

# one file with a model error (misspelled key), a misspelled type, a misspelled connection, a
# misspelled transformation type and an injected expression
BAD_JOB = """\
name: bad_job
sources:
  - name: orders
    source_type: flie
    file_path: data/orders.csv
transformations:
  - name: paid
    transformation_type: filtr
    config: {condition: 'x > 1'}
  - name: evil
    transformation_type: filter
    config: {condition: '__import__("os").system("id")'}
targets:
  - name: out
    target_type: database
    connection: warehuose
    tabel: paid_orders
    write_mode: overwrite
"""

SECRET = "s3cr3t-in-the-spec"
SECRET_JOB = f"""\
name: secret_job
sources:
  - name: orders
    source_type: file
    file_path: data/orders.csv
targets:
  - name: db
    target_type: database
    connection_params: {{type: postgresql, host: h, password: [{SECRET}], port: abc}}
    table: t
"""


def spec_folder(tmp_path: Path, **jobs: str) -> Path:
    folder = tmp_path / "job_specs"
    folder.mkdir()
    (folder / "connections.yaml").write_text(CONNECTIONS)
    for name, text in jobs.items():
        (folder / f"{name}.yaml").write_text(textwrap.dedent(text))
    return folder


def test_model_error_does_not_hide_the_other_problems_of_its_file(tmp_path, capsys):
    folder = spec_folder(tmp_path, bad=BAD_JOB)
    assert main(["validate", str(folder)]) == 1
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("error:")]
    text = "\n".join(lines)
    assert len(lines) == 5, text
    # the model error, with value and did-you-mean
    assert "bad.yaml:17: targets[0].tabel: 'paid_orders': Extra inputs are not permitted" in text
    assert "did you mean 'table'?" in text
    # the cross checks of the same file, although the model failed
    assert "bad.yaml:4: sources[0].source_type: 'flie': source_type 'flie' is not a " \
           "registered connector (fix: did you mean 'file'?" in text
    assert "bad.yaml:16: targets[0].connection: 'warehuose': connection 'warehuose' is not in " \
           "connections.yaml (fix: did you mean 'warehouse'?" in text
    assert "bad.yaml:8: transformations[0].transformation_type: 'filtr': " in text
    assert "(fix: did you mean 'filter'?" in text
    assert "bad.yaml:12: transformations[1].config.condition: " in text
    assert "attribute access" in text


def test_misspelled_key_is_checked_as_its_suggestion(tmp_path, capsys):
    # `tabel` is read as `table` for the other checks: no "a database target needs table"
    job = BAD_JOB.replace("flie", "file").replace("filtr", "filter").replace(
        "warehuose", "warehouse").replace("__import__(\"os\").system(\"id\")", "x < 2")
    assert main(["validate", str(spec_folder(tmp_path, bad=job))]) == 1
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "targets[0].tabel" in lines[0], lines


def test_problems_of_every_file_in_one_pass(tmp_path, capsys):
    other = BAD_JOB.replace("bad_job", "other_job").replace("tabel", "table")
    folder = spec_folder(tmp_path, bad=BAD_JOB, other=other)
    assert main(["validate", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "bad.yaml:17: targets[0].tabel" in out
    assert "other.yaml:4: sources[0].source_type" in out
    assert "9 problem(s)" in out


def test_secret_value_is_masked(tmp_path, capsys):
    assert main(["validate", str(spec_folder(tmp_path, secret=SECRET_JOB))]) == 1
    out = capsys.readouterr().out
    assert SECRET not in out
    assert "targets[0].connection_params.password: [\"***\"]: Input should be a valid string" in out
    assert "targets[0].connection_params.port: 'abc': Input should be a valid integer" in out


def test_shown_value_masks_secret_keys_nested_and_keeps_references():
    data = {"targets": [{"connection_params": {"host": "h", "password": "pw-1234",
                                               "token": "${API_TOKEN}"}}]}
    shown = shown_value(data, "targets[0].connection_params")
    assert "pw-1234" not in shown and '"password": "***"' in shown
    assert '"token": "${API_TOKEN}"' in shown
    assert shown_value(data, "targets[0].connection_params.password") == "'***'"
    assert shown_value(data, "targets[0].missing") is None


def test_format_json_lists_every_problem_with_its_fields(tmp_path, capsys):
    folder = spec_folder(tmp_path, bad=BAD_JOB, secret=SECRET_JOB)
    assert main(["validate", "--format", "json", str(folder)]) == 1
    out = capsys.readouterr().out
    problems = json.loads(out)
    assert SECRET not in out
    assert len(problems) == 7
    assert all(set(p) == {"file", "line", "field", "value", "message", "fix"} for p in problems)
    flie = next(p for p in problems if p["field"] == "sources[0].source_type"
                and p["file"].endswith("bad.yaml"))
    assert flie["line"] == 4 and flie["value"] == "'flie'"
    assert flie["fix"].startswith("did you mean 'file'?")


def test_format_json_of_good_specs_is_an_empty_list(tmp_path, capsys):
    good = BAD_JOB.replace("flie", "file").replace("filtr", "filter").replace(
        "warehuose", "warehouse").replace("__import__(\"os\").system(\"id\")", "x < 2").replace(
        "tabel", "table")
    assert main(["validate", "--format", "json", str(spec_folder(tmp_path, good=good))]) == 0
    assert json.loads(capsys.readouterr().out) == []
