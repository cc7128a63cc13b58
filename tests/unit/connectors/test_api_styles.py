"""The open registries of API auth styles and paginators: spec validation through the project
loader (file:line, field, known names), run-time registration and entry points."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from nexus_dagster.connectors.http.auth import (
    AUTH_ENTRY_POINT_GROUP,
    AUTH_STYLES,
    BUILTIN_AUTH,
    Auth,
    BearerAuth,
    make_auth,
    register_auth,
)
from nexus_dagster.connectors.http.pagination import (
    PAGINATOR_ENTRY_POINT_GROUP,
    PAGINATORS,
    Paginator,
    make_paginator,
)
from nexus_dagster.connectors.http.styles import StyleConfig, StyleRegistry
from nexus_dagster.errors import SpecError
from nexus_dagster.secrets import mask
from nexus_dagster.spec.loader import collect, load_project


class SignatureConfig(StyleConfig):
    """Settings of the test style ``signature_unit``."""

    key_id: str
    signing_key: SecretStr
    header: str = "X-Signature"


class SignatureAuth(Auth):
    """A made-up auth style: ``<key_id>:<signing_key>`` in a header."""

    Config = SignatureConfig

    def apply(self, headers: dict[str, str], params: dict[str, Any]) -> None:
        headers[self.config.header] = (
            f"{self.config.key_id}:{self.config.signing_key.get_secret_value()}"
        )


def write_job(tmp_path: Path, source: str) -> Path:
    """A project with one API source (``source`` is its YAML mapping body) and a CSV target."""
    folder = tmp_path / "job_specs"
    folder.mkdir(parents=True)
    (folder / "pull.yaml").write_text(textwrap.dedent("""\
        name: pull
        sources:
          - name: users
            source_type: api
            api_endpoint: https://api.example.com/users
        """) + textwrap.indent(textwrap.dedent(source), " " * 4) + textwrap.dedent("""\
        targets:
          - {name: out, target_type: file, file_path: out.csv}
        """))
    return folder


def problems_of(tmp_path: Path, source: str) -> list[str]:
    _, problems = collect([write_job(tmp_path, source)])
    return [str(p) for p in problems]


def test_an_unknown_style_is_reported_with_line_field_and_the_known_names(tmp_path: Path):
    found = problems_of(tmp_path, """\
        api_auth: {type: kerberos, principal: etl}
        api_pagination:
          type: graphql
        """)
    assert len(found) == 2, found
    assert found[0].startswith(f"{tmp_path}/job_specs/pull.yaml:6: sources[0].api_auth.type: "
                               "'kerberos' is not a registered api_auth style")
    assert set(BUILTIN_AUTH) <= set(known_names(found[0]))  # and any registered ones
    assert "register_auth()" in found[0] and AUTH_ENTRY_POINT_GROUP in found[0]
    assert "pull.yaml:8: sources[0].api_pagination.type: 'graphql'" in found[1]
    assert {"cursor", "link_header", "next_url", "none", "offset", "page"} <= set(
        known_names(found[1]))
    assert PAGINATOR_ENTRY_POINT_GROUP in found[1]


def known_names(problem: str) -> list[str]:
    """The style names a problem's fix lists (``use one of: a, b; or ...``)."""
    return problem.split("use one of: ", 1)[1].split(";", 1)[0].split(", ")


def test_settings_are_checked_against_the_style_model(tmp_path: Path):
    found = problems_of(tmp_path, """\
        api_auth:
          type: api_key
          key: k3y-value-5521
          location: cookie
        api_pagination: {type: page, page_size: 0, page_sise: 10, start_page: "${START}"}
        """)
    assert len(found) == 3, found
    assert "pull.yaml:9: sources[0].api_auth.location: Input should be 'header' or 'query'" \
        in found[0]
    assert "sources[0].api_pagination.page_size: Input should be greater than or equal to 1" \
        in found[1]
    assert "page_sise: Extra inputs are not permitted (fix: did you mean 'page_size'?" in found[2]
    assert not any("k3y-value-5521" in p for p in found)


def test_missing_settings_and_env_references(tmp_path: Path):
    found = problems_of(tmp_path, """\
        api_auth: {type: oauth2_client_credentials, url: "${TOKEN_URL}", client_id: etl}
        api_pagination: {type: offset, limit: "${PAGE_SIZE}", start: "enc:gAAAAAB"}
        """)
    assert len(found) == 1, found
    assert "sources[0].api_auth.client_secret: Field required (fix: add client_secret" in found[0]


def test_a_registered_style_validates_and_an_unregistered_one_does_not(tmp_path: Path):
    spec = """\
        api_auth: {type: signature_unit, key_id: etl, signing_key: "${SIGNING_KEY}"}
        """
    assert "'signature_unit' is not a registered" in problems_of(tmp_path / "a", spec)[0]
    register_auth("signature_unit", SignatureAuth)
    project = load_project(write_job(tmp_path / "b", spec))
    block = project.jobs[0].job.sources[0].api_auth
    assert block.type == "signature_unit" and block.model_extra == {
        "key_id": "etl", "signing_key": "${SIGNING_KEY}"}
    assert "signature_unit" in AUTH_STYLES.names()
    wrong = problems_of(tmp_path / "c", "api_auth: {type: signature_unit, key_id: etl}\n")
    assert "api_auth.signing_key: Field required" in wrong[0]
    assert "signature_unit settings: key_id, signing_key, header" in wrong[0]

    auth = make_auth({"type": "signature_unit", "key_id": "etl", "signing_key": "sig-8808"})
    headers: dict[str, str] = {}
    auth.apply(headers, {})
    assert headers == {"X-Signature": "etl:sig-8808"} and mask("sig-8808") == "***"


def test_styles_registered_by_import_path_and_bad_registrations():
    register_auth("bearer_by_path_unit", "nexus_dagster.connectors.http.auth:BearerAuth")
    assert AUTH_STYLES.style_class("bearer_by_path_unit") is BearerAuth
    auth = make_auth({"type": "bearer_by_path_unit", "token": "tok-path-4410"})
    assert isinstance(auth, BearerAuth)
    register_auth("broken_unit", "nexus_dagster.connectors.http.auth:NoSuchAuth")
    with pytest.raises(SpecError, match=r"'broken_unit' is registered as .*cannot be imported"):
        make_auth({"type": "broken_unit"})
    register_auth("not_an_auth_unit", "nexus_dagster.connectors.http.pagination:PagePaginator")
    with pytest.raises(SpecError, match=r"is not a subclass of .*auth\.Auth"):
        AUTH_STYLES.style_class("not_an_auth_unit")
    with pytest.raises(SpecError, match="must start with a letter"):
        register_auth("1st-style", BearerAuth)


def test_built_styles_check_their_settings_without_showing_values():
    with pytest.raises(SpecError, match=r"settings\.token: Input should be a valid string"):
        BearerAuth({"type": "bearer", "token": 12345678})
    with pytest.raises(SpecError) as caught:
        make_paginator({"type": "offset", "limit": "lots-and-lots"})
    assert "api_pagination.limit" in str(caught.value)
    assert "lots-and-lots" not in str(caught.value)
    assert type(make_paginator(None)).__name__ == "SinglePage"
    assert make_auth(None) is None


def test_styles_declared_through_entry_points(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A package declaring a style in ``nexus_dagster.auth`` is found like a built-in one."""
    (tmp_path / "plugin_auth_unit.py").write_text(textwrap.dedent("""\
        from nexus_dagster.connectors.http.auth import BearerAuth


        class PluginAuth(BearerAuth):
            pass
        """))
    dist = tmp_path / "plugin_auth_unit-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: plugin-auth-unit\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        f"[{AUTH_ENTRY_POINT_GROUP}]\nplugin_token = plugin_auth_unit:PluginAuth\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert AUTH_STYLES.group == AUTH_ENTRY_POINT_GROUP
    styles: StyleRegistry[Auth] = StyleRegistry(
        "api_auth", Auth, BUILTIN_AUTH, AUTH_ENTRY_POINT_GROUP, "register_auth"
    )
    assert "plugin_token" in styles.names()
    auth = styles.create({"type": "plugin_token", "token": "plugin-tok-2290"})
    assert type(auth).__name__ == "PluginAuth" and mask("plugin-tok-2290") == "***"
    assert styles.problems({"type": "plugin_token"})[0][:2] == ("api_auth.token", "Field required")


def test_the_registries_hold_the_built_in_styles():
    assert {"bearer", "api_key", "basic", "oauth2_client_credentials"} <= set(AUTH_STYLES.names())
    assert {"none", "page", "offset", "cursor", "next_url", "link_header"} <= set(
        PAGINATORS.names())
    assert all(issubclass(PAGINATORS.style_class(n), Paginator) for n in PAGINATORS.builtins)
