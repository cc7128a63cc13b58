"""Contract 2: ``close()`` twice is safe, before any use and after a write and a read (a run
closes every connector at its end, failed or not, and may reach close() twice)."""

from __future__ import annotations

import gc

import pytest

from tests.contract.endpoints import Endpoint, Entry, cases
from tests.contract.rows import SAMPLE, relation


@pytest.mark.parametrize("entry", cases("test_close_twice_is_safe", server=False))
def test_close_twice_is_safe(endpoint: Endpoint, entry: Entry):
    unused = endpoint.connector()
    unused.close()
    unused.close()

    used = endpoint.connector()
    mode = endpoint.first_mode()
    if entry.server_free:
        used.describe()
        with pytest.raises(Exception):  # noqa: B017 - any failure: the server cannot answer
            used.read(endpoint.read_back(mode)).to_table()
    else:
        used.write(relation(SAMPLE), endpoint.write_request(mode))
        batches = iter(used.read(endpoint.read_back(mode)))
        next(batches)  # a read left half-way: its cursor/consumer is still open
    used.close()
    used.close()
    batches = None
    gc.collect()  # what the half-read leaves behind goes now, reported for this case
