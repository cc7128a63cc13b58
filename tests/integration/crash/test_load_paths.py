"""Crash safety of every load path of the general (Arrow) plan: PostgreSQL (COPY FROM STDIN,
pushdown off), MariaDB (LOAD DATA LOCAL INFILE), SQLite (INSERTs in one transaction), local CSV
and Parquet files (temporary file + rename) and S3 on moto (temporary object, multipart upload).

Each test runs the job once (rows 1..FIRST), adds rows, starts a real runner process (``nexus
run`` or ``dagster job execute``), waits until the source is held at row STRIKE_AT *and* the
target shows the load in progress (rows in an open COPY / transaction, a journal, a temporary
file, a multipart upload), then strikes: SIGKILL of the runner's process group, or the loss of
the loading connection. Then: the target is unchanged (digest of its rows or bytes), the cursor
is unchanged, the next run is exact (target rows == source rows, cursor at TOTAL), it ran on
the path the test names (``nexus/plan``, ``nexus/bulk_load``), and nothing is left over
(staging, temporary files, multipart uploads, scratch folders of dead processes).
"""

from __future__ import annotations

import hashlib
import os
import signal
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from nexus_dagster.connectors.file import is_temp_file
from nexus_dagster.scratch import remove_orphans
from tests.integration.crash import support as crash
from tests.integration.dedicated_pg import autocommit_engine, run_sql
from tests.support import cleanup, make_store, run_job

pytestmark = pytest.mark.slow


@dataclass
class LoadPath:
    """One load path: the target spec, how to see it loading, its state, rows and leftovers."""

    target: dict[str, Any]
    loading: Callable[[], bool]
    state: Callable[[], Any]
    rows: Callable[[], tuple[int, str]]
    leftovers: Callable[[], list[str]]
    bulk_load: str | None


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A project instance ($DAGSTER_HOME) of the test's own; the general path forced."""
    folder = tmp_path / "home"
    folder.mkdir()
    (folder / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(folder))
    monkeypatch.setenv("NEXUS_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    monkeypatch.setenv("NEXUS_PUSHDOWN", "0")
    return folder


def _run_in_process(specs: Path) -> dg.ExecuteInProcessResult:
    with dg.DagsterInstance.get() as instance:
        return run_job(specs, crash.JOB, instance)


def _dead_scratch() -> list[str]:
    """MariaDB LOAD DATA / spool scratch folders whose process is gone."""
    found = []
    for prefix in ("nexus-load-", "nexus-spool-"):
        for entry in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
            pid = entry.name[len(prefix):].split("-", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                found.append(str(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _crash_and_heal(tmp_path: Path, source_url: str, path: LoadPath, *, how: str,
                    strike: Callable[[crash.Runner], None], killed: bool,
                    width: int = 1000) -> list[str]:
    """The scenario of the module docstring; returns the leftovers seen right after the
    strike (before the next run cleaned them)."""
    crash.make_source(source_url, width)
    specs = crash.write_project(tmp_path, source_url, path.target)
    first = _run_in_process(specs)
    assert first.success
    assert crash.cursor_value() == str(crash.FIRST)
    before = path.state()
    assert path.rows() == crash.table_digest(source_url, "orders")
    crash.add_rows(source_url, crash.FIRST + 1, crash.TOTAL)

    runner = crash.hold_and_launch(source_url, specs, how, tmp_path / "runner.log",
                                   path.loading)
    try:
        strike(runner)
    finally:
        crash.release(source_url)
    code = runner.wait()
    if killed:
        assert code == -signal.SIGKILL
    else:
        assert code not in (0, -signal.SIGKILL), runner.output()

    assert path.state() == before, "the target changed"
    assert crash.cursor_value() == str(crash.FIRST), "the cursor moved"
    after_strike = path.leftovers()

    healed = _run_in_process(specs)
    assert healed.success
    meta = crash.target_metadata()
    assert meta["nexus/plan"].value == "general"
    if path.bulk_load is not None:
        assert meta["nexus/bulk_load"].value == path.bulk_load
    assert crash.cursor_value() == str(crash.TOTAL)
    final = path.rows()
    assert final == crash.source_digest(source_url) and final[0] == crash.TOTAL
    assert path.leftovers() == []
    assert _dead_scratch() == []
    return after_strike


def _kill(runner: crash.Runner) -> None:
    runner.kill()


# ----------------------------------------------------------------------------- databases
def _db_path(url: str, bulk_load: str, loading: Callable[[], bool],
             leftovers: Callable[[], list[str]] = list) -> LoadPath:
    return LoadPath(
        target={"target_type": "database", "connection_params": {"url": url},
                "table": "orders_copy"},
        loading=loading,
        state=lambda: crash.table_digest(url, "orders_copy"),
        rows=lambda: crash.table_digest(url, "orders_copy"),
        leftovers=leftovers,
        bulk_load=bulk_load,
    )


def _pg_copying(url: str) -> Callable[[], bool]:
    """Rows are in the open COPY into orders_copy."""
    def check() -> bool:
        engine = autocommit_engine(url)
        try:
            with engine.connect() as conn:
                return bool(conn.execute(sa.text(
                    "SELECT coalesce(max(tuples_processed), 0) FROM pg_stat_progress_copy "
                    "WHERE datname = current_database() AND command = 'COPY FROM' "
                    "AND relid = to_regclass('orders_copy')")).scalar())
        finally:
            engine.dispose()
    return check


def _pg_path(url: str) -> LoadPath:
    return _db_path(url, "COPY FROM STDIN", _pg_copying(url))


@pytest.mark.postgres
def test_general_path_into_postgres_survives_sigkill_of_the_runner(tmp_path, home, pg_url):
    _crash_and_heal(tmp_path, pg_url, _pg_path(pg_url), how="nexus", strike=_kill, killed=True)


@pytest.mark.postgres
def test_general_path_into_postgres_fails_cleanly_when_the_loading_connection_is_terminated(
        tmp_path, home, pg_url):
    def terminate(runner: crash.Runner) -> None:
        run_sql(pg_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_progress_copy "
                        "WHERE datname = current_database() AND command = 'COPY FROM'")

    _crash_and_heal(tmp_path, pg_url, _pg_path(pg_url), how="dagster", strike=terminate,
                    killed=False)


#: ~2 KB rows: well over one 32 MB LOAD DATA chunk reaches MariaDB before the held row
MARIADB_WIDTH = 2000


def _maria_loader(url: str) -> int | None:
    """The MariaDB session whose open transaction holds loaded rows, if any."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(
                "SELECT t.trx_mysql_thread_id FROM information_schema.INNODB_TRX t "
                "JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id "
                "WHERE p.DB = DATABASE() AND t.trx_rows_modified > 0")).scalar()
    finally:
        engine.dispose()


def _maria_path(url: str) -> LoadPath:
    return _db_path(url, "LOAD DATA LOCAL INFILE", lambda: _maria_loader(url) is not None,
                    _dead_scratch)


@pytest.mark.postgres
@pytest.mark.mariadb
def test_load_data_into_mariadb_survives_sigkill_of_the_runner(tmp_path, home, pg_url,
                                                               mariadb_url):
    seen = _crash_and_heal(tmp_path, pg_url, _maria_path(mariadb_url), how="dagster",
                           strike=_kill, killed=True, width=MARIADB_WIDTH)
    assert seen, "the killed LOAD DATA left no scratch folder: the strike came too late"


@pytest.mark.postgres
@pytest.mark.mariadb
def test_load_data_into_mariadb_fails_cleanly_when_the_loading_connection_is_killed(
        tmp_path, home, pg_url, mariadb_url):
    def kill_connection(runner: crash.Runner) -> None:
        loader = _maria_loader(mariadb_url)
        engine = sa.create_engine(mariadb_url, poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            conn.execute(sa.text(f"KILL CONNECTION {int(loader)}"))
        engine.dispose()

    _crash_and_heal(tmp_path, pg_url, _maria_path(mariadb_url), how="nexus",
                    strike=kill_connection, killed=False, width=MARIADB_WIDTH)


def _sqlite_path(tmp_path: Path) -> LoadPath:
    db = tmp_path / "target.db"
    journal = Path(f"{db}-journal")
    path = _db_path(f"sqlite:///{db}", "INSERT", journal.exists,
                    lambda: [str(journal)] if journal.exists() else [])
    return path


@pytest.mark.postgres
def test_sqlite_load_survives_sigkill_of_the_runner(tmp_path, home, pg_url):
    # the open transaction's rollback journal was the evidence of the load in progress;
    # the first open after the kill (the unchanged-target check) rolled it back
    seen = _crash_and_heal(tmp_path, pg_url, _sqlite_path(tmp_path), how="nexus",
                           strike=_kill, killed=True)
    assert seen == []


def _terminate_source(url: str) -> Callable[[crash.Runner], None]:
    def strike(runner: crash.Runner) -> None:
        run_sql(url, f"SELECT pg_terminate_backend({crash.source_backend(url)})")
    return strike


@pytest.mark.postgres
def test_sqlite_load_fails_cleanly_when_the_source_connection_is_lost(tmp_path, home, pg_url):
    _crash_and_heal(tmp_path, pg_url, _sqlite_path(tmp_path), how="dagster",
                    strike=_terminate_source(pg_url), killed=False)


# ----------------------------------------------------------------------------- files
def _file_rows(path: Path, fmt: str) -> tuple[int, str]:
    if not path.exists():
        return crash.digest([])
    if fmt == "csv":
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
            column_types={"amount": "string"}))
    else:
        table = pq.read_table(path)
    return crash.digest(zip(*(table.column(c).to_pylist() for c in ("id", "amount", "note")),
                            strict=True))


def _file_path(folder: Path, fmt: str) -> LoadPath:
    final = folder / f"orders.{fmt}"

    def temps() -> list[str]:
        return sorted(str(p) for p in folder.glob(f".orders.{fmt}.tmp-*"))

    return LoadPath(
        target={"target_type": "file", "file_path": str(final)},
        loading=lambda: any(Path(p).stat().st_size > 0 for p in temps()),
        state=lambda: hashlib.sha256(final.read_bytes()).hexdigest(),
        rows=lambda: _file_rows(final, fmt),
        leftovers=temps,
        bulk_load=None,
    )


@pytest.mark.postgres
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_local_file_append_survives_sigkill_of_the_runner(tmp_path, home, pg_url, fmt):
    seen = _crash_and_heal(tmp_path, pg_url, _file_path(tmp_path / "out", fmt), how="nexus",
                           strike=_kill, killed=True)
    assert len(seen) == 1  # the killed write's temporary file, removed by the next write


@pytest.mark.postgres
def test_local_file_append_fails_cleanly_when_the_source_connection_is_lost(tmp_path, home,
                                                                             pg_url):
    seen = _crash_and_heal(tmp_path, pg_url, _file_path(tmp_path / "out", "csv"),
                           how="dagster", strike=_terminate_source(pg_url), killed=False)
    assert seen == []  # a failing write removes its own temporary file


# ----------------------------------------------------------------------------- S3
@pytest.fixture
def s3_store():
    store = make_store("s3")
    yield store
    cleanup(store)


def _s3_path(store) -> LoadPath:
    conn = store.connector()
    fs = conn.filesystem()
    bucket = conn.bucket()

    def objects() -> dict[str, str]:
        return {p: hashlib.sha256(fs.cat_file(p)).hexdigest()
                for p in fs.find(bucket) if not is_temp_file(p)}

    def uploads() -> list[str]:
        fs.invalidate_cache()
        return [u["Key"] for u in fs.list_multipart_uploads(bucket)]

    def leftovers() -> list[str]:
        fs.invalidate_cache()
        return sorted([p for p in fs.find(bucket) if is_temp_file(p)] + uploads())

    def rows() -> tuple[int, str]:
        fs.invalidate_cache()
        parts = sorted(p for p in fs.find(f"{bucket}/exports/orders/") if p.endswith(".csv"))
        found = []
        for part in parts:
            table = pacsv.read_csv(fs.open(part, "rb"), convert_options=pacsv.ConvertOptions(
                column_types={"amount": "string"}))
            found += zip(*(table.column(c).to_pylist() for c in ("id", "amount", "note")),
                         strict=True)
        return crash.digest(found)

    def state() -> dict[str, str]:
        fs.invalidate_cache()
        return objects()

    return LoadPath(
        target={"target_type": "s3", "connection_params": store.params,
                "file_path": "exports/orders.csv"},
        loading=lambda: bool(uploads()),
        state=state,
        rows=rows,
        leftovers=leftovers,
        bulk_load=None,
    )


@pytest.mark.postgres
@pytest.mark.s3
def test_s3_append_survives_sigkill_of_the_runner(tmp_path, home, pg_url, s3_store):
    seen = _crash_and_heal(tmp_path, pg_url, _s3_path(s3_store), how="dagster", strike=_kill,
                           killed=True)
    # the killed upload: no object, an unfinished multipart upload that the next write aborted
    assert len(seen) == 1 and "/.part-" in f"/{seen[0].rsplit('/', 1)[-1]}"


def test_scratch_folders_of_dead_processes_are_removed(tmp_path):
    dead = tmp_path / "nexus-load-999999999-abc"
    dead.mkdir()
    (dead / "rows.tsv").write_bytes(b"1\n")
    mine = tmp_path / f"nexus-load-{os.getpid()}-abc"
    mine.mkdir()
    assert remove_orphans("nexus-load-", tmp_path) == [dead]
    assert not dead.exists() and mine.exists()
