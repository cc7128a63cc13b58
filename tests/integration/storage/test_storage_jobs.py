"""Storage through Dagster: cross-cloud copy jobs and new-file sensors (large objects:
``test_large_objects.py``)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from nexus_dagster.connectors.base import ReadRequest
from nexus_dagster.dagster.factory import build_definitions
from nexus_dagster.spec.loader import load_project
from tests.support import Store, endpoint_events, make_store, write_job

ROWS = b"id,city\n1,Zo\xc3\xab\n2,Kyoto\n3,Lima\n"


def endpoint(store: Store, role: str, name: str, path: str, **extra) -> dict:
    kind_field = "source_type" if role == "source" else "target_type"
    return {"name": name, kind_field: store.kind, "connection_params": store.params,
            "file_path": path, **extra}


def run(folder: Path, job: str, instance: dg.DagsterInstance, tags=None):
    defs = build_definitions(load_project(folder))
    return defs.resolve_job_def(job).execute_in_process(
        instance=instance, raise_on_error=False, tags=tags or {})


@pytest.mark.s3
@pytest.mark.azurite
@pytest.mark.sftp
@pytest.mark.parametrize(("source_kind", "target_kind"), [("s3", "azure_blob"), ("sftp", "s3")])
def test_cross_store_copy_job(store_factory, tmp_path: Path, source_kind: str,
                              target_kind: str):
    source, target = store_factory(source_kind), store_factory(target_kind)
    source.put("in/2024/a.csv", ROWS)
    source.put("in/2024/b.csv", b"id,city\n4,Oslo\n")
    job = {
        "name": f"copy_{source_kind}_to_{target_kind}",
        "sources": [endpoint(source, "source", "raw", "in/2024/*.csv",
                             options={"source_file_column": "_source_file"})],
        "transformations": [{"name": "keep", "transformation_type": "filter",
                             "config": {"condition": "id >= 2"}}],
        "targets": [endpoint(target, "target", "lake", "out/cities.parquet",
                             write_mode="overwrite")],
    }
    result = run(write_job(tmp_path, job), job["name"], dg.DagsterInstance.ephemeral())
    assert result.success
    table = pa.Table.from_batches(list(target.connector().read(
        ReadRequest(path="out/cities.parquet"))))
    assert table.column("id").to_pylist() == [2, 3, 4]
    assert table.column("_source_file").to_pylist() == ["in/2024/a.csv"] * 2 + ["in/2024/b.csv"]
    mats = endpoint_events(result)
    assert mats[f"{job['name']}/lake"]["dagster/row_count"].value == 3


@pytest.fixture(params=["local", "s3", "sftp", "azure_blob", "gcs", "ftp"])
def sensor_store(request, tmp_path: Path):
    """A place a sensor watches: the local disk or one of the servers."""
    if request.param == "local":
        inbox = tmp_path / "inbox"
        inbox.mkdir()

        class Local:
            kind = "file"
            params: dict = {}

            def put(self, path: str, data: bytes) -> None:
                target = tmp_path / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)

        yield Local()
        return
    marker = {"azure_blob": "azurite"}.get(request.param, request.param)
    request.applymarker(getattr(pytest.mark, marker))
    store = make_store(request.param)
    yield store
    from .conftest import cleanup

    cleanup(store)


def test_sensor_starts_one_run_per_new_file(sensor_store, tmp_path: Path):
    store = sensor_store
    local = store.kind == "file"
    inbox = str(tmp_path / "inbox") if local else "inbox"
    store.put("inbox/a.csv", b"id\n1\n2\n")
    store.put("inbox/b.csv", b"id\n3\n")
    job = {
        "name": "inbox_job",
        "sensor": {"new_files": True, "interval_seconds": 30},
        "sources": [{"name": "inbox", "source_type": store.kind,
                     "connection_params": store.params, "file_path": f"{inbox}/*.csv"}],
        "targets": [{"name": "out", "target_type": "file",
                     "file_path": str(tmp_path / "out.jsonl"), "write_mode": "append"}],
    }
    folder = write_job(tmp_path, job)
    defs = build_definitions(load_project(folder))
    sensor = defs.resolve_sensor_def("inbox_job_new_files")
    assert sensor.minimum_interval_seconds == 30
    with dg.instance_for_test() as instance:
        def context(cursor: str | None = None) -> dg.SensorEvaluationContext:
            return dg.build_sensor_context(instance=instance, resources=defs.resources,
                                           cursor=cursor)

        first = sensor.evaluate_tick(context())
        assert len(first.run_requests) == 2
        assert len({r.run_key for r in first.run_requests}) == 2
        again = sensor.evaluate_tick(context(first.cursor))
        assert again.run_requests == [] and again.skip_message

        store.put("inbox/c.csv", b"id\n7\n8\n9\n")
        third = sensor.evaluate_tick(context(again.cursor or first.cursor))
        assert len(third.run_requests) == 1
        request = third.run_requests[0]
        assert "c.csv@" in request.run_key
        # the run reads exactly the file the sensor saw
        result = defs.resolve_job_def("inbox_job").execute_in_process(
            instance=instance, tags=request.tags)
        assert result.success
        assert (tmp_path / "out.jsonl").read_text().splitlines() == [
            '{"id":7}', '{"id":8}', '{"id":9}'] or [
            line.replace(" ", "") for line in (tmp_path / "out.jsonl").read_text().splitlines()
        ] == ['{"id":7}', '{"id":8}', '{"id":9}']
