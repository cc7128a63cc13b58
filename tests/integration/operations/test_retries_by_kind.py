"""Retries by kind against real PostgreSQL: the target's session killed mid-load (by
``pg_terminate_backend`` from another connection) is retried to success with every row once;
killed on every attempt, the run ends in one clear failure after its retries; a wrong password
fails at once, without a retry. Attempts are counted from the run's event log."""

from __future__ import annotations

import textwrap
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from nexus_dagster.dagster.factory import build_definitions
from nexus_dagster.failures import is_retriable
from nexus_dagster.spec.loader import load_project
from tests.integration.operations.conftest import make_source

pytestmark = pytest.mark.postgres

#: custom code run on each batch: past row 10 it ends every other session of the target
#: database (the load's COPY), once (marker file) or on every attempt
KILLER = """\
import pathlib
import sqlalchemy
marker = pathlib.Path({marker!r})
if int(df["id"].max()) > 10 and ({always} or not marker.exists()):
    marker.write_text("killed")
    engine = sqlalchemy.create_engine({url!r})
    with engine.connect() as connection:
        connection.exec_driver_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    engine.dispose()
"""


def _spec(folder: Path, url: str, code: str | None = None, retries: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    steps = ""
    if code:
        steps = ("transformations:\n  - name: killer\n    transformation_type: custom_code\n"
                 "    config: {per_batch: true}\n    custom_code: |\n"
                 + textwrap.indent(code, "      "))
    (folder / "load.yaml").write_text(
        f"name: load\nretries: {{max_retries: {retries}, delay_seconds: 0.2}}\n"
        "sources:\n  - {name: events, source_type: database, table: events, batch_size: 5,\n"
        "     connection_params: {type: sqlite, database: data/source.db}}\n"
        + steps +
        "targets:\n  - {name: out, target_type: database, table: events_out, write_mode: append,\n"
        "     connection_params: {url: \"${TARGET_URL}\"}}\n")
    return folder


def _run(folder: Path, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    job = build_definitions(load_project(folder)).resolve_job_def("load")
    return job.execute_in_process(instance=instance, raise_on_error=False)


def _count(result: dg.ExecuteInProcessResult, kind: dg.DagsterEventType) -> int:
    return sum(1 for e in result.all_events if e.event_type == kind)


def _rows(url: str) -> tuple[int, int] | None:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table("events_out"):
                return None
            return tuple(connection.exec_driver_sql(
                "SELECT count(*), count(DISTINCT id) FROM events_out").one())
    finally:
        engine.dispose()


def test_target_session_killed_mid_load_is_retried_and_loads_every_row_once(
    tmp_path: Path, pg_url: str, monkeypatch, instance
):
    total = make_source(tmp_path / "data/source.db", days=5)
    monkeypatch.setenv("TARGET_URL", pg_url)
    code = KILLER.format(marker=str(tmp_path / "killed"), always=False, url=pg_url)
    result = _run(_spec(tmp_path / "specs", pg_url, code), instance)
    assert (tmp_path / "killed").exists()
    assert result.success
    assert _count(result, dg.DagsterEventType.STEP_UP_FOR_RETRY) == 1
    assert _rows(pg_url) == (total, total)


def test_target_killed_on_every_attempt_ends_in_one_failure_after_the_retries(
    tmp_path: Path, pg_url: str, monkeypatch, instance
):
    make_source(tmp_path / "data/source.db", days=5)
    monkeypatch.setenv("TARGET_URL", pg_url)
    code = KILLER.format(marker=str(tmp_path / "killed"), always=True, url=pg_url)
    result = _run(_spec(tmp_path / "specs", pg_url, code, retries=2), instance)
    assert not result.success
    assert _count(result, dg.DagsterEventType.STEP_UP_FOR_RETRY) == 2
    failures = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert len(failures) == 1
    data = failures[0].step_failure_data
    text = str(data.error) + str(data.user_failure_data)
    assert "connection" in text and "attempt 3 of 3: retries exhausted" in text
    assert _rows(pg_url) in (None, (0, 0))  # nothing committed


def test_wrong_password_fails_at_once_without_retry(
    tmp_path: Path, pg_url: str, monkeypatch, instance
):
    make_source(tmp_path / "data/source.db", days=1)
    wrong = make_url(pg_url).set(password="not-the-password")
    monkeypatch.setenv("TARGET_URL", wrong.render_as_string(hide_password=False))
    result = _run(_spec(tmp_path / "specs", pg_url, retries=3), instance)
    assert not result.success
    assert _count(result, dg.DagsterEventType.STEP_UP_FOR_RETRY) == 0
    failure = next(e for e in result.all_events
                   if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    text = str(failure.step_failure_data.error) + str(failure.step_failure_data.user_failure_data)
    assert "password authentication failed" in text and "not retried" in text
    assert "not-the-password" not in text


def test_classifier_tells_transient_from_permanent_errors():
    from nexus_dagster.errors import DataError, LoadError, RetriableLoadError, SpecError

    assert is_retriable(RetriableLoadError("target restarting"))
    assert is_retriable(ConnectionResetError("reset by peer"))
    assert is_retriable(TimeoutError("read timed out"))
    assert not is_retriable(SpecError("targets[0]: table is required"))
    assert not is_retriable(LoadError("null value in column violates not-null constraint"))
    assert not is_retriable(DataError("not a CSV file"))
    assert not is_retriable(PermissionError("access denied"))
    assert not is_retriable(KeyError("a bug"))

    class HttpError(Exception):
        def __init__(self, status: int):
            super().__init__(f"HTTP {status}")
            self.status = status

    assert is_retriable(HttpError(429)) and is_retriable(HttpError(503))
    assert not is_retriable(HttpError(401)) and not is_retriable(HttpError(404))
    try:  # a TransformError raised from a lost connection in custom code is transient
        try:
            raise ConnectionError("connection reset")
        except ConnectionError as exc:
            raise LoadError("custom code failed") from exc
    except LoadError as wrapped:
        assert is_retriable(wrapped)
