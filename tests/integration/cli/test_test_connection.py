"""`nexus test-connection`: every named connection (or the given ones) checked against the real
PostgreSQL server; ok with where it points, FAILED with the masked reason, exit 1 on a failure,
and the wrong password nowhere in the output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from nexus_dagster.cli import main

pytestmark = pytest.mark.postgres

WRONG_PASSWORD = "wrong-pw-7c1e9f"


def connections_folder(tmp_path: Path, url: str, *, literal_wrong: bool) -> Path:
    parsed = make_url(url)
    folder = tmp_path / "job_specs"
    folder.mkdir()
    wrong = WRONG_PASSWORD if literal_wrong else "${NEXUS_TEST_WRONG_PW}"
    common = (f"    type: postgresql\n    host: {parsed.host}\n    port: {parsed.port}\n"
              f"    database: {parsed.database}\n    user: {parsed.username}\n")
    (folder / "connections.yaml").write_text(
        "good_pg:\n" + common + f"    password: {parsed.password}\n"
        "bad_pg:\n" + common + f"    password: {wrong}\n"
    )
    return folder


def test_good_connection_ok_and_wrong_password_failed_masked(tmp_path, pg_url, capsys):
    folder = connections_folder(tmp_path, pg_url, literal_wrong=True)
    assert main(["test-connection", "--specs", str(folder)]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("bad_pg: FAILED: connecting to postgresql")
    assert "password authentication failed" in lines[0]
    assert lines[1].startswith("good_pg: ok (database: postgresql")
    assert WRONG_PASSWORD not in out
    assert make_url(pg_url).password not in out


def test_only_the_named_connection_is_checked(tmp_path, pg_url, capsys):
    folder = connections_folder(tmp_path, pg_url, literal_wrong=True)
    assert main(["test-connection", "--specs", str(folder), "good_pg"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("good_pg: ok") and "bad_pg" not in out


def test_unknown_name_suggests_the_closest(tmp_path, pg_url, capsys):
    folder = connections_folder(tmp_path, pg_url, literal_wrong=True)
    assert main(["test-connection", "--specs", str(folder), "good_gp"]) == 1
    assert "connection 'good_gp' is not in connections.yaml (fix: did you mean 'good_pg'?" in \
        capsys.readouterr().err


def test_env_secret_of_the_console_script_masked(tmp_path, pg_url):
    folder = connections_folder(tmp_path, pg_url, literal_wrong=False)
    env = {"PATH": "/usr/bin:/bin", "NEXUS_TEST_WRONG_PW": WRONG_PASSWORD}
    done = subprocess.run([str(Path(sys.executable).parent / "nexus"), "test-connection",
                           "--specs", str(folder)], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 1, done.stderr
    assert "bad_pg: FAILED" in done.stdout and "good_pg: ok" in done.stdout
    assert WRONG_PASSWORD not in done.stdout + done.stderr
