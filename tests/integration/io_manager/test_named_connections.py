"""NexusIOManager on a named connection of a spec folder's connections.yaml: relative paths
from the project root, ``enc:`` secrets decrypted inside the run, unknown names listed."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import make_url

from nexus_dagster import NexusIOManager
from nexus_dagster.secrets import MASTER_KEY_ENV, encrypt_value
from tests.integration.io_manager.helpers import failure_text, metadata_of


def project(tmp_path: Path, connections: dict) -> Path:
    specs = tmp_path / "job_specs"
    specs.mkdir()
    (specs / "connections.yaml").write_text(yaml.safe_dump(connections))
    return specs


@dg.asset
def customers() -> pd.DataFrame:
    return pd.DataFrame({"id": [1, 2], "country": ["DE", "FR"]})


@dg.asset(io_manager_key="lake", metadata={"nexus/file_path": "reports/customers.csv"})
def customer_report(customers: pd.DataFrame) -> pd.DataFrame:
    return customers[customers["country"] == "DE"]


def test_named_connections_resolve_paths_against_the_project_root(tmp_path, monkeypatch):
    specs = project(tmp_path, {"warehouse": {"type": "sqlite", "database": "data/wh.db"},
                               "lake": {"type": "file", "base_dir": "lake"}})
    monkeypatch.setenv("NEXUS_JOB_SPECS", str(specs))
    result = dg.materialize([customers, customer_report], resources={
        "io_manager": NexusIOManager(connection="warehouse"),
        "lake": NexusIOManager(connection="lake"),
    })
    assert result.success, failure_text(result)
    with sa.create_engine(f"sqlite:///{tmp_path / 'data/wh.db'}").connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM customers")).scalar_one() == 2
    report = tmp_path / "lake/reports/customers.csv"
    assert pd.read_csv(report).to_dict("records") == [{"id": 1, "country": "DE"}]
    assert metadata_of(result, "customer_report")["dagster/table_name"] == report.as_uri()


def test_an_enc_password_is_decrypted_inside_the_run(tmp_path, monkeypatch, pg_url):
    url = make_url(pg_url)
    key = "a passphrase for the io manager test"
    monkeypatch.setenv(MASTER_KEY_ENV, key)
    specs = project(tmp_path, {"warehouse": {
        "type": "postgresql", "host": url.host, "port": url.port, "user": url.username,
        "database": url.database, "password": encrypt_value(str(url.password), keys=key)}})
    manager = NexusIOManager(connection="warehouse", specs=str(specs))
    result = dg.materialize([customers], resources={"io_manager": manager})
    assert result.success, failure_text(result)
    assert metadata_of(result, "customers")["dagster/table_name"] == (
        f"{url.database}.public.customers")
    assert str(url.password) not in str(manager)


def test_an_unknown_connection_lists_the_known_ones(tmp_path):
    specs = project(tmp_path, {"warehouse": {"type": "sqlite", "database": "wh.db"}})
    for name, expected in (("wharehouse", "connection 'wharehouse' is not in "),
                           ("warehouse", None)):
        manager = NexusIOManager(connection=name, specs=str(specs))
        result = dg.materialize([customers], resources={"io_manager": manager},
                                raise_on_error=False)
        if expected is None:
            assert result.success, failure_text(result)
        else:
            assert expected in failure_text(result)
            assert "known: warehouse" in failure_text(result)
    missing = NexusIOManager(connection="warehouse", specs=str(tmp_path / "nowhere"))
    result = dg.materialize([customers], resources={"io_manager": missing},
                            raise_on_error=False)
    assert "nowhere/connections.yaml, which does not exist" in failure_text(result)


def test_a_parquet_file_in_a_named_folder(tmp_path):
    specs = project(tmp_path, {"lake": {"type": "file", "base_dir": "lake"}})

    @dg.asset(metadata={"nexus/file_path": "out/orders"})
    def orders() -> pd.DataFrame:
        return pd.DataFrame({"id": [1, 2, 3]})

    result = dg.materialize([orders], resources={
        "io_manager": NexusIOManager(connection="lake", specs=str(specs))})
    assert result.success, failure_text(result)
    assert pq.read_table(tmp_path / "lake/out/orders").num_rows == 3
