"""Contract 4: a source acknowledges only after commit.

For sources with acknowledge semantics (Kafka consumer offsets, Redis stream ids kept as the
source's state): a read that is not acknowledged (a failed load: the runner neither calls
``acknowledge()`` nor keeps ``relation.stats["state"]``) is read again by the next run; after
``acknowledge()`` and with the kept state, the next read sees only what arrived since.
"""

from __future__ import annotations

import pytest

from nexus_dagster.connectors.base import Connector, ReadRequest
from nexus_dagster.relation import Relation
from tests.contract.endpoints import ENTRIES, Endpoint, Entry, cases

#: entries whose source has acknowledge semantics (their factory gives a Stream)
STREAMS = ("kafka", "redis")


def _ids(connector: Connector, request: ReadRequest) -> tuple[Relation, list[int]]:
    relation = connector.read(request)
    return relation, sorted(int(i) for i in relation.to_table()["id"].to_pylist())


@pytest.mark.parametrize(
    "entry", cases("test_only_acknowledged_data_is_not_read_again",
                   [e for e in ENTRIES if e.id in STREAMS]),
)
def test_only_acknowledged_data_is_not_read_again(endpoint: Endpoint, entry: Entry):
    stream = endpoint.stream
    assert stream is not None, f"{entry.id}: give the factory a Stream"
    seeded = stream.seed(1)

    failed = endpoint.connector()  # a run whose load fails: no acknowledge, no state kept
    assert _ids(failed, stream.request(None))[1] == seeded
    failed.close()

    committed = endpoint.connector()
    relation, ids = _ids(committed, stream.request(None))
    assert ids == seeded, "data read but not acknowledged must be read again"
    committed.acknowledge(relation)
    state = relation.stats.get("state")
    committed.close()

    after = endpoint.connector()
    assert _ids(after, stream.request(state))[1] == [], "acknowledged data came back"
    after.close()

    more = stream.seed(100)
    last = endpoint.connector()
    assert _ids(last, stream.request(state))[1] == more, "only what arrived since is read"
    last.close()
