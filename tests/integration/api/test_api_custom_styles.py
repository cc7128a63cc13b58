"""A pagination style and an auth style that nexus-dagster does not ship, registered with
``register_paginator`` / ``register_auth``, validate through the project loader and run a job
against the local test API; their secrets never reach the event log."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from pydantic import Field, SecretStr

from nexus_dagster.connectors.base import ReadRequest
from nexus_dagster.connectors.http.auth import Auth, register_auth
from nexus_dagster.connectors.http.pagination import Paginator, Request, register_paginator
from nexus_dagster.connectors.http.styles import StyleConfig
from nexus_dagster.connectors.rest_api import ApiConnector
from nexus_dagster.errors import ConnectorError, SpecError
from nexus_dagster.spec.loader import collect, load_project
from tests.integration.api import server as srv
from tests.support import run_job

pytestmark = pytest.mark.api


class SkipConfig(StyleConfig):
    """Settings of ``api_pagination: {type: skip_test}``."""

    step: int = Field(ge=1, description="records per page")
    skip_param: str = "offset"
    take_param: str = "limit"


class SkipPaginator(Paginator):
    """``?offset=0&limit=step``, then the next ``step`` records until a short page."""

    Config = SkipConfig
    config: SkipConfig

    def first(self, url: str, params: dict[str, Any]) -> Request:
        return url, {**params, self.config.skip_param: 0, self.config.take_param: self.config.step}

    def next(self, request: Request, response: Any, body: Any, count: int) -> Request | None:
        url, params = request
        if count < self.config.step:
            return None
        return url, {**params, self.config.skip_param: params[self.config.skip_param] + count}


class HeaderTokenConfig(StyleConfig):
    """Settings of ``api_auth: {type: header_token_test}``."""

    header: str = "X-API-Key"
    token: SecretStr = Field(min_length=1)


class HeaderTokenAuth(Auth):
    """The token as it is in one header."""

    Config = HeaderTokenConfig
    config: HeaderTokenConfig

    def apply(self, headers: dict[str, str], params: dict[str, Any]) -> None:
        headers[self.config.header] = self.config.token.get_secret_value()


@pytest.fixture(scope="module", autouse=True)
def _styles() -> None:
    register_paginator("skip_test", f"{__name__}:SkipPaginator")  # by import path
    register_auth("header_token_test", HeaderTokenAuth)


JOB = """\
name: custom_styles
sources:
  - name: users
    source_type: api
    api_endpoint: {base}/apikey/users/offset
    allow_http: true                 # loopback test server
    api_auth: {{type: header_token_test, token: "${{TEST_STYLE_TOKEN}}"}}
    api_pagination: {{type: skip_test, step: {step}}}
    records_path: results
targets:
  - {{name: out, target_type: file, file_path: out/users.csv, write_mode: overwrite}}
"""


def project(tmp_path: Path, api, step: Any = 5) -> Path:
    folder = tmp_path / "job_specs"
    folder.mkdir(parents=True)
    (folder / "custom_styles.yaml").write_text(JOB.format(base=api.url, step=step))
    return folder


def test_registered_styles_validate_and_run_a_job(tmp_path: Path, api, monkeypatch):
    monkeypatch.setenv("TEST_STYLE_TOKEN", srv.API_KEY)
    folder = project(tmp_path, api)
    load_project(folder)  # validates: no SpecError
    result = run_job(folder, "custom_styles", dg.DagsterInstance.ephemeral())
    assert result.success
    with (tmp_path / "out" / "users.csv").open(newline="") as handle:
        ids = [int(row["id"]) for row in csv.DictReader(handle)]
    assert ids == list(range(1, 24))
    pages = [r[1] for r in api.state.requests if r[1].startswith("/apikey/users/offset")]
    assert pages == [f"/apikey/users/offset?offset={o}&limit=5" for o in range(0, 25, 5)]
    assert all(r[2].get("X-API-Key") == srv.API_KEY for r in api.state.requests)
    events = "\n".join(str(e) for e in result.all_events) + "\n".join(
        str(e.event_specific_data) for e in result.all_events)
    assert srv.API_KEY not in events


def test_settings_of_registered_styles_are_checked_at_load_time(tmp_path: Path, api):
    folder = project(tmp_path, api, step=0)
    spec = folder / "custom_styles.yaml"
    spec.write_text(spec.read_text().replace("token: ", "tokn: "))
    _, problems = collect([folder])
    found = [str(p) for p in problems]
    assert len(found) == 3, found
    assert f"{spec}:7: sources[0].api_auth.token: Field required" in found[0]
    assert "did you mean 'token'? remove tokn" in found[1]
    assert f"{spec}:8: sources[0].api_pagination.step: Input should be greater than" in found[2]
    assert "skip_test settings: step, skip_param, take_param" in found[2]


def test_a_wrong_token_in_a_registered_style_is_a_clear_error_without_it(api):
    connector = ApiConnector({
        "api_endpoint": api.url + "/apikey/users/offset", "allow_http": True,
        "max_retries": 0, "api_auth": {"type": "header_token_test", "token": "wrong-tok-6612"},
        "api_pagination": {"type": "skip_test", "step": 5},
    })
    try:
        with pytest.raises(ConnectorError, match="HTTP 401") as caught:
            connector.read(ReadRequest())
        assert "wrong-tok-6612" not in str(caught.value)
    finally:
        connector.close()
    with pytest.raises(SpecError, match=r"api_pagination\.step: Field required"):
        ApiConnector({"api_endpoint": api.url, "api_pagination": {"type": "skip_test"}})
