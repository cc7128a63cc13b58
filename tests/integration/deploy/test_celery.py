"""A nexus job split into steps (``execution: {steps: per_source, executor: celery}``) on two
Celery worker processes started by deploy/celery/worker.sh, each in its own working directory with
its own DAGSTER_HOME and its own copy of the specs, sharing only PostgreSQL (the instance of
deploy/dagster.yaml), Redis (broker and results) and moto S3 (the staged Parquet) with the run:
both workers run steps and the target is what the same spec writes in one in-process step; a
worker killed mid-load leaves the target as it was, and a re-run completes."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from tests.integration.deploy.celery_workers import celery_env, celery_workers, empty_queues
from tests.process_groups import BIN, stop_group
from tests.support import cleanup, make_store, redis_params, run_job, write_job

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis, pytest.mark.s3]

JOB = "celery_orders"
CUSTOMERS = 50
JOINED = ("SELECT count(*), sum(amount), md5(string_agg(id || ':' || coalesce(name, '-') "
          "|| ':' || amount, ',' ORDER BY id)) FROM joined")
# sessions of the load step waiting for the test's lock on the target (and none other: the
# extraction steps never touch ``joined``)
WAITING = ("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
           "AND pid <> pg_backend_pid()")
# sessions holding or waiting for a lock on the target
HOLDING = ("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
           "WHERE c.relname = 'joined' AND l.pid <> pg_backend_pid()")
LOAD_STEP = f"{JOB}__etl.{JOB}__load"
POOL = f"nexus/{JOB}"  # the load step's pool (limit 1 in deploy/dagster.yaml)


def _sql(url: str, *statements: str) -> list[tuple]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as connection:
        for statement in statements:
            result = connection.exec_driver_sql(statement)
        rows = [tuple(r) for r in result] if result.returns_rows else []
    engine.dispose()
    return rows


def _spec(execution: dict[str, Any] | None) -> dict[str, Any]:
    """Orders joined with customers (both PostgreSQL) into ``joined``, replaced each run."""
    pg = {"url": "${PG_URL}"}
    job: dict[str, Any] = {
        "name": JOB,
        "sources": [
            {"name": "orders", "source_type": "database", "connection_params": pg,
             "table": "orders"},
            {"name": "customers", "source_type": "database", "connection_params": pg,
             "table": "customers"},
        ],
        "transformations": [{"name": "with_names", "transformation_type": "join", "config": {
            "left": "orders", "right": "customers", "on": "customer_id", "how": "left"}}],
        "targets": [{"name": "joined", "target_type": "database", "connection_params": pg,
                     "table": "joined", "write_mode": "overwrite"}],
    }
    if execution is not None:
        job["execution"] = execution
    return job


@pytest.fixture
def celery_project(
    tmp_path: Path, pg_url: str, pg_home: tuple[Path, dict[str, str]],
    request: pytest.FixtureRequest,
) -> Iterator[tuple[Path, Path, dict[str, str]]]:
    """(DAGSTER_HOME of the run, the run's spec folder, environment of the run and the workers):
    the PostgreSQL instance, an empty broker, a fresh staging bucket (the named connection
    ``s3_staging``, keys from the environment), and the source tables with
    ``request.param`` orders (default 2000)."""
    home, env = pg_home
    orders = getattr(request, "param", 2000)
    redis = redis_params()
    empty_queues(redis["password"], redis["port"])
    store = make_store("s3")
    _sql(pg_url,
         "CREATE TABLE customers (customer_id int PRIMARY KEY, name text NOT NULL)",
         f"INSERT INTO customers SELECT g, 'customer ' || g FROM generate_series(1, {CUSTOMERS}) g",
         "CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL, "
         "amount numeric(12,2) NOT NULL)",
         f"INSERT INTO orders SELECT g, 1 + mod(g, {CUSTOMERS + 1}), g * 0.25 "
         f"FROM generate_series(1, {orders}) g")
    specs = write_job(tmp_path / "run", _spec(
        {"steps": "per_source", "executor": "celery", "staging": "s3_staging"}))
    staging = {"type": "s3", **store.params, "access_key": "${NEXUS_TEST_S3_ACCESS_KEY}",
               "secret_key": "${NEXUS_TEST_S3_SECRET_KEY}"}
    (specs / "connections.yaml").write_text(yaml.safe_dump({"s3_staging": staging}))
    try:
        yield home, specs, {**env, **celery_env(redis["password"], redis["port"]),
                            "PG_URL": pg_url}
    finally:
        cleanup(store)
        empty_queues(redis["password"], redis["port"])


def _start_run(specs: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    """The run process as a run launcher starts it (``dagster job execute`` of the code
    location), in its own working directory with its own spec folder."""
    with log.open("w") as out:
        return subprocess.Popen(
            [str(BIN / "dagster"), "job", "execute", "-m", "nexus_dagster.definitions",
             "-j", JOB],
            cwd=specs.parent, env={**env, "NEXUS_JOB_SPECS": str(specs)}, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True)


def _step_workers(instance: dg.DagsterInstance, run_id: str) -> dict[str, str]:
    """step key -> the Celery worker (its node name, without ``@host``) that ran it, from the
    engine event dagster-celery writes when a worker starts a step."""
    found = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        metadata = entry.dagster_event.engine_event_data.metadata
        if "Celery worker" in metadata:
            found[entry.step_key] = str(metadata["Celery worker"].value).split("@")[0]
    return found


def _wait_for(what: str, check: Callable[[], Any], run: subprocess.Popen, log: Path,
              timeout: float = 120) -> Any:
    """``check()``'s first truthy value, polled while the run process ``run`` is alive."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert run.poll() is None, f"the run ended before {what}: {log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return found


@pytest.mark.timeout(300)
def test_split_job_runs_its_steps_on_two_celery_workers_with_the_in_process_result(
    tmp_path: Path, pg_url: str, celery_project: tuple[Path, Path, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
):
    home, specs, env = celery_project
    log = tmp_path / "run.log"
    with celery_workers(tmp_path / "workers", env, specs) as workers:
        run = _start_run(specs, env, log)
        assert run.wait(240) == 0, log.read_text()[-3000:]
    on_celery = _sql(pg_url, JOINED)

    with dg.DagsterInstance.from_config(str(home)) as instance:
        [record] = instance.get_run_records()
        assert record.dagster_run.status == dg.DagsterRunStatus.SUCCESS
        ran_on = _step_workers(instance, record.dagster_run.run_id)
    assert set(ran_on) == {f"{JOB}__etl.{JOB}__extract_orders",
                           f"{JOB}__etl.{JOB}__extract_customers", LOAD_STEP}
    # the two extractions were queued at once, one per idle worker: both workers ran steps
    assert set(ran_on.values()) == {w.name for w in workers}

    # the same spec as one step in this process writes the same rows
    _sql(pg_url, "DROP TABLE joined")
    monkeypatch.setenv("PG_URL", pg_url)
    one_step = write_job(tmp_path / "one_step", _spec(None))
    with dg.instance_for_test() as scratch:
        assert run_job(one_step, JOB, scratch).success
    assert _sql(pg_url, JOINED) == on_celery
    assert on_celery[0][0] == 2000


@pytest.mark.timeout(300)
@pytest.mark.parametrize("celery_project", [300_000], indirect=True)
def test_killing_a_celery_worker_mid_load_leaves_the_target_unchanged_and_a_rerun_completes(
    tmp_path: Path, pg_url: str, celery_project: tuple[Path, Path, dict[str, str]]
):
    home, specs, env = celery_project
    # what an earlier load left in the target: the killed run must not change it
    _sql(pg_url, "CREATE TABLE joined (id int, customer_id int, amount numeric(12,2), name text)",
         "INSERT INTO joined VALUES (1, 1, 9.5, 'earlier'), (2, 2, 1.25, 'earlier')")
    before = _sql(pg_url, JOINED)

    # the test holds an exclusive lock on the target, so the load step is caught mid-step, in
    # its transaction, at its first statement on ``joined`` (a fast machine would otherwise
    # finish the load between two polls)
    locker = sa.create_engine(pg_url, poolclass=sa.pool.NullPool).connect()
    lock = locker.begin()
    locker.exec_driver_sql("LOCK TABLE joined IN ACCESS EXCLUSIVE MODE")
    with (celery_workers(tmp_path / "workers", env, specs) as workers,
          dg.DagsterInstance.from_config(str(home)) as instance):
        log = tmp_path / "run.log"
        run = _start_run(specs, env, log)
        try:
            [record] = _wait_for("the run", instance.get_run_records, run, log)
            run_id = record.dagster_run.run_id
            loader = _wait_for("a worker to take the load step",
                               lambda: _step_workers(instance, run_id).get(LOAD_STEP), run, log)
            [victim] = [w for w in workers if w.name == loader]
            _wait_for("the load to reach the target",
                      lambda: _sql(pg_url, WAITING)[0][0] > 0, run, log, timeout=180)
            victim.kill()
            assert victim.pids() == []  # the worker and its pool child are gone
            # the killed step's session notices its client is gone once it gets the lock: it
            # fails there and PostgreSQL rolls its transaction back
            lock.rollback()
            locker.close()
            _wait_for("the killed session to end", lambda: _sql(pg_url, HOLDING)[0][0] == 0,
                      run, log, timeout=30)
            assert _sql(pg_url, JOINED) == before

            # dagster-celery's tasks are acknowledged when a worker takes them (Celery's
            # default; no acks_late): the killed worker's task is lost, not redelivered, and
            # the run's executor keeps waiting for its result. The run is still in progress:
            time.sleep(5)
            assert run.poll() is None
            assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.STARTED
        finally:
            if locker.in_transaction():
                lock.rollback()
            locker.close()
            # terminating the run (what the UI's Terminate and the run launcher do: SIGTERM to
            # the run process) makes the executor revoke its tasks and fail the run
            stop_group(run, first=signal.SIGTERM, timeout=60)
        assert run.returncode == 1, log.read_text()[-3000:]
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE
        assert _sql(pg_url, JOINED) == before

        # the killed step never reported an end, so it still holds the job's pool slot (limit
        # 1): the re-run's load would wait for it forever. The daemon's run monitoring frees
        # the slots of ended runs (run_monitoring: free_slots_after_run_end_seconds in
        # deploy/dagster.yaml); the test does here what the daemon does then.
        storage = instance.event_log_storage
        assert [(s.run_id, s.step_key) for s in storage.get_concurrency_info(POOL).claimed_slots
                ] == [(run_id, LOAD_STEP)]
        storage.free_concurrency_slots_for_run(run_id)
        assert storage.get_concurrency_info(POOL).claimed_slots == []

        # a re-run on the surviving worker completes with every order
        rerun_log = tmp_path / "rerun.log"
        rerun = _start_run(specs, env, rerun_log)
        assert rerun.wait(240) == 0, rerun_log.read_text()[-3000:]
        newest = instance.get_run_records(limit=1)[0].dagster_run
        assert newest.run_id != run_id and newest.status == dg.DagsterRunStatus.SUCCESS
        assert set(_step_workers(instance, newest.run_id).values()) == {
            w.name for w in workers} - {loader}
    count, total, _ = _sql(pg_url, JOINED)[0]
    assert (count, total) == _sql(pg_url, "SELECT count(*), sum(amount) FROM orders")[0]
