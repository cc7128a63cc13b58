"""Every registered connector joins the contract suite, and an entry that cannot talk to its
test server says so and proves it."""

from __future__ import annotations

import pytest

from nexus_dagster.connectors.registry import connector_class, connector_types
from tests.contract.endpoints import ENTRIES, Endpoint, Entry


def test_every_registered_connector_has_an_entry():
    covered = {entry.type_name for entry in ENTRIES}
    missing = sorted(set(connector_types()) - covered)
    assert not missing, (
        f"connector(s) {missing} are registered but not in the contract suite: add an entry "
        "to ENTRIES in tests/contract/endpoints.py"
    )
    unknown = sorted(covered - set(connector_types()))
    assert not unknown, f"entries for unregistered connector types: {unknown}"


def test_entries_are_unique_and_explain_what_they_leave_out():
    assert len({e.id for e in ENTRIES}) == len(ENTRIES)
    for entry in ENTRIES:
        assert entry.cls is connector_class(entry.type_name)
        large = None if entry.large is True else entry.large
        for text in (entry.server_free, entry.no_secret, large, *entry.defects.values()):
            assert text is None or len(str(text)) > 15, f"{entry.id}: say why, in a sentence"


@pytest.mark.parametrize(
    "entry",
    [pytest.param(e, id=e.id, marks=e.marks) for e in ENTRIES if e.server_free],
)
def test_server_free_entries_really_cannot_reach_their_server(endpoint: Endpoint, entry: Entry):
    """When this fails the connector can talk to its test server: drop ``server_free`` from
    the entry, so every contract runs for it."""
    connector = endpoint.connector()
    assert connector.test_connection() is False, entry.server_free
