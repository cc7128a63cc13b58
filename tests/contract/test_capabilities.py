"""Contract 5: declared capabilities are honoured.

* ``supports_incremental``: the connector filters by ``ReadRequest.cursor`` itself (the runner
  then does not), exclusive and inclusive, with an upper bound (a partition window), on an
  integer and on a timestamp column, the value typed or as ISO text (a spec's
  ``incremental_value``).
* ``supports_replace_range``: a write with ``replace_range`` replaces exactly the rows of the
  window, on an integer and on a timestamp column.
* a write mode not in ``write_modes`` is refused with an error naming the mode, before the
  data is read and with the target left as it was.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from nexus_dagster.connectors.base import Cursor
from nexus_dagster.errors import NexusError
from nexus_dagster.relation import Relation
from tests.contract.endpoints import ENTRIES, Endpoint, Entry, cases
from tests.contract.rows import CHANGED, SAMPLE, canonical, relation

UTC = dt.UTC
T0 = dt.datetime(2024, 1, 1, 10, 0, tzinfo=UTC)
DST = dt.datetime(2024, 3, 31, 1, 0, tzinfo=UTC)

#: (cursor, the ids of SAMPLE it selects)
CURSORS = [
    (Cursor("id", 2), [3, 4, 5, 6]),
    (Cursor("id", 2, inclusive=True), [2, 3, 4, 5, 6]),
    (Cursor("id", 2, inclusive=True, upper=5), [2, 3, 4]),
    (Cursor("ts", T0), [3, 5, 6]),
    (Cursor("ts", DST.isoformat(), inclusive=True), [3, 6]),
    (Cursor("ts", T0, inclusive=True, upper=DST), [1, 5]),
]


def _rows(endpoint: Endpoint, table: pa.Table) -> list[dict]:
    return canonical(table, endpoint.drop, endpoint.ts_unit, endpoint.as_text)


@pytest.mark.parametrize(
    "entry", cases("test_incremental_reads_filter_by_the_cursor",
                   [e for e in ENTRIES if e.cls.supports_incremental]),
)
def test_incremental_reads_filter_by_the_cursor(endpoint: Endpoint, entry: Entry):
    mode = endpoint.first_mode()
    endpoint.write(SAMPLE, mode)
    found = {}
    for cursor, _ in CURSORS:
        table = endpoint.read(mode, cursor=cursor)
        found[str(cursor)] = sorted(table["id"].to_pylist())
    assert found == {str(cursor): ids for cursor, ids in CURSORS}


@pytest.mark.parametrize(
    "entry", cases("test_replace_range_replaces_exactly_the_window",
                   [e for e in ENTRIES if e.cls.supports_replace_range]),
)
def test_replace_range_replaces_exactly_the_window(endpoint: Endpoint, entry: Entry):
    mode = endpoint.first_mode()
    endpoint.write(SAMPLE, mode)
    connector = endpoint.connector()

    # ids 2 <= id < 5 hold 2, 3, 4: the window's new data has 3 and 4 (changed), 2 is gone
    window = CHANGED.filter(pc.is_in(CHANGED["id"], pa.array([3, 4], pa.int64())))
    request = dataclasses.replace(endpoint.write_request(mode), replace_range=("id", 2, 5))
    connector.write(relation(window), request)
    kept = SAMPLE.filter(pc.is_in(SAMPLE["id"], pa.array([1, 5, 6], pa.int64())))
    assert _rows(endpoint, endpoint.read(mode)) == _rows(endpoint, pa.concat_tables([kept,
                                                                                     window]))

    # a day of timestamps: rows 5 and 6 are in it, the new data is row 8
    day = (dt.datetime(2024, 3, 31, tzinfo=UTC), dt.datetime(2024, 4, 1, tzinfo=UTC))
    new = pa.table({"id": [8], "name": ["partition"], "amount": [None], "score": [None],
                    "flag": [None], "ts": [dt.datetime(2024, 3, 31, 12, tzinfo=UTC)]},
                   schema=SAMPLE.schema)
    request = dataclasses.replace(endpoint.write_request(mode), replace_range=("ts", *day))
    connector.write(relation(new), request)
    kept = kept.filter(pc.is_in(kept["id"], pa.array([1], pa.int64())))
    assert _rows(endpoint, endpoint.read(mode)) == _rows(endpoint, pa.concat_tables([kept,
                                                                                     window, new]))


@pytest.mark.parametrize(
    ("entry", "mode"),
    cases("test_undeclared_write_modes_are_refused", server=False, modes=Entry.refused_modes),
)
def test_undeclared_write_modes_are_refused(endpoint: Endpoint, entry: Entry, mode: str):
    seeded = entry.server_free is None
    if seeded:
        endpoint.write(SAMPLE, endpoint.first_mode())
    opened = []

    def open_() -> object:
        opened.append(True)
        return iter(CHANGED.to_batches())

    connector = endpoint.connector()
    with pytest.raises(NexusError) as refused:
        connector.write(Relation(CHANGED.schema, open_), endpoint.write_request(mode))
    assert mode in str(refused.value)
    assert not opened, "the data was read before the write mode was refused"
    if seeded:
        assert _rows(endpoint, endpoint.read(endpoint.first_mode())) == _rows(endpoint, SAMPLE)
