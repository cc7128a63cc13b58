"""API -> PostgreSQL and PostgreSQL -> API jobs from YAML specs, run through Dagster."""

from __future__ import annotations

import textwrap
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from nexus_dagster.dagster.factory import CURSOR_KEY
from nexus_dagster.errors import SpecError
from nexus_dagster.spec.loader import load_project
from tests.integration.api import server as srv
from tests.support import endpoint_events, last_endpoint_metadata, run_job

pytestmark = pytest.mark.api


def pg_connection(pg_url: str) -> str:
    url = sa.engine.make_url(pg_url)
    return textwrap.dedent(f"""\
        warehouse:
          type: postgresql
          host: {url.host}
          port: {url.port}
          database: {url.database}
          user: {url.username}
          password: {url.password}
        """)


API_TO_PG = """\
name: events_from_api
sources:
  - name: events
    source_type: api
    api_endpoint: {base}/oauth/events
    allow_http: true                 # loopback test server
    api_auth:
      type: oauth2_client_credentials
      url: {base}/token
      client_id: {client_id}
      client_secret: ${{TEST_API_CLIENT_SECRET}}
    api_pagination: {{type: page, page_size_param: per_page, page_size: 5}}
    records_path: data
    incremental_column: updated_at
    incremental_param: updated_since
    incremental_value: "2024-01-15T10:00:00"
    backoff_seconds: 0.01
targets:
  - name: events_table
    target_type: database
    connection: warehouse
    table: api_events
    write_mode: upsert
    key_columns: [id]
"""


def all_messages(result: dg.ExecuteInProcessResult) -> str:
    return "\n".join(str(e) for e in result.all_events) + "\n".join(
        str(e.event_specific_data) for e in result.all_events
    )


def test_api_to_postgres_incremental_with_oauth2(tmp_path: Path, pg_url: str, api, monkeypatch):
    monkeypatch.setenv("TEST_API_CLIENT_SECRET", srv.CLIENT_SECRET)
    folder = tmp_path / "job_specs"
    folder.mkdir()
    (folder / "connections.yaml").write_text(pg_connection(pg_url))
    (folder / "events.yaml").write_text(
        API_TO_PG.format(base=api.url, client_id=srv.CLIENT_ID)
    )
    instance = dg.DagsterInstance.ephemeral()
    result = run_job(folder, "events_from_api", instance)
    assert result.success
    engine = sa.create_engine(pg_url)
    with engine.connect() as con:
        ids = con.execute(sa.text("select id from api_events order by id")).scalars().all()
    assert ids == list(range(14, 24))  # updated_at >= 2024-01-15T10:00:00
    assert srv.CLIENT_SECRET not in all_messages(result)
    cursor = last_endpoint_metadata(instance, "events_from_api", "events")[CURSOR_KEY].data
    assert cursor["value"] == "2024-01-24T10:00:00"

    # a new record appears; the next run asks only for what is past the cursor
    api.state.users.append({"id": 24, "name": "new", "updated_at": "2024-02-01T00:00:00"})
    api.state.requests.clear()
    result = run_job(folder, "events_from_api", instance)
    assert result.success
    assert all("updated_since=2024-01-24T10%3A00%3A00" in r[1] for r in api.state.requests)
    mats = endpoint_events(result)
    assert mats["events_from_api/events_table"]["nexus/rows_loaded"].value == 1
    with engine.connect() as con:
        count = con.execute(sa.text("select count(*) from api_events")).scalar()
    engine.dispose()
    assert count == 11


def test_failed_api_extraction_loads_nothing_and_keeps_the_cursor(tmp_path: Path, pg_url: str,
                                                                   api):
    folder = tmp_path / "job_specs"
    folder.mkdir()
    (folder / "connections.yaml").write_text(pg_connection(pg_url))
    (folder / "broken.yaml").write_text(textwrap.dedent(f"""\
        name: broken_api
        sources:
          - name: pages
            source_type: api
            api_endpoint: {api.url}/pages_fail
            allow_http: true
            api_pagination: {{type: page, page_size: 5}}
            max_retries: 1
            backoff_seconds: 0.01
        targets:
          - {{name: out, target_type: database, connection: warehouse, table: pages}}
        """))
    result = run_job(folder, "broken_api", dg.DagsterInstance.ephemeral())
    assert not result.success
    engine = sa.create_engine(pg_url)
    assert not sa.inspect(engine).has_table("pages")
    engine.dispose()


def test_postgres_to_api_with_bearer_from_env(tmp_path: Path, pg_url: str, api, monkeypatch):
    monkeypatch.setenv("TEST_API_TOKEN", srv.TOKEN)
    engine = sa.create_engine(pg_url)
    with engine.begin() as con:
        con.execute(sa.text(
            "create table customers (id bigint primary key, name text, balance numeric(12,2), "
            "seen timestamptz)"))
        con.execute(sa.text(
            "insert into customers select i, 'c' || i, i * 1.5, "
            "'2024-01-01 00:00+00'::timestamptz + i * interval '1 day' "
            "from generate_series(1, 250) i"))
    engine.dispose()
    folder = tmp_path / "job_specs"
    folder.mkdir()
    (folder / "connections.yaml").write_text(pg_connection(pg_url))
    (folder / "push.yaml").write_text(textwrap.dedent(f"""\
        name: push_customers
        sources:
          - {{name: customers, source_type: database, connection: warehouse,
             table: customers}}
        transformations:
          - {{name: rich, transformation_type: filter, config: {{condition: balance > 15}}}}
        targets:
          - name: crm
            target_type: api
            api_endpoint: {api.url}/bearer/flaky_sink?key=job
            allow_http: true
            api_auth: {{type: bearer, token: "${{TEST_API_TOKEN}}"}}
            batch_size: 100
            backoff_seconds: 0.01
        """))
    result = run_job(folder, "push_customers", dg.DagsterInstance.ephemeral())
    assert result.success
    assert sorted(r["id"] for r in api.state.records) == list(range(11, 251))
    assert api.state.records[0].keys() == {"id", "name", "balance", "seen"}
    mats = endpoint_events(result)
    meta = mats["push_customers/crm"]
    assert meta["nexus/rows_loaded"].value == 240
    assert meta["nexus/rows_sent"].value == 240 and meta["nexus/rows_failed"].value == 0
    assert meta["nexus/retries"].value == 3  # one 503 per batch, retried with the same key
    assert srv.TOKEN not in all_messages(result)


def test_plain_http_is_a_spec_error_at_load_time(tmp_path: Path):
    folder = tmp_path / "job_specs"
    folder.mkdir()
    (folder / "bad.yaml").write_text(textwrap.dedent("""\
        name: insecure
        sources:
          - {name: users, source_type: api, api_endpoint: "http://api.example.com/users"}
        targets:
          - {name: out, target_type: file, file_path: out.csv}
        """))
    with pytest.raises(SpecError, match=r"bad.yaml:3.*plain http.*allow_http"):
        load_project(folder)
