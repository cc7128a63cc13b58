"""One registry: a registered connector is a valid type for the spec checks, its typed params
are checked at load time (inline params at the job file, named ones at connections.yaml), and
an unknown type lists the known ones."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import pytest
from pydantic import ConfigDict

from nexus_dagster.connectors.base import Connector, ConnectorParams
from nexus_dagster.connectors.registry import (
    connector_class,
    connector_types,
    register_connector,
    unregister_connector,
)
from nexus_dagster.errors import SpecError, UnsupportedError
from nexus_dagster.spec.loader import collect


class PortParams(ConnectorParams):
    model_config = ConfigDict(extra="forbid")

    host: str
    port: int = 1


class PortConnector(Connector):
    """A source that needs a host and an integer port."""

    Params: ClassVar[type[ConnectorParams]] = PortParams
    source_requires: ClassVar[tuple[tuple[str, ...], ...]] = (("table",),)

    def describe(self) -> str:
        return f"port connector {self.config.host}"


@pytest.fixture
def registered() -> Iterator[str]:
    register_connector("port_system", PortConnector)
    yield "port_system"
    unregister_connector("port_system")


def write_project(folder, params: str, connections: str = "") -> None:
    specs = folder / "job_specs"
    specs.mkdir()
    if connections:
        (specs / "connections.yaml").write_text(connections)
    (specs / "job.yaml").write_text(
        "name: job\n"
        "sources:\n"
        f"  - {{name: a, source_type: port_system, {params}, table: t}}\n"
        "targets:\n"
        "  - {name: b, target_type: file, file_path: out.csv}\n"
    )


def test_a_registered_connector_is_a_valid_type(tmp_path, registered):
    write_project(tmp_path, "connection_params: {host: h, port: 5}")
    _, problems = collect([tmp_path / "job_specs"])
    assert problems == []
    assert "port_system" in connector_types()
    assert connector_class("port_system") is PortConnector


def test_inline_params_are_checked_by_the_connectors_model(tmp_path, registered):
    write_project(tmp_path, "connection_params: {host: h, port: abc, colour: red}")
    _, problems = collect([tmp_path / "job_specs"])
    shown = sorted(str(p) for p in problems)
    assert len(shown) == 2, shown
    assert "job.yaml:3: sources[0].connection_params.colour: Extra inputs are not permitted" in (
        shown[0])
    assert "sources[0].connection_params.port: Input should be a valid integer" in shown[1]
    assert "abc" not in shown[1].split("(fix")[0]  # the value itself is never repeated


def test_env_references_are_checked_at_run_time_only(tmp_path, registered):
    write_project(tmp_path, "connection_params: {host: h, port: '${PORT_FROM_ENV}'}")
    _, problems = collect([tmp_path / "job_specs"])
    assert problems == []


def test_named_connection_params_are_reported_at_connections_yaml(tmp_path, registered):
    connections = "sys:\n  type: port\n  host: h\n  port: abc\n"
    write_project(tmp_path, "connection: sys", connections=connections)
    _, problems = collect([tmp_path / "job_specs"])
    (found,) = problems
    assert found.file.endswith("connections.yaml") and found.line == 4
    assert found.field == "sys.port"
    assert "connection 'sys' (port, used as port_system by job job)" in found.message


def test_an_unknown_type_lists_the_registered_ones(tmp_path):
    with pytest.raises(UnsupportedError, match="supported: api, azure_blob, database"):
        connector_class("port_system")
    write_project(tmp_path, "connection_params: {host: h}")
    _, problems = collect([tmp_path / "job_specs"])
    (found,) = problems
    assert "source_type 'port_system' is not a registered connector" in str(found)
    assert "entry-point group nexus_dagster.connectors" in str(found)


def test_a_registered_path_that_does_not_import_is_a_clear_error():
    register_connector("broken_system", "no_such_module:Thing")
    try:
        with pytest.raises(SpecError, match="'no_such_module:Thing', which cannot be imported"):
            connector_class("broken_system")
    finally:
        unregister_connector("broken_system")


def test_names_must_be_identifiers():
    with pytest.raises(SpecError, match="must start with a letter"):
        register_connector("1-bad", PortConnector)
