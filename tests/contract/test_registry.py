"""Every registered connector joins the contract suite, and an entry that cannot talk to its
test server says so and proves it."""

from __future__ import annotations

from nexus_dagster.connectors.registry import connector_class, connector_types
from tests.contract.endpoints import ENTRIES


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


def test_every_connector_contract_runs_against_a_real_server():
    """No entry is ``server_free`` any more (Elasticsearch got its real node): every contract
    runs for every connector. An entry that cannot reach a test server must say why in
    ``server_free`` and get a test proving it really cannot."""
    assert [e.id for e in ENTRIES if e.server_free] == []
