"""The Nexus Python API through Dagster: every ETLManager method, history across processes,
encryption, connector health checks, and the Quick Start examples of the Nexus docs."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from nexus_dagster import (
    ConnectorFactory,
    DataSource,
    DataTarget,
    ETLJob,
    ETLManager,
    ETLStatus,
    SecurityManager,
    SourceType,
    SpecError,
    TargetType,
    Transformation,
    TransformationType,
)
from tests.integration.dedicated_pg import self_signed

REPO = Path(__file__).resolve().parents[3]
DOCS = REPO.parent / "shared" / "NEXUS_DOCS.md"
QUICKSTART = Path(__file__).with_name("nexus_quickstart.md")
PYTHON = sys.executable


def make_db(path: Path, rows: int = 3) -> Path:
    with sqlite3.connect(path) as con:
        con.execute("create table users (id integer primary key, email text, score real)")
        con.executemany(
            "insert into users values (?, ?, ?)",
            [(i, f" User{i}@Example.com ", i * 1.5) for i in range(1, rows + 1)],
        )
    return path


def users_job(tmp_path: Path, name: str = "Export Users", **source_extra) -> ETLJob:
    db = make_db(tmp_path / "app.db") if not (tmp_path / "app.db").exists() else tmp_path / "app.db"
    return ETLJob(
        name=name,
        description="Export users to CSV",
        sources=[DataSource(
            name="users",
            source_type=SourceType.DATABASE,
            connection_params={"type": "sqlite", "database": str(db), **source_extra},
            table="users",
        )],
        transformations=[Transformation(
            name="clean",
            transformation_type=TransformationType.MAP,
            config={"mappings": {"email": "lower(strip(email))"}},
            order=1,
        )],
        targets=[DataTarget(
            name="csv_export",
            target_type=TargetType.FILE,
            file_path=str(tmp_path / "out" / "users.csv"),
            file_format="csv",
        )],
    )


@pytest.fixture
def manager(tmp_path: Path) -> ETLManager:
    return ETLManager(workspace_dir=tmp_path / "ws")


def test_crud(manager: ETLManager, tmp_path: Path):
    job = users_job(tmp_path)
    job_id = manager.create_job(job)
    assert job_id and (manager.jobs_dir / "export_users.yaml").exists()
    assert manager.get_job(job_id).name == "Export Users"
    assert [j.job_id for j in manager.list_jobs()] == [job_id]

    with pytest.raises(SpecError, match="is taken by job"):
        manager.create_job(users_job(tmp_path))

    changed = manager.get_job(job_id).model_copy(update={"description": "changed"})
    manager.update_job(changed)
    assert manager.get_job(job_id).description == "changed"

    manager.delete_job(job_id)
    assert manager.list_jobs() == []
    with pytest.raises(SpecError, match="no job with job_id"):
        manager.get_job(job_id)
    with pytest.raises(SpecError, match="no job with job_id"):
        manager.update_job(changed)


def test_execute_and_metrics(manager: ETLManager, tmp_path: Path):
    job_id = manager.create_job(users_job(tmp_path))
    metrics = manager.execute_job(job_id)
    assert metrics.status is ETLStatus.SUCCESS, metrics.errors
    assert (metrics.rows_extracted, metrics.rows_transformed, metrics.rows_loaded) == (3, 3, 3)
    assert metrics.rows_failed == 0 and metrics.errors == []
    assert metrics.duration > 0 and metrics.end_time >= metrics.start_time
    lines = (tmp_path / "out/users.csv").read_text().splitlines()
    assert lines[1].startswith('1,"user1@example.com"')

    second = manager.execute_job(job_id)
    history = manager.get_job_metrics(job_id, limit=10)
    assert [m.run_id for m in history] == [second.run_id, metrics.run_id]
    assert len(manager.get_job_metrics(job_id, limit=1)) == 1


def test_failed_run_returns_failed_with_masked_error(manager: ETLManager, tmp_path: Path):
    job = users_job(tmp_path, password="Sup3r-Secret-Pw")
    job.sources[0].table = "no_such_table"
    job_id = manager.create_job(job)
    metrics = manager.execute_job(job_id)
    assert metrics.status is ETLStatus.FAILED
    assert metrics.errors and "no_such_table" in metrics.errors[0]
    assert "Sup3r-Secret-Pw" not in repr(metrics)
    assert manager.get_job_metrics(job_id)[0].status is ETLStatus.FAILED


def test_unregistered_type_fails_at_create(manager: ETLManager, tmp_path: Path):
    job = users_job(tmp_path)
    job.sources[0] = DataSource(name="events", source_type="snowpipe",
                                connection_params={"brokers": "localhost:9092"})
    with pytest.raises(SpecError, match="source_type 'snowpipe' is not a registered connector"):
        manager.create_job(job)


def test_encrypted_params(tmp_path: Path):
    security = SecurityManager(master_key="your-secure-key")
    manager = ETLManager(workspace_dir=tmp_path / "ws", security=security)
    job = users_job(tmp_path, password="Sup3r-Secret-Pw")
    job.sources[0].encrypted = True
    job_id = manager.create_job(job)
    saved = (manager.jobs_dir / "export_users.yaml").read_text()
    assert "Sup3r-Secret-Pw" not in saved and "password: enc:" in saved
    token = manager.get_job(job_id).sources[0].connection_params["password"]
    assert security.decrypt(token) == "Sup3r-Secret-Pw"
    assert manager.execute_job(job_id).status is ETLStatus.SUCCESS

    wrong = ETLManager(workspace_dir=tmp_path / "ws", security=SecurityManager("other-key"))
    failed = wrong.execute_job(job_id)
    assert failed.status is ETLStatus.FAILED
    assert "cannot be decrypted" in failed.errors[0]

    with pytest.raises(SpecError, match="cannot be decrypted"):
        SecurityManager("other-key").decrypt(token)


def test_history_survives_process_restart(tmp_path: Path):
    make_db(tmp_path / "app.db")
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from pathlib import Path
        from test_etl_manager import users_job
        from nexus_dagster import ETLManager
        manager = ETLManager(workspace_dir={str(tmp_path / 'ws')!r})
        job_id = manager.create_job(users_job(Path({str(tmp_path)!r})))
        print(job_id, manager.execute_job(job_id).status.value)
    """)
    first = subprocess.run([PYTHON, "-c", script], capture_output=True, text=True, timeout=180)
    assert first.returncode == 0, first.stderr[-2000:]
    job_id, status = first.stdout.split()[-2:]
    assert status == "success"
    read = subprocess.run(
        [PYTHON, "-c", "import sys; from nexus_dagster import ETLManager; "
         f"m = ETLManager(workspace_dir={str(tmp_path / 'ws')!r}); "
         "h = m.get_job_metrics(sys.argv[1], limit=5); "
         "print(len(h), h[0].status.value, h[0].rows_loaded)", job_id],
        capture_output=True, text=True, timeout=120,
    )
    assert read.returncode == 0, read.stderr[-2000:]
    assert read.stdout.split()[-3:] == ["1", "success", "3"]


def test_python_job_loads_in_code_location(tmp_path: Path):
    security = SecurityManager(master_key="code-location-key")
    manager = ETLManager(workspace_dir=tmp_path / "ws", security=security)
    job = users_job(tmp_path, password="pw-in-python-job")
    job.sources[0].encrypted = True
    manager.create_job(job)
    env = {**os.environ, "NEXUS_JOB_SPECS": str(manager.jobs_dir),
           "DAGSTER_HOME": str(manager.dagster_home), "MASTER_ENCRYPTION_KEY": "code-location-key"}
    done = subprocess.run(
        [str(Path(PYTHON).parent / "dagster"), "job", "execute", "-m", "nexus_dagster.definitions",
         "-j", "export_users"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "pw-in-python-job" not in done.stdout + done.stderr
    assert (tmp_path / "out/users.csv").exists()
    # the run is in the same history as execute_job's
    assert manager.get_job_metrics(manager.list_jobs()[0].job_id)[0].rows_loaded == 3


def test_connector_factory_health_checks(tmp_path: Path, pg_url: str):
    make_db(tmp_path / "app.db")
    ok = DataSource(name="db", source_type=SourceType.DATABASE,
                    connection_params={"type": "sqlite", "database": str(tmp_path / "app.db")},
                    table="users")
    assert ConnectorFactory.create_source_connector(ok, SecurityManager()).test_connection()
    url = sa.engine.make_url(pg_url)
    reachable = DataTarget(name="pg", target_type=TargetType.DATABASE, table="t",
                           connection_params={"type": "postgresql", "host": url.host,
                                              "port": url.port, "database": url.database,
                                              "user": url.username, "password": url.password})
    assert ConnectorFactory.create_target_connector(reachable).test_connection()
    down = reachable.model_copy(update={"connection_params": {
        **reachable.connection_params, "port": 1, "timeout": 2}})
    assert ConnectorFactory.create_target_connector(down).test_connection() is False


# --------------------------------------------------------------------- documented examples
def test_quickstart_copy_matches_the_docs():
    if not DOCS.exists():
        pytest.skip("shared/NEXUS_DOCS.md is not beside this checkout")
    copy = QUICKSTART.read_text(encoding="utf-8").split("-->\n\n", 1)[1]
    assert copy in DOCS.read_text(encoding="utf-8")


def docs_example(title: str) -> str:
    text = QUICKSTART.read_text(encoding="utf-8")
    start = text.index(title)
    block = re.search(r"```python\n(.*?)```", text[start:], re.S)
    assert block, title
    return block.group(1)


def nexus_imports(code: str) -> str:
    """The one change the examples need: import from nexus_dagster, not etl_core."""
    return code.replace("from etl_core import", "from nexus_dagster import")


@pytest.fixture
def quickstart_pg(postgres_admin_url: str, monkeypatch) -> str:
    """The servers the Quick Start examples expect: localhost, databases mydb and warehouse,
    users postgres/password and etl_user/password, on the test PostgreSQL (port via PGPORT)."""
    admin = sa.create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as con:
        con.execute(sa.text("ALTER ROLE postgres PASSWORD 'password'"))
        con.execute(sa.text(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'etl_user') "
            "THEN CREATE ROLE etl_user LOGIN PASSWORD 'password'; END IF; END $$"))
        for db, owner in (("mydb", "postgres"), ("warehouse", "etl_user")):
            con.execute(sa.text(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            con.execute(sa.text(f"CREATE DATABASE {db} OWNER {owner}"))
    admin.dispose()
    port = str(sa.engine.make_url(postgres_admin_url).port)
    mydb = sa.create_engine(
        sa.engine.make_url(postgres_admin_url).set(database="mydb"), isolation_level="AUTOCOMMIT")
    with mydb.connect() as con:
        con.execute(sa.text("CREATE TABLE users (id int PRIMARY KEY, name text, email text, "
                            "birthdate date)"))
        con.execute(sa.text("INSERT INTO users VALUES (1, 'Zoë', ' ZOE@Example.com', "
                            "'1990-02-03'), (2, 'Ann', 'ann@example.com ', '1985-07-08')"))
    mydb.dispose()
    monkeypatch.setenv("PGPORT", port)
    return port


def test_quickstart_example_1(tmp_path: Path, quickstart_pg: str):
    code = nexus_imports(docs_example("### Example 1: Simple Database to File"))
    assert "from nexus_dagster import ETLManager" in code
    done = subprocess.run([PYTHON, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=180, env=os.environ.copy())
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "Status: success" in done.stdout
    assert "Rows: 2" in done.stdout
    assert "Zoë" in (tmp_path / "output/users.csv").read_text(encoding="utf-8")
    saved = next((tmp_path / "etl_workspace/jobs").glob("*.yaml"))
    assert yaml.safe_load(saved.read_text())["name"] == "Export Users"


@pytest.fixture
def https_api(tmp_path: Path):
    """A real HTTPS API on 127.0.0.1 serving /data to 'Authorization: Bearer TOKEN'."""
    import json
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    records = [
        {"id": 1, "email": "  Zoe@Example.COM ", "birthdate": "1990-02-03", "city": "Köln"},
        {"id": 2, "email": "ann@example.com", "birthdate": "1985-07-08", "city": "Paris"},
        {"id": 3, "email": "BOB@EXAMPLE.COM", "birthdate": "2000-12-31", "city": None},
    ]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.headers.get("Authorization") != "Bearer TOKEN":
                self.send_response(401)
                self.end_headers()
                return
            body = json.dumps({"data": records}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    cert, key = self_signed(tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://localhost:{server.server_address[1]}/data", cert
    server.shutdown()
    server.server_close()


def test_quickstart_example_2(tmp_path: Path, quickstart_pg: str, https_api, postgres_admin_url):
    endpoint, cert = https_api
    example_1 = nexus_imports(docs_example("### Example 1: Simple Database to File"))
    example_2 = nexus_imports(docs_example("### Example 2: API to Database with Transformation"))
    assert 'api_endpoint="https://api.example.com/data"' in example_2
    # the one change: the API lives on this machine (HTTPS with a local certificate)
    example_2 = example_2.replace("https://api.example.com/data", endpoint)
    check = "\nprint('EXAMPLE2', metrics.status.value, metrics.rows_loaded, metrics.errors)\n"
    env = {**os.environ, "REQUESTS_CA_BUNDLE": str(cert)}
    done = subprocess.run([PYTHON, "-c", example_1 + example_2 + check], cwd=tmp_path,
                          capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "EXAMPLE2 success 3 []" in done.stdout, done.stdout[-2000:]
    warehouse = sa.create_engine(sa.engine.make_url(postgres_admin_url).set(database="warehouse"))
    with warehouse.connect() as con:
        rows = con.execute(sa.text(
            "select email, city, age > 20, processed_at is not null from customers order by id"
        )).all()
    warehouse.dispose()
    assert rows == [("zoe@example.com", "Köln", True, True),
                    ("ann@example.com", "Paris", True, True),
                    ("bob@example.com", None, True, True)]
