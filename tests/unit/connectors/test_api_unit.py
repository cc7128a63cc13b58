"""API spec fields, registries, record finding and flattening: no server needed."""

from __future__ import annotations

import textwrap

import pytest
from pydantic import ValidationError

from nexus_dagster.connectors.http.auth import make_auth
from nexus_dagster.connectors.http.client import register_header_secrets, safe_url
from nexus_dagster.connectors.http.pagination import Paginator, make_paginator, register_paginator
from nexus_dagster.connectors.http.response_records import find_records, flatten, flatten_records
from nexus_dagster.errors import DataError, SpecError
from nexus_dagster.secrets import mask
from nexus_dagster.spec.api_fields import endpoint_params
from nexus_dagster.spec.loader import collect
from nexus_dagster.spec.models import DataSource, DataTarget, SourceType


def test_nexus_example_2_shape_is_valid():
    source = DataSource(name="users", source_type=SourceType.API,
                        api_endpoint="https://api.example.com/users", api_method="GET",
                        api_headers={"Authorization": "Bearer TOKEN"})
    params = endpoint_params(source)
    assert params["api_headers"] == {"Authorization": "Bearer TOKEN"}
    assert params["api_pagination"] is None and params["flatten_depth"] == 3


def test_api_fields_are_rejected_on_other_types_and_http_needs_allow_http():
    with pytest.raises(ValidationError, match="api_pagination: only for type api"):
        DataSource(name="f", source_type="file", file_path="a.csv",
                   api_pagination={"type": "page"})
    with pytest.raises(ValidationError, match="plain http"):
        DataTarget(name="t", target_type="api", api_endpoint="http://x.example.com/in")
    assert DataTarget(name="t", target_type="api", api_endpoint="http://127.0.0.1/in",
                      allow_http=True).api_method == "POST"
    with pytest.raises(ValidationError, match="incremental_column"):
        DataSource(name="s", source_type="api", api_endpoint="https://x", incremental_param="u")


def test_target_batch_size_defaults_to_100_records_per_request():
    target = DataTarget(name="t", target_type="api", api_endpoint="https://x.example.com/in")
    assert endpoint_params(target)["request_batch_size"] == 100
    sized = DataTarget(name="t", target_type="api", api_endpoint="https://x", batch_size=7)
    assert endpoint_params(sized)["request_batch_size"] == 7


def test_unknown_styles_list_the_known_ones_and_registries_extend():
    with pytest.raises(SpecError, match=r"api_pagination.type: 'graphql' .*cursor.*link_header"):
        make_paginator({"type": "graphql"})
    with pytest.raises(SpecError, match=r"api_auth.type: .*use one of: api_key, basic, bearer"):
        make_auth({"type": "kerberos"})

    class Fixed(Paginator):
        def next(self, request, response, body, count):
            return None

    register_paginator("fixed_test", Fixed)
    assert isinstance(make_paginator({"type": "fixed_test"}), Fixed)


@pytest.mark.parametrize(("body", "ids"), [
    ([{"id": 1}], [1]),
    ({"data": [{"id": 2}]}, [2]),
    ({"meta": {}, "results": [{"id": 3}]}, [3]),
    ({"data": {"items": [{"id": 4}]}}, [4]),
    ({"count": 1, "customers": [{"id": 5}]}, [5]),
    ({"id": 6, "name": "single object"}, [6]),
])
def test_records_auto_detection(body, ids):
    assert [r["id"] for r in find_records(body, None, "test")] == ids


def test_records_path_errors_name_the_keys():
    with pytest.raises(DataError, match=r"records_path 'data.items'.*keys: results"):
        find_records({"results": []}, "data.items", "page 2")
    with pytest.raises(DataError, match="holds a str"):
        find_records({"data": "x"}, "data", "page 1")


def test_flatten_depth_lists_and_explode():
    record = {"id": 1, "a": {"b": {"c": 1}}, "tags": [1, 2], "empty": {}}
    assert flatten(record, 1) == {"id": 1, "a.b": '{"c":1}', "tags": "[1,2]", "empty": "{}"}
    assert flatten(record, 5)["a.b.c"] == 1
    rows = flatten_records([{"id": 1, "o": {"lines": [{"sku": "x"}, {"sku": "y"}]}}], 3,
                           "o.lines")
    assert rows == [{"id": 1, "o.lines.sku": "x"}, {"id": 1, "o.lines.sku": "y"}]


def test_safe_url_and_header_secrets():
    shown = safe_url("https://u:pw@api.example.com/v1/x?api_key=abc123&page=2", {"token": "t0k"})
    assert shown == "https://api.example.com/v1/x?api_key=***&page=2&token=***"
    register_header_secrets({"X-Api-Key": "header-key-777", "Authorization": "Token zzz-999"})
    assert mask("sent header-key-777 and zzz-999") == "sent *** and ***"


def test_named_connection_with_http_base_url_is_a_project_problem(tmp_path):
    folder = tmp_path / "job_specs"
    folder.mkdir()
    (folder / "connections.yaml").write_text("crm: {type: api, base_url: 'http://crm.example.com'}\n")
    (folder / "job.yaml").write_text(textwrap.dedent("""\
        name: pull_crm
        sources:
          - {name: contacts, source_type: api, connection: crm, api_endpoint: /contacts}
        targets:
          - {name: out, target_type: file, file_path: out.csv}
        """))
    _, problems = collect([folder])
    assert any("base_url" in str(p) and "plain http" in str(p) for p in problems), problems
