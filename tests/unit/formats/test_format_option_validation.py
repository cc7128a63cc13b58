"""`nexus validate` (the spec loader) checks the new file format options at load time and
names the spec file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from nexus_dagster.errors import SpecError
from nexus_dagster.spec.loader import load_project

JOB = """name: fmt_job
sources:
  - name: src
    source_type: file
    file_path: in.fwf
    file_format: fixed_width
    options: {SOURCE}
targets:
  - name: out
    target_type: file
    file_path: out.xml.enc
    write_mode: overwrite
    options: {TARGET}
"""


def _load(tmp_path: Path, source: str, target: str = "{}") -> None:
    (tmp_path / "fmt_job.yaml").write_text(JOB.replace("{SOURCE}", source)
                                           .replace("{TARGET}", target))
    load_project(tmp_path)


def test_valid_format_options_load(tmp_path: Path) -> None:
    _load(tmp_path, "{widths: [2, 4], names: [a, b], encryption: fernet, decimal_inference: false}",
          "{encryption: fernet}")


@pytest.mark.parametrize(("source", "target", "message"), [
    ("{widths: [2, -1]}", "{}", "options.widths must be a list of positive integers"),
    ("{widths: [2], colspecs: [[0, 2]]}", "{}", "give options.widths or options.colspecs"),
    ("{colspecs: [[3, 1]]}", "{}", "options.colspecs must be a list of [start, end]"),
    ("{encryption: aes}", "{}", "options.encryption 'aes' is not supported"),
    ("{archive_members: 3}", "{}", "options.archive_members must be a glob"),
    ("{decimal_inference: maybe}", "{}", "options.decimal_inference must be true or false"),
    ("{}", "{encryption: gpg}", "options.encryption 'gpg' is not supported"),
    ("{}", "{colspecs: [[0, 2]]}", "a fixed_width target needs options.widths"),
])
def test_bad_format_options_fail_at_load_naming_file_and_field(
    tmp_path: Path, source: str, target: str, message: str
) -> None:
    with pytest.raises(SpecError) as caught:
        _load(tmp_path, source, target)
    text = str(caught.value)
    assert "fmt_job.yaml" in text and "options" in text
    assert message in text
