"""Dagster integration resources standing in for a connection
(``nexus_dagster/dagster/integrations.py``): ``dagster_aws.s3.S3Resource`` against moto,
``dagster_azure.blob.AzureBlobStorageResource`` against Azurite and ``dagster_gcp.GCSResource``
against the GCS emulator. The spec's connection gives the
bucket/container and deliberately wrong credentials and endpoint, so a run only succeeds with
the integration resource's."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest
import yaml

import nexus_dagster
from nexus_dagster.connectors.base import ReadRequest
from nexus_dagster.errors import SpecError
from tests.support import Store, service_env

dagster_aws_s3 = pytest.importorskip("dagster_aws.s3")
dagster_azure_blob = pytest.importorskip("dagster_azure.blob")
dagster_gcp = pytest.importorskip("dagster_gcp")

ROWS = b"id,city\n1,Zurich\n2,Kyoto\n3,Lima\n"
WRONG_SECRET = "Wr0ngSecretKeyForTheIntegrationTest0000"


def project(tmp_path: Path, kind: str, lake: dict) -> Path:
    """A spec folder: job ``copy_lake`` copies in/cities.csv to out/cities.parquet on the
    ``lake`` connection."""
    folder = tmp_path / "job_specs"
    folder.mkdir()
    (folder / "connections.yaml").write_text(yaml.safe_dump({"lake": {"type": kind, **lake}}))
    job = {
        "name": "copy_lake",
        "sources": [{"name": "raw", "source_type": kind, "connection": "lake",
                     "file_path": "in/cities.csv"}],
        "targets": [{"name": "cities", "target_type": kind, "connection": "lake",
                     "file_path": "out/cities.parquet", "write_mode": "overwrite"}],
    }
    (folder / "copy_lake.yaml").write_text(yaml.safe_dump(job, sort_keys=False))
    return folder


def run(folder: Path, resource: dg.ConfigurableResource) -> dg.ExecuteInProcessResult:
    defs = nexus_dagster.definitions_from_folder(folder, resources={"lake": resource})
    return defs.resolve_job_def("copy_lake").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)


def landed(store: Store) -> list[str]:
    table = pa.Table.from_batches(list(store.connector().read(
        ReadRequest(path="out/cities.parquet"))))
    return table.column("city").to_pylist()


def step_error(result: dg.ExecuteInProcessResult) -> str:
    """The failed step's error: class names and messages of its whole chain."""
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    error, parts = failure.step_failure_data.error, []
    while error is not None:
        parts.append(f"{error.cls_name}: {error.message}")
        error = error.cause or error.context
    return "\n".join(parts)


def s3_spec_lake(bucket: str) -> dict:
    """The spec's own s3 connection: the right bucket, wrong credentials and endpoint."""
    return {"bucket": bucket, "access_key": "AKIANOTTHERIGHTKEY00", "secret_key": "not-it",
            "endpoint_url": "http://127.0.0.1:9", "max_attempts": 1}


@pytest.mark.s3
def test_s3_resource_stands_in_for_the_connection(store_factory, tmp_path: Path, monkeypatch):
    store = store_factory("s3")
    store.put("in/cities.csv", ROWS)
    monkeypatch.setenv("LAKE_SECRET_KEY", service_env("NEXUS_TEST_S3_SECRET_KEY"))
    resource = dagster_aws_s3.S3Resource(
        aws_access_key_id=service_env("NEXUS_TEST_S3_ACCESS_KEY"),
        aws_secret_access_key=dg.EnvVar("LAKE_SECRET_KEY"),
        endpoint_url=service_env("NEXUS_TEST_S3_ENDPOINT"),
        region_name="eu-central-1",
    )
    result = run(project(tmp_path, "s3", s3_spec_lake(store.params["bucket"])), resource)
    assert result.success, step_error(result)
    assert landed(store) == ["Zurich", "Kyoto", "Lima"]


@pytest.mark.s3
def test_wrong_secret_in_the_s3_resource_is_a_clear_error(store_factory, tmp_path: Path):
    store = store_factory("s3")
    store.put("in/cities.csv", ROWS)
    resource = dagster_aws_s3.S3Resource(
        aws_access_key_id=service_env("NEXUS_TEST_S3_ACCESS_KEY"),
        aws_secret_access_key=WRONG_SECRET,
        endpoint_url=service_env("NEXUS_TEST_S3_ENDPOINT"),
        region_name="eu-central-1",
    )
    result = run(project(tmp_path, "s3", s3_spec_lake(store.params["bucket"])), resource)
    assert not result.success
    error = step_error(result)
    assert "ConnectorError: S3 at " + service_env("NEXUS_TEST_S3_ENDPOINT") in error
    assert "refused the credentials" in error
    assert WRONG_SECRET not in error
    logs = "\n".join(str(e.message) for e in result.all_events)
    assert WRONG_SECRET not in logs


@pytest.mark.azurite
def test_azure_blob_resource_stands_in_for_the_connection(store_factory, tmp_path: Path):
    store = store_factory("azure_blob")
    store.put("in/cities.csv", ROWS)
    resource = dagster_azure_blob.AzureBlobStorageResource(
        account_url=service_env("NEXUS_TEST_AZURE_ACCOUNT_URL"),
        credential=dagster_azure_blob.AzureBlobStorageKeyCredential(
            key=service_env("NEXUS_TEST_AZURE_ACCOUNT_KEY")),
    )
    lake = {"container": store.params["container"], "account_name": "notthisaccount",
            "account_key": "bm90IGl0", "account_url": "http://127.0.0.1:9/notthisaccount"}
    result = run(project(tmp_path, "azure_blob", lake), resource)
    assert result.success, step_error(result)
    assert landed(store) == ["Zurich", "Kyoto", "Lima"]


@pytest.mark.gcs
def test_gcs_resource_stands_in_for_the_connection(store_factory, tmp_path: Path, monkeypatch):
    """The spec names a key file that does not exist and an endpoint nothing listens on: the
    run succeeds only with the GCSResource's project and its client's default chain, which
    talks to the emulator named by STORAGE_EMULATOR_HOST."""
    store = store_factory("gcs")
    store.put("in/cities.csv", ROWS)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", service_env("NEXUS_TEST_GCS_ENDPOINT"))
    lake = {"bucket": store.params["bucket"], "project_id": "not-this-project",
            "credentials": str(tmp_path / "missing-key.json"), "endpoint": "http://127.0.0.1:9"}
    result = run(project(tmp_path, "gcs", lake), dagster_gcp.GCSResource(project="nexus-test"))
    assert result.success, step_error(result)
    assert landed(store) == ["Zurich", "Kyoto", "Lima"]


def test_an_s3_resource_cannot_stand_in_for_another_connector(tmp_path: Path):
    lake = {"container": "box", "account_name": "acct", "account_key": "bm90IGl0"}
    result = run(project(tmp_path, "azure_blob", lake),
                 dagster_aws_s3.S3Resource(region_name="eu-central-1"))
    assert not result.success
    error = step_error(result)
    assert "SpecError" in error
    assert ("resource 'lake' (S3Resource) stands in for s3 connections, but an endpoint using "
            "it is azure_blob: give 'lake' a resource of the azure_blob connector") in error


def test_unsupported_integration_settings_are_named():
    from nexus_dagster.dagster.integrations import azure_blob_params, s3_params

    with pytest.raises(SpecError, match=r"S3Resource\.profile_name is not supported"):
        s3_params(dagster_aws_s3.S3Resource(profile_name="dev"))
    default = dagster_azure_blob.AzureBlobStorageResource(
        account_url="https://acme.blob.core.windows.net",
        credential=dagster_azure_blob.AzureBlobStorageDefaultCredential())
    with pytest.raises(SpecError, match="default_azure_credential"):
        azure_blob_params(default)
    sas = dagster_azure_blob.AzureBlobStorageResource(
        account_url="https://acme.blob.core.windows.net/",
        credential=dagster_azure_blob.AzureBlobStorageSASTokenCredential(token="sv=2024&sig=x"))
    assert azure_blob_params(sas) == {"account_url": "https://acme.blob.core.windows.net",
                                      "account_name": "acme", "account_key": None,
                                      "sas_token": "sv=2024&sig=x"}
