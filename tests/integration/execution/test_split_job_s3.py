"""A split job staging its extractions in S3 (moto) through a named s3 connection: the staged
objects are there between the extraction and the load steps, and gone after the commit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from tests.integration.execution.split_jobs import (
    JOB,
    failure_messages,
    launch,
    project,
    rows,
    steps,
    write_orders,
)
from tests.support import Store, cleanup, make_store


@pytest.fixture
def bucket() -> Iterator[Store]:
    store = make_store("s3")
    yield store
    cleanup(store)


@pytest.mark.s3
def test_split_job_stages_in_s3_and_removes_the_objects_after_the_commit(
    tmp_path: Path, pg_url: str, pg: sa.Engine, instance: dg.DagsterInstance, bucket: Store
) -> None:
    """The load fails first (a NOT NULL column), so the staged objects can be listed; the
    re-execution from the failure loads them (no extraction again) and removes them."""
    write_orders(tmp_path / "orders.csv", (1, 1, 1.5), (2, 2, 2.5), (3, 9, 3.5))
    folder = project(tmp_path, pg_url, table="report", execution={
        "steps": "per_source", "executor": "in_process", "staging": "s3_staging",
        "staging_path": "runs/nexus"})
    staging = {"type": "s3", **bucket.params,
               "access_key": "${NEXUS_TEST_S3_ACCESS_KEY}",
               "secret_key": "${NEXUS_TEST_S3_SECRET_KEY}"}
    (folder / "connections.yaml").write_text(yaml.safe_dump({"s3_staging": staging}))
    with pg.begin() as conn:
        conn.execute(sa.text("CREATE TABLE report (order_id BIGINT, customer_id BIGINT, "
                             "amount DOUBLE PRECISION, name TEXT, note TEXT NOT NULL)"))

    failed = launch(folder, JOB, instance)
    assert not failed.is_success
    prefix = f"runs/nexus/{JOB}/{failed.run_id}"
    assert bucket.listing() == [
        f"{prefix}/customers/data.parquet", f"{prefix}/customers/manifest.json",
        f"{prefix}/orders/data.parquet", f"{prefix}/orders/manifest.json",
    ]
    assert rows(pg, "report") == []

    with pg.begin() as conn:
        conn.execute(sa.text("ALTER TABLE report ALTER COLUMN note DROP NOT NULL"))
    again = launch(folder, JOB, instance, reexecute_from_failure_of=failed.run_id)
    assert again.is_success, failure_messages(instance, again.run_id)
    assert set(steps(instance, again.run_id)) == {f"{JOB}__etl.{JOB}__load"}
    assert rows(pg, "report") == [(1, 1, 1.5, "Ann"), (2, 2, 2.5, "Bob"), (3, 9, 3.5, None)]
    assert bucket.listing() == []
