"""Contract 3: what a target wrote, a source reads back, in every write mode the connector
declares (connectors that are both source and target).

``append`` twice gives twice the rows (a key-value store, where a row's key can exist once,
says so in its entry and gives the rows once); ``overwrite`` leaves only the new rows;
``upsert`` updates the keys it meets and adds the others, never duplicating one. The sample has
nulls, unicode (non-BMP too), decimals and time-zone-aware timestamps (tests/contract/rows.py);
the many-rows case runs for the entries where it is cheap (an entry's ``large`` says why not).
"""

from __future__ import annotations

import pyarrow as pa
import pytest

from tests.contract.endpoints import ENTRIES, Endpoint, Entry, cases
from tests.contract.rows import CHANGED, SAMPLE, arrow_rows, canonical, large, upserted

BOTH_WAYS = [e for e in ENTRIES if e.cls.is_source and e.cls.is_target]
LARGE_ROWS = 120_000
LARGE_BATCH = 25_000


def rows(endpoint: Endpoint, table: pa.Table) -> list[dict]:
    return canonical(table, endpoint.drop, endpoint.ts_unit, endpoint.as_text)


@pytest.mark.parametrize(
    ("entry", "mode"), cases("test_round_trip", BOTH_WAYS, modes=Entry.modes)
)
def test_round_trip(endpoint: Endpoint, entry: Entry, mode: str):
    expected = rows(endpoint, SAMPLE)
    loaded = endpoint.write(SAMPLE, mode)
    assert loaded.rows_loaded == SAMPLE.num_rows
    assert rows(endpoint, endpoint.read(mode)) == expected

    if mode == "append":
        endpoint.write(SAMPLE, mode)
        twice = SAMPLE if endpoint.keyed_append else pa.concat_tables([SAMPLE, SAMPLE])
        assert rows(endpoint, endpoint.read(mode)) == rows(endpoint, twice)
    elif mode == "overwrite":
        endpoint.write(CHANGED, mode)
        assert rows(endpoint, endpoint.read(mode)) == rows(endpoint, CHANGED)
    else:
        endpoint.write(CHANGED, mode)
        assert rows(endpoint, endpoint.read(mode)) == rows(endpoint, upserted(SAMPLE, CHANGED))


@pytest.mark.slow
@pytest.mark.parametrize(
    "entry", cases("test_many_rows_round_trip", [e for e in BOTH_WAYS if e.large is True])
)
def test_many_rows_round_trip(endpoint: Endpoint, entry: Entry):
    """120k rows written and read in batches of 25k: every row back, no batch too big."""
    mode = endpoint.first_mode()
    data = large(LARGE_ROWS)
    loaded = endpoint.write(data, mode, batch_size=LARGE_BATCH)
    assert loaded.rows_loaded == LARGE_ROWS
    connector = endpoint.connector()
    request = endpoint.read_back(mode)
    request.batch_size = LARGE_BATCH
    batches = list(connector.read(request))
    assert len(batches) > 1
    assert max(b.num_rows for b in batches) <= LARGE_BATCH
    back = pa.Table.from_batches(batches)
    assert back.num_rows == LARGE_ROWS
    assert arrow_rows(back).equals(arrow_rows(data))
