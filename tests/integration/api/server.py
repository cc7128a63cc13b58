"""A real HTTP API for the tests: ThreadingHTTPServer on 127.0.0.1, in a background thread.

It behaves like the SaaS APIs we pull from: every pagination style, every auth style (with an
OAuth2 token endpoint whose tokens expire or get revoked), 429 with Retry-After, intermittent
500s, slow answers, HTML error pages, truncated and malformed JSON, a schema that changes
between pages, and sinks that record what targets POST/PUT (honouring idempotency keys); a
POST/PUT to ``/collections/<name>`` is also listed by ``GET /collections/<name>`` (``{"data":
[...]}``), so a target's load can be read back through the API.

Counters are per ``key`` query parameter so tests do not disturb each other.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "s3cret-bearer-token"
API_KEY = "k3y-abcdef-123456"
BASIC = ("etl", "b4sic-pass-word")
CLIENT_ID, CLIENT_SECRET = "nexus-client", "cl1ent-s3cret-value"


def make_users(n: int = 23) -> list[dict[str, Any]]:
    return [
        {
            "id": i,
            "name": f"user {i}" if i != 3 else "Zoë ünïcode",
            "address": {"city": f"city{i % 4}", "geo": {"lat": i / 10, "lng": None}},
            "tags": ["a", "b"][: i % 3],
            "score": i * 1.5,
            "updated_at": f"2024-01-{1 + i:02d}T10:00:00",
        }
        for i in range(1, n + 1)
    ]


class State:
    """What the server knows and remembers."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = make_users()
        self.counts: dict[str, int] = defaultdict(int)
        self.tokens: dict[str, float] = {}  # oauth token -> expiry (monotonic)
        self.token_requests = 0
        self.token_lifetime = 3600
        self.received: list[dict[str, Any]] = []  # every POST/PUT attempt
        self.applied: dict[str, Any] = {}  # idempotency key -> body, first success only
        self.records: list[Any] = []  # records applied
        self.collections: dict[str, list[Any]] = defaultdict(list)  # path -> records applied
        self.requests: list[tuple[str, str, dict[str, str]]] = []

    def hit(self, name: str) -> int:
        with self.lock:
            self.counts[name] += 1
            return self.counts[name]


class Handler(BaseHTTPRequestHandler):
    server_version = "TestAPI/1.0"
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    state: State

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    # ------------------------------------------------------------------ helpers
    def _send(self, status: int, body: Any = None, *, raw: bytes | None = None,
              content_type: str = "application/json", headers: dict[str, str] | None = None):
        data = raw if raw is not None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _args(self) -> tuple[str, dict[str, str]]:
        parts = urlsplit(self.path)
        return parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()}

    def _authorized(self, path: str, q: dict[str, str]) -> bool:
        auth = self.headers.get("Authorization", "")
        if path.startswith("/bearer/"):
            return auth == f"Bearer {TOKEN}"
        if path.startswith("/apikey/"):
            return self.headers.get("X-API-Key") == API_KEY or q.get("api_key") == API_KEY
        if path.startswith("/basic/"):
            expected = base64.b64encode(f"{BASIC[0]}:{BASIC[1]}".encode()).decode()
            return auth == f"Basic {expected}"
        if path.startswith("/oauth/"):
            token = auth.removeprefix("Bearer ")
            expiry = self.state.tokens.get(token)
            return expiry is not None and time.monotonic() < expiry
        return True

    # ------------------------------------------------------------------ token endpoint
    def _token(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        form = {k: v[-1] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        if (form.get("grant_type") != "client_credentials"
                or form.get("client_id") != CLIENT_ID
                or form.get("client_secret") != CLIENT_SECRET):
            self._send(401, {"error": "invalid_client"})
            return
        token = uuid.uuid4().hex
        with self.state.lock:
            self.state.token_requests += 1
            self.state.tokens[token] = time.monotonic() + self.state.token_lifetime
        self._send(200, {"access_token": token, "token_type": "bearer",
                         "expires_in": self.state.token_lifetime})

    # ------------------------------------------------------------------ GET
    def do_GET(self) -> None:
        path, q = self._args()
        self.state.requests.append(("GET", self.path, dict(self.headers)))
        if not self._authorized(path, q):
            self._send(401, {"error": "unauthorized"}, headers={"WWW-Authenticate": "Bearer"})
            return
        # strip the auth prefix: /bearer/users/page == /users/page behind bearer auth
        for prefix in ("/bearer", "/apikey", "/basic", "/oauth"):
            if path.startswith(prefix + "/"):
                path = path[len(prefix):]
        users = self.state.users
        key = q.get("key", "")
        if path == "/users":  # top-level list, no pagination
            self._send(200, users)
        elif path == "/users/wrapped":
            self._send(200, {"meta": {"count": len(users)}, "results": users})
        elif path == "/users/nested":
            self._send(200, {"response": {"data": {"items": users}}})
        elif path == "/users/page":
            page, size = int(q.get("page", 1)), int(q.get("per_page", 10))
            total_pages = -(-len(users) // size)
            chunk = users[(page - 1) * size: page * size]
            self._send(200, {"data": chunk, "meta": {"page": page, "total_pages": total_pages}})
        elif path == "/users/offset":
            offset, limit = int(q.get("offset", 0)), int(q.get("limit", 10))
            self._send(200, {"results": users[offset: offset + limit], "total": len(users)})
        elif path == "/users/cursor":
            start = int(q.get("cursor", "0") or 0)
            chunk = users[start: start + 7]
            following = str(start + 7) if start + 7 < len(users) else None
            self._send(200, {"items": chunk, "meta": {"next_cursor": following}})
        elif path == "/users/next":
            after = int(q.get("after", 0))
            chunk = users[after: after + 6]
            body: dict[str, Any] = {"data": chunk}
            if after + 6 < len(users):
                body["links"] = {"next": f"/users/next?after={after + 6}"}
            self._send(200, body)
        elif path == "/users/link":
            page = int(q.get("page", 1))
            chunk = users[(page - 1) * 5: page * 5]
            headers = {}
            if page * 5 < len(users):
                base = f"http://{self.headers['Host']}/users/link"
                headers["Link"] = (f'<{base}?page={page + 1}>; rel="next", '
                                   f'<{base}?page=1>; rel="first"')
            self._send(200, chunk, headers=headers)
        elif path == "/loop":
            self._send(200, {"data": [{"id": 1}], "next_cursor": "same"})
        elif path == "/events":
            since = q.get("updated_since")
            rows = [u for u in users if since is None or u["updated_at"] >= since]
            page, size = int(q.get("page", 1)), int(q.get("per_page", 100))
            self._send(200, {"data": [
                {"id": u["id"], "name": u["name"], "updated_at": u["updated_at"]}
                for u in rows[(page - 1) * size: page * size]
            ]})
        elif path == "/rate_limited":
            if self.state.hit(f"429{key}") <= 1:
                self._send(429, {"error": "slow down"}, headers={"Retry-After": "1"})
            else:
                self._send(200, {"data": users[:3]})
        elif path == "/flaky":
            fails = int(q.get("fail", 2))
            if self.state.hit(f"flaky{key}") <= fails:
                self._send(500, {"error": "boom"})
            else:
                self._send(200, {"data": users[:4]})
        elif path == "/always500":
            self._send(503, raw=b"<html><body>Service Unavailable</body></html>",
                       content_type="text/html")
        elif path == "/pages_fail":  # page 3 always fails: nothing may be loaded
            page = int(q.get("page", 1))
            if page >= 3:
                self._send(500, {"error": "page 3 is broken"})
            else:
                self._send(200, {"data": users[(page - 1) * 5: page * 5]})
        elif path == "/slow":
            time.sleep(float(q.get("delay", 2)))
            self._send(200, {"data": users[:1]})
        elif path == "/html":
            self._send(200, raw=b"<!DOCTYPE html><html><title>Maintenance</title>"
                       b"<body>We will be back soon</body></html>", content_type="text/html")
        elif path == "/truncated":
            self._send(200, raw=b'{"data": [{"id": 1, "name": "a"}, {"id": 2, "na')
        elif path == "/malformed":
            self._send(200, raw=b'{"data": [{"id": 1,, "name": "a"}]}')
        elif path == "/changed_type":
            page = int(q.get("page", 1))
            rows = [{"id": 1, "amount": 10}] if page == 1 else (
                [{"id": 2, "amount": "ten"}] if page == 2 else [])
            self._send(200, {"data": rows})
        elif path.startswith("/collections/"):
            with self.state.lock:
                self._send(200, {"data": list(self.state.collections.get(path, []))})
        elif path == "/changed_path":
            page = int(q.get("page", 1))
            body = {"data": {"items": [{"id": page}]}} if page == 1 else {"records": []}
            self._send(200, body)
        else:
            self._send(404, {"error": f"no route {path}"})

    # ------------------------------------------------------------------ POST/PUT
    def _receive(self) -> None:
        path, q = self._args()
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"null")
        idem = self.headers.get("Idempotency-Key")
        key = q.get("key", "")
        with self.state.lock:
            self.state.received.append({"method": self.command, "path": path,
                                        "idempotency_key": idem, "body": body})
        if not self._authorized(path, q):
            self._send(401, {"error": "unauthorized"})
            return
        if path.endswith("/flaky_sink") and self.state.hit(f"sink{key}{idem}") <= 1:
            # the first attempt of every batch fails after the server applied nothing
            self._send(503, {"error": "try again"})
            return
        if path.endswith("/reject_sink") and isinstance(body, list) and any(
                r.get("id") == 17 for r in body if isinstance(r, dict)):
            self._send(422, {"error": "record 17 is invalid"})
            return
        with self.state.lock:
            if idem and idem in self.state.applied:
                self._send(200, {"status": "duplicate ignored"})
                return
            if idem:
                self.state.applied[idem] = body
            items = body if isinstance(body, list) else body.get("records", [body])
            self.state.records.extend(items)
            if path.startswith("/collections/"):
                self.state.collections[path].extend(items)
        self._send(201 if self.command == "POST" else 200, {"status": "ok"})

    def do_POST(self) -> None:
        path, _ = self._args()
        if path == "/token":
            self._token()
        else:
            self._receive()

    def do_PUT(self) -> None:
        self._receive()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # clients that time out hang up on purpose; nothing to report
        return


class ApiServer:
    """The server and its state; ``url`` is ``http://127.0.0.1:<port>``."""

    def __init__(self) -> None:
        self.state = State()
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.httpd = _QuietServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> ApiServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def reset(self) -> None:
        """Forget counters, tokens and received data (between tests)."""
        fresh = State()
        for name, value in vars(fresh).items():
            if name != "lock":
                setattr(self.state, name, value)
