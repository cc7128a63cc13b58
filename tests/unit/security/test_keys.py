"""Key rotation: `nexus rotate-keys` re-encrypts enc: values in place, keeping the YAML as is."""

from __future__ import annotations

import io
import sys

import pytest
from cryptography.fernet import Fernet, InvalidToken

from nexus_dagster import cli, secrets
from nexus_dagster.errors import SpecError
from nexus_dagster.keys import TOKEN_RE, rotate_paths

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()

SPEC = """\
# connections: keep this comment
app_db:
  type: postgresql   # trailing comment
  host: db.internal
  password: {a}
  user: "etl"
other:
  token: "{b}"
  list: [1, 2,   3]
"""


def _make(tmp_path, keys=OLD):
    a = secrets.encrypt_value("pw-one", keys=keys)
    b = secrets.encrypt_value("tok-two", keys=keys)
    folder = tmp_path / "job_specs"
    folder.mkdir()
    path = folder / "connections.yaml"
    path.write_text(SPEC.format(a=a, b=b))
    return folder, path


def test_rotate_reencrypts_with_first_key_and_keeps_formatting(tmp_path):
    folder, path = _make(tmp_path)
    before = path.read_text()
    rotated = rotate_paths([folder], keys=f"{NEW},{OLD}")
    assert rotated == {path: 2}
    after = path.read_text()
    tokens = TOKEN_RE.findall(after)
    assert len(tokens) == 2
    # every line except the two token lines is byte-identical
    changed = [(x, y) for x, y in zip(before.splitlines(), after.splitlines(), strict=True)
               if x != y]
    assert len(changed) == 2
    assert all("enc:" in y for _, y in changed)
    assert "# trailing comment" in after and 'token: "enc:' in after
    # the new key alone decrypts them; the old key alone does not
    values = [secrets.decrypt_token(t, keys=NEW) for t in tokens]
    assert values == ["pw-one", "tok-two"]
    with pytest.raises(InvalidToken):
        Fernet(OLD).decrypt(tokens[0].encode())


def test_rotate_with_unknown_token_changes_nothing(tmp_path):
    folder, path = _make(tmp_path)
    stranger = secrets.encrypt_value("x-y-z", keys=Fernet.generate_key().decode())
    job = folder / "job.yaml"
    job.write_text(f"name: j\n# a comment\nparams:\n  password: {stranger}\n")
    before = {p: p.read_text() for p in (path, job)}
    with pytest.raises(SpecError) as info:
        rotate_paths([folder], keys=f"{NEW},{OLD}")
    assert "job.yaml:4" in str(info.value)
    assert {p: p.read_text() for p in (path, job)} == before


def test_cli_rotate_keys(tmp_path, monkeypatch, capsys):
    folder, path = _make(tmp_path)
    monkeypatch.setenv(secrets.MASTER_KEY_ENV, f"{NEW},{OLD}")
    assert cli.main(["rotate-keys", str(folder)]) == 0
    assert "2 value(s)" in capsys.readouterr().out
    monkeypatch.setenv(secrets.MASTER_KEY_ENV, NEW)
    assert [secrets.decrypt_token(t) for t in TOKEN_RE.findall(path.read_text())] == [
        "pw-one", "tok-two"]


def test_cli_encrypt_reads_stdin_never_argv(monkeypatch, capsys):
    monkeypatch.setenv(secrets.MASTER_KEY_ENV, NEW)
    monkeypatch.setattr(sys, "stdin", io.StringIO("s3cr3t-value\n"))
    assert cli.main(["encrypt"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("enc:") and "s3cr3t" not in token
    assert secrets.decrypt_token(token[4:]) == "s3cr3t-value"
    with pytest.raises(SystemExit):  # a value on the command line is refused by argparse
        cli.main(["encrypt", "s3cr3t-value"])


def test_keygen_makes_a_fernet_key(capsys):
    assert cli.main(["keygen"]) == 0
    Fernet(capsys.readouterr().out.strip().encode())
