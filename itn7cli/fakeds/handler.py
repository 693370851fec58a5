"""The HTTP side of the fake DS: the GraphQL endpoint with DS's faults, rate limit and token checks, and
signed file downloads."""

from __future__ import annotations

import json
import math
import socket
import sys
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import msgspec
from graphql import OperationType

from .control import TokenSpec
from .engine import Prepared, run

if TYPE_CHECKING:
    from .server import FakeDS

GRAPHQL_PATH = "/api/v2/graphql"
THROTTLED_BODY = (
    "Calme toi, cowboy ! Tu fais trop de requêtes. Fais une pause et réessaie bientôt.\n"
    "Calm down, cowboy! You're making too many requests. Take a breather and try again soon.\n"
)
HTML_ERRORS = {
    502: "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center>"
    "<hr><center>nginx</center></body></html>\n",
    503: "<!DOCTYPE html><html><head><title>Maintenance</title></head><body><h1>Service temporairement "
    "indisponible</h1><p>Nous effectuons une maintenance. Merci de réessayer dans quelques minutes.</p>"
    "</body></html>\n",
}


def _error_body(message: str, code: str) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": code}}], "data": None}


class HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # a sync opens its connections all at once: the default backlog of 5 is short
    app: FakeDS

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        # Without it every small response waits for the peer's delayed ACK (≈ 40 ms).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that goes away mid-response (killed, timed out) is part of the game, not a server bug.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() not in ("bearer", "token"):
        return None
    rest = rest.strip()
    if rest.startswith("token="):
        rest = rest[len("token=") :].split(",")[0].strip().strip('"')
    return rest or None


def _inject_timeout(body: dict[str, Any]) -> dict[str, Any]:
    """Turn a good response into the partial data a 30 s server timeout gives."""
    data = body.get("data") or {}
    errors = list(body.get("errors") or [])
    nodes = ((data.get("demarche") or {}).get("dossiers") or {}).get("nodes") if isinstance(data, dict) else None
    if nodes:
        for i in range(0, len(nodes), 3):
            nodes[i] = None
            errors.append(
                {
                    "message": "Timeout on Dossier.champs",
                    "locations": [],
                    "path": ["demarche", "dossiers", "nodes", i, "champs"],
                    "extensions": {"code": "timeout"},
                }
            )
    else:
        root = next(iter(data), "demarche") if isinstance(data, dict) else "demarche"
        errors.append(
            {
                "message": "Timeout on Dossier.champs" if root == "dossier" else f"Timeout on Query.{root}",
                "locations": [],
                "path": [root, "champs"] if root == "dossier" else [root],
                "extensions": {"code": "timeout"},
            }
        )
        body["data"] = None
    body["errors"] = errors
    return body


def _time_out_dossiers(body: dict[str, Any], slow: set[int]) -> dict[str, Any]:
    """Every read of a slow dossier's champs hits DS's 30 s limit (app/graphql/api/v2/schema.rb,
    `Timeout`): its node is null, with a `timeout` error, and the rest of the answer is partial data."""
    data = body.get("data")
    if not isinstance(data, dict):
        return body
    errors = list(body.get("errors") or [])
    nodes: list[Any] = ((data.get("demarche") or {}).get("dossiers") or {}).get("nodes") or []
    for i, node in enumerate(nodes):
        if node and node.get("number") in slow and "champs" in node:
            nodes[i] = None
            errors.append({"message": "Timeout on Dossier.champs", "locations": [],
                           "path": ["demarche", "dossiers", "nodes", i, "champs"], "extensions": {"code": "timeout"}})
    single = data.get("dossier")
    if isinstance(single, dict) and single.get("number") in slow and "champs" in single:
        body["data"] = None  # Query.dossier is non-null: the null goes up to the root
        errors.append({"message": "Timeout on Dossier.champs", "locations": [], "path": ["dossier", "champs"],
                       "extensions": {"code": "timeout"}})
    if errors:
        body["errors"] = errors
    return body



@dataclass
class Reply:
    """A whole HTTP response."""

    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)


_encode = msgspec.json.Encoder().encode  # a page of 100 dossiers is over a megabyte: six times json.dumps


def _json(status: int, payload: dict[str, Any]) -> Reply:
    body = _encode(payload)
    return Reply(status, body, "application/json; charset=utf-8")


def _too_many(app: FakeDS, reset: int) -> Reply:
    # DS's own throttled_responder (config/initializers/rack_attack.rb): plain text, no Retry-After.
    app.stats.add("throttled")
    return Reply(429, THROTTLED_BODY.encode(), "text/plain; charset=utf-8",
                 {"RateLimit-Remaining": "0", "RateLimit-Reset": str(reset)})


def _token(app: FakeDS, auth_header: str) -> TokenSpec | Reply:
    """The token's spec, or the answer DS gives a request without a usable token."""
    token = _bearer(auth_header)
    spec = app.tokens.get(token) if token else None
    if spec is None:
        return _json(403, _error_body("Without a token, only persisted queries are allowed", "forbidden"))
    if spec.expired or app.faults.expired_token:
        return _json(401, _error_body("Token expired", "unauthorized"))
    if spec.forbidden_network or app.faults.forbidden_network:
        message = "Request issued from a forbidden network. Add 127.0.0.1/32 to your allowed adresses in your /profil"
        return _json(403, _error_body(message, "forbidden"))
    return spec


@dataclass
class Request:
    """A GraphQL POST's document, variables and operation (named, or the document's only one)."""

    prepared: Prepared
    variables: Any
    operation: str | None


def _request(app: FakeDS, raw: bytes) -> Request | None:
    """What a POST body asks; None without a query string."""
    try:
        body = json.loads(raw or b"{}")
        variables = body.get("variables")
        if isinstance(variables, str):
            variables = json.loads(variables) if variables.strip() else None
        query, name = body.get("query"), body.get("operationName")
    except (ValueError, AttributeError):
        return None
    if not isinstance(query, str):
        return None
    prepared = app.documents.get(query)
    if not (isinstance(name, str) and name):
        name = next(iter(prepared.operations)) if len(prepared.operations) == 1 else None
    return Request(prepared, variables, name)


def graphql(app: FakeDS, auth_header: str, raw: bytes) -> Reply:
    """A POST to the GraphQL endpoint, answered `latency` seconds after it arrived (held requests: after
    their release) and no sooner: DS computes its answers on many workers at once, so the fake's own
    time to answer is part of that latency, not added to it (its one process would make a burst of
    requests wait for each other)."""
    app.stats.add("requests")
    app.stats.note_minute(auth_header)
    request = _request(app, raw)
    app.faults.wait_if_held(request.operation if request else None)
    arrived = time.monotonic()
    reply = _answer(app, auth_header, request)
    if (left := app.faults.latency - (time.monotonic() - arrived)) > 0:
        time.sleep(left)
    return reply


def _answer(app: FakeDS, auth_header: str, request: Request | None) -> Reply:
    """Faults, DS's rate limit, the token, then the answer. The limit counts a request on arrival, before
    any work, as DS's rack-attack does (config/initializers/rack_attack.rb)."""
    fault = app.faults.draw()
    if fault:
        app.stats.count("faults", fault)
    if fault == "429":  # a window another client spent, ending `retry_after` seconds from now
        return _too_many(app, math.ceil(time.time() + app.faults.retry_after))
    if fault in ("502", "503"):
        return Reply(int(fault), HTML_ERRORS[int(fault)].encode(), "text/html; charset=utf-8")
    reset = app.throttle.hit(auth_header, app.rate_limit, app.rate_window)
    if reset is not None:
        return _too_many(app, reset)
    spec = _token(app, auth_header)
    if isinstance(spec, Reply):
        return spec
    if request is None:
        return _json(400, _error_body("No query string was present", "bad_request"))
    prepared, variables, operation_name = request.prepared, request.variables, request.operation
    app.stats.count("operations", operation_name or "")
    if prepared.syntax_error:
        return _json(400, {"errors": [e.formatted for e in prepared.errors]})
    body = run(prepared, app.context(spec, prepared), variables, operation_name)
    if fault == "timeout" and prepared.operations.get(operation_name) == OperationType.QUERY:
        body = _inject_timeout(body)
    slow = app.faults.slow_dossiers()
    if slow:
        body = _time_out_dossiers(body, slow)
    return _json(200, body)


class Handler(BaseHTTPRequestHandler):
    """Routes a request to the GraphQL endpoint or to a signed file download."""

    protocol_version = "HTTP/1.1"
    server_version = "nginx"
    sys_version = ""
    timeout = 120
    server: HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: tests and benchmarks read their own output."""

    @property
    def app(self) -> FakeDS:
        return self.server.app

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        """The GraphQL endpoint."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.split("?")[0] != GRAPHQL_PATH:
            self._send(404, b"Not Found\n", "text/plain")
            return
        reply = graphql(self.app, self.headers.get("Authorization") or "", raw)
        self._send(reply.status, reply.body, reply.content_type, reply.headers)

    def do_GET(self) -> None:
        """Signed file downloads."""
        path = self.path.split("?")[0]
        if not path.startswith("/files/"):
            self._send(404 if path != GRAPHQL_PATH else 405, b"Not Found\n", "text/plain")
            return
        app = self.app
        key = app.verify(path[len("/files/") :])
        if key is None:
            # OpenStack Swift's tempurl middleware, DS's production store, answers 401 to an expired or
            # invalid temp URL (S3 would answer 403); DS signs them for 1 hour (config/initializers/active_storage.rb).
            self._send(401, b"401 Unauthorized: Temp URL invalid\n", "text/plain")
            return
        spec = app.dataset.files.get(key)
        if spec is None:
            self._send(404, b"Not Found\n", "text/plain")
            return
        self.send_response(200)
        self.send_header("Content-Type", spec.content_type)
        self.send_header("Content-Length", str(spec.size))
        self.send_header("Content-Disposition", "attachment; filename*=UTF-8''" + quote(spec.filename, safe=""))
        self.end_headers()
        corrupt = app.faults.is_corrupt(key)
        sent = 0
        try:
            for chunk in app.dataset.content.stream(key, spec.size, corrupt=corrupt):
                self.wfile.write(chunk)
                sent += len(chunk)
                app.storage.sent(sent)
        except (BrokenPipeError, ConnectionResetError):
            return
        app.stats.add("files_served")
        app.storage.served()


__all__ = ["GRAPHQL_PATH", "HTTPServer", "Handler", "Reply", "graphql"]
