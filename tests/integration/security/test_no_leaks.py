"""No secret anywhere: succeeding and failing jobs whose connections hold a known password and
token, then every place a secret could end up is searched for it: the Dagster instance on disk
(run storage, event log, compute logs), captured stdout/stderr of in-process and CLI runs,
exceptions, the audit log, and the Dagster GraphQL API of a real dagster-webserver."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import uuid
from pathlib import Path

import dagster as dg
import pytest
import requests
import sqlalchemy as sa
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url

from nexus_dagster import secrets
from nexus_dagster.dagster.factory import build_definitions
from nexus_dagster.spec.loader import load_project

VENV_BIN = Path(sys.executable).parent
SECRET = f"Pw-{uuid.uuid4().hex[:12]}-s3cret"
TOKEN = f"tok_{uuid.uuid4().hex}"
WRONG = f"Wrong-{uuid.uuid4().hex[:10]}"
NEEDLES = [SECRET, TOKEN, WRONG, urllib.parse.quote_plus(SECRET)]

CONNECTIONS = """\
# secrets only as references: ${{ENV}} and enc:
src_db:
  type: postgresql
  host: {host}
  port: {port}
  database: {db}
  user: {user}
  password: ${{LEAK_PG_PASSWORD}}
  sslpassword: ${{LEAK_TOKEN}}  # a secret driver option (unused without a client key)
dst_db:
  type: postgresql
  host: {host}
  port: {port}
  database: {db}
  user: {user}
  password: {enc}
bad_db:
  type: postgresql
  host: {host}
  port: {port}
  database: {db}
  user: {user}
  password: ${{LEAK_WRONG_PASSWORD}}
url_db:
  type: postgresql
  url: ${{LEAK_PG_URL}}
files:
  type: file
  base_dir: {files}
"""

JOBS = {
    "ok_job": """\
name: ok_job
sources: [{name: orders, source_type: database, connection: src_db, table: orders}]
transformations:
  - {name: big, transformation_type: filter, config: {condition: 'amount > 1'}}
targets:
  - {name: copy, target_type: database, connection: dst_db, table: orders_copy,
     write_mode: overwrite}
  - {name: export, target_type: file, connection: files, file_path: files/orders.parquet,
     write_mode: overwrite}
""",
    "missing_table_job": """\
name: missing_table_job
sources: [{name: orders, source_type: database, connection: url_db, table: no_such_table}]
targets:
  - {name: out, target_type: file, connection: files, file_path: files/x.csv}
""",
    "bad_password_job": """\
name: bad_password_job
sources: [{name: orders, source_type: database, connection: bad_db, table: orders}]
targets:
  - {name: out, target_type: file, connection: files, file_path: files/y.csv}
""",
    "bad_file_job": """\
name: bad_file_job
sources: [{name: raw, source_type: file, connection: files, file_path: files/missing.csv}]
targets:
  - {name: out, target_type: database, connection: dst_db, table: never}
""",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def leak_project(tmp_path, pg_url, monkeypatch):
    """A project whose connections hold SECRET (env and enc:) and TOKEN, on a role of its own."""
    url = make_url(pg_url)
    user = f"leak_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE ROLE {user} LOGIN PASSWORD '{SECRET}'"))
        conn.execute(sa.text(f'GRANT ALL ON DATABASE "{url.database}" TO {user}'))
        conn.execute(sa.text(f"GRANT ALL ON SCHEMA public TO {user}"))
        conn.execute(sa.text("CREATE TABLE orders (id int primary key, amount numeric(10,2))"))
        conn.execute(sa.text("INSERT INTO orders SELECT g, g * 1.5 FROM generate_series(1, 50) g"))
        conn.execute(sa.text(f"GRANT ALL ON orders TO {user}"))
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("MASTER_ENCRYPTION_KEY", key)
    monkeypatch.setenv("LEAK_PG_PASSWORD", SECRET)
    monkeypatch.setenv("LEAK_WRONG_PASSWORD", WRONG)
    monkeypatch.setenv("LEAK_TOKEN", TOKEN)
    monkeypatch.setenv(
        "LEAK_PG_URL", url.set(username=user, password=SECRET).render_as_string(False))
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("NEXUS_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    specs = tmp_path / "job_specs"
    specs.mkdir()
    (tmp_path / "files").mkdir()
    (specs / "connections.yaml").write_text(CONNECTIONS.format(
        host=url.host, port=url.port, db=url.database, user=user,
        enc=secrets.encrypt_value(SECRET, keys=key), files=tmp_path / "files"))
    for name, text in JOBS.items():
        (specs / f"{name}.yaml").write_text(text)
    yield tmp_path
    with admin.connect() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS orders_copy, orders"))
        conn.execute(sa.text(f"DROP OWNED BY {user}"))
        conn.execute(sa.text(f"DROP ROLE {user}"))
    admin.dispose()


def _hits(text: str) -> list[str]:
    return [needle for needle in NEEDLES if needle in text]


def _files_with_secrets(root: Path) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {n}" for n in NEEDLES if n.encode() in data]
    return found


def _graphql(port: int, query: str, variables: dict | None = None) -> str:
    response = requests.post(f"http://127.0.0.1:{port}/graphql",
                             json={"query": query, "variables": variables or {}}, timeout=60)
    response.raise_for_status()
    return response.text


RUNS = "{ runsOrError { ... on Runs { results { runId jobName status tags { key value } " \
       "runConfigYaml } } } }"
LOGS = """query($id: ID!) { logsForRun(runId: $id) { ... on EventConnection { events {
  __typename ... on MessageEvent { message level }
  ... on ExecutionStepFailureEvent { error { message stack causes { message stack } } }
  ... on RunFailureEvent { error { message stack } }
  ... on MaterializationEvent { metadataEntries { label description
      ... on TextMetadataEntry { text } ... on JsonMetadataEntry { jsonString }
      ... on MarkdownMetadataEntry { mdStr } ... on PathMetadataEntry { path } } } } } } }"""
ASSETS = """{ assetNodes { assetKey { path } description opNames kinds
  metadataEntries { label ... on TextMetadataEntry { text } ... on JsonMetadataEntry { jsonString }
  ... on MarkdownMetadataEntry { mdStr } } } }"""


def test_no_secret_anywhere(leak_project, capfd):
    root = leak_project
    specs = root / "job_specs"
    defs = build_definitions(load_project(specs))
    outcomes = {}
    errors = []
    with dg.DagsterInstance.get() as instance:
        for job in JOBS:
            result = defs.resolve_job_def(job).execute_in_process(
                instance=instance, raise_on_error=False)
            outcomes[job] = result.success
            for event in result.all_events:
                if event.is_step_failure:
                    errors.append(event.event_specific_data.error.to_string())
        run_ids = [r.run_id for r in instance.get_runs()]
    assert outcomes == {"ok_job": True, "missing_table_job": False,
                        "bad_password_job": False, "bad_file_job": False}
    assert len(errors) == 3 and not _hits("\n".join(errors))
    # a connection URL is shown with its password masked
    assert any(":***@" in e for e in errors), errors
    assert any("password authentication failed" in e for e in errors)

    # a failing run through the CLI, stdout and stderr of a real process
    cli = subprocess.run([str(VENV_BIN / "nexus"), "run", "bad_password_job",
                          "--specs", str(specs), "--log-level", "DEBUG"],
                         capture_output=True, text=True, timeout=180, cwd=root)
    assert cli.returncode == 1 and "password authentication failed" in cli.stdout + cli.stderr
    assert not _hits(cli.stdout + cli.stderr)

    captured = capfd.readouterr()
    assert "ok_job" in captured.out + captured.err  # the logs were captured
    assert not _hits(captured.out + captured.err)

    # the audit log: one line per run start/end and per load, no credentials
    lines = [json.loads(x) for x in (root / "audit.jsonl").read_text().splitlines()]
    assert [x["event"] for x in lines if x["job"] == "ok_job"] == [
        "run_start", "load", "load", "run_end"]
    assert sum(1 for x in lines if x["status"] == "failure") == 4

    # run storage, event log, compute logs: every file of the instance, byte by byte
    assert not _files_with_secrets(Path(os.environ["DAGSTER_HOME"]))
    assert not _files_with_secrets(root / "audit.jsonl")

    # the Dagster GraphQL API of a real webserver on the same instance
    port = _free_port()
    env = {**os.environ, "NEXUS_JOB_SPECS": str(specs)}
    server = subprocess.Popen(
        [str(VENV_BIN / "dagster-webserver"), "-m", "nexus_dagster.definitions",
         "-h", "127.0.0.1", "-p", str(port)],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "webserver died"
            time.sleep(0.5)
        responses = [_graphql(port, RUNS), _graphql(port, ASSETS)]
        runs = json.loads(responses[0])["data"]["runsOrError"]["results"]
        responses += [_graphql(port, LOGS, {"id": run["runId"]}) for run in runs]
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        output = server.communicate(timeout=30)[0]
    assert len(runs) == len(run_ids) + 1  # the CLI's run too
    assert "nexus/audit" in "".join(responses)   # audit records are Dagster metadata too
    assert "password authentication failed" in "".join(responses)
    for text in [*responses, output]:
        assert not _hits(text)
