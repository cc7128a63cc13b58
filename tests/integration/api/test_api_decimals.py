"""API targets send decimals as exact JSON numbers with their digits (the raw request body as a
local HTTP server received it)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow as pa
import pytest

from nexus_dagster.connectors.base import WriteRequest
from nexus_dagster.connectors.rest_api import ApiConnector
from nexus_dagster.relation import Relation

pytestmark = pytest.mark.api


@pytest.fixture
def sink() -> Iterator[tuple[str, list[bytes]]]:
    """The URL of a local server that answers 201 to every POST, and the bodies it got."""
    bodies: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            self.send_response(201)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/sink", bodies
    server.shutdown()
    server.server_close()


def test_api_target_sends_decimals_as_exact_json_numbers(sink: tuple[str, list[bytes]]) -> None:
    url, bodies = sink
    table = pa.table({
        "id": pa.array([1, 2], pa.int64()),
        "amount": pa.array([Decimal("900.10"), Decimal("12345678901234567.89")],
                           pa.decimal128(21, 2)),
    })
    conn = ApiConnector({"api_endpoint": url, "allow_http": True, "max_retries": 0})
    try:
        conn.write(Relation.from_table(table), WriteRequest())
    finally:
        conn.close()
    assert bodies == [b'[{"id":1,"amount":900.10},{"id":2,"amount":12345678901234567.89}]']
    records = json.loads(bodies[0], parse_float=Decimal)
    assert [r["amount"] for r in records] == [Decimal("900.10"), Decimal("12345678901234567.89")]
