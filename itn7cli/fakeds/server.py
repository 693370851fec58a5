"""The fake DS server over real HTTP on 127.0.0.1: GraphQL endpoint, signed file URLs, faults."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import secrets
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote

from graphql import OperationType

from .control import Faults, Stats, TokenSpec
from .dataset import Dataset
from .engine import DocumentCache, Prepared, RequestContext, run, schema
from .files import FileSpec, Storage
from .renders import URL_LIFE_SHARE, RenderCache, warm_up

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


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
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


class FakeDS:
    """A running fake Démarche Numérique API.

    `tokens` maps a bearer token to its `TokenSpec`; `rate_limit` is requests per window per
    token, in fixed windows of `rate_window` seconds (60, as DS; tests shorten it); `url_ttl` is
    the life of signed file URLs in seconds. `warm` keeps the completed dossiers of answers for reuse
    and completes the sync's pages once before serving (see renders.py), so that a benchmark of the
    client does not measure the fake's CPU; `warmed` then holds (dossiers, seconds) of that warm-up.
    """

    def __init__(
        self,
        dataset: Dataset | None = None,
        tokens: dict[str, TokenSpec] | None = None,
        *,
        port: int = 0,
        rate_limit: int = 400,
        rate_window: int = 60,
        url_ttl: float = 3600.0,
        fault_seed: int = 0,
        warm: bool = False,
    ) -> None:
        self.dataset = dataset if dataset is not None else Dataset.generate()
        self.tokens: dict[str, TokenSpec] = dict(tokens if tokens is not None else {"demo": TokenSpec(write=True)})
        self.port = port
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.url_ttl = url_ttl
        self.storage = Storage()  # the clock and controls of the signed file URLs
        self.faults = Faults(fault_seed)
        self.stats = Stats()
        self.documents = DocumentCache(schema())
        self.renders = (RenderCache(self.dataset, self.storage, lambda: self.url_ttl * URL_LIFE_SHARE)
                        if warm else None)
        self.warmed: tuple[int, float] | None = None
        self._secret = secrets.token_bytes(32)
        self._windows: dict[str, tuple[int, int]] = {}
        self._hits_lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeDS:
        """Bind 127.0.0.1 (port 0 = any free port) and serve in a background thread."""
        if self._httpd is not None:
            return self
        httpd = _HTTPServer(("127.0.0.1", self.port), _Handler)
        httpd.app = self
        self.port = httpd.server_address[1]
        self._httpd = httpd
        if self.renders is not None:  # once bound: the signed URLs it completes name the port
            self.renders.clear()
            self.warmed = warm_up(self)
        self._thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), name="fakeds", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> FakeDS:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:<port>"""
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The GraphQL endpoint."""
        return self.base_url + GRAPHQL_PATH

    def context(self, spec: TokenSpec, prepared: Prepared, stats: Stats | None = None) -> RequestContext:
        """What the resolvers of a request for `prepared` made with a token of this spec need."""
        return RequestContext(self.dataset, spec, prepared.named, self.sign, stats or self.stats, self.renders)

    # ------------------------------------------------------------------ signed URLs
    def sign(self, spec: FileSpec) -> str:
        """A download URL for a file, valid `url_ttl` seconds from now on the storage's clock."""
        now = self.storage.now()
        signed, expires = int(now * 1000), int((now + self.url_ttl) * 1000)
        payload = base64.urlsafe_b64encode(f"{spec.key}:{expires}:{signed}".encode()).decode().rstrip("=")
        mac = hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()[:24]
        return f"{self.base_url}/files/{payload}.{mac}"

    def _verify(self, token: str) -> str | None:
        """The file key of a signed URL still valid, else None (the refusal is counted)."""
        payload, _, mac = token.partition(".")
        good = hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()[:24]
        try:
            key, expires, signed = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode().rsplit(":", 2)
            if not hmac.compare_digest(mac, good):
                raise ValueError("signature")
        except ValueError:
            self.storage.refuse()
            return None
        return key if self.storage.valid(int(signed) / 1000, int(expires) / 1000) else None

    # ------------------------------------------------------------------ rate limit
    def _throttle(self, key: str) -> int | None:
        """The epoch second the current window ends if this request goes past the limit, else None.

        As DS's Rack::Attack throttle (config/initializers/rack_attack.rb): fixed windows aligned on
        the epoch, keyed on the Authorization header value, and every request counts, refused ones too.
        """
        window = int(time.time()) // self.rate_window
        with self._hits_lock:
            start, count = self._windows.get(key, (window, 0))
            count = count + 1 if start == window else 1
            self._windows[key] = (window, count)
        if count > self.rate_limit:
            return (window + 1) * self.rate_window
        return None


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


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "nginx"
    sys_version = ""
    timeout = 120
    server: _HTTPServer

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

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        self._send(status, body, "application/json; charset=utf-8")

    def _too_many(self, reset: int) -> None:
        # DS's own throttled_responder (config/initializers/rack_attack.rb): plain text, no Retry-After.
        self.app.stats.add("throttled")
        self._send(
            429,
            THROTTLED_BODY.encode(),
            "text/plain; charset=utf-8",
            {"RateLimit-Remaining": "0", "RateLimit-Reset": str(reset)},
        )

    def do_POST(self) -> None:
        """The GraphQL endpoint."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.split("?")[0] != GRAPHQL_PATH:
            self._send(404, b"Not Found\n", "text/plain")
            return
        app = self.app
        app.stats.add("requests")
        auth_header = self.headers.get("Authorization") or ""
        app.stats.note_minute(auth_header)
        app.faults.wait_if_held()
        if app.faults.latency > 0:
            time.sleep(app.faults.latency)
        fault = app.faults.draw()
        if fault:
            app.stats.count("faults", fault)
        if fault == "429":  # a window another client spent, ending `retry_after` seconds from now
            self._too_many(math.ceil(time.time() + app.faults.retry_after))
            return
        if fault in ("502", "503"):
            self._send(int(fault), HTML_ERRORS[int(fault)].encode(), "text/html; charset=utf-8")
            return
        reset = app._throttle(auth_header)
        if reset is not None:
            self._too_many(reset)
            return
        token = _bearer(auth_header)
        spec = app.tokens.get(token) if token else None
        if spec is None:
            self._json(403, _error_body("Without a token, only persisted queries are allowed", "forbidden"))
            return
        if spec.expired or app.faults.expired_token:
            self._json(401, _error_body("Token expired", "unauthorized"))
            return
        if spec.forbidden_network or app.faults.forbidden_network:
            self._json(
                403,
                _error_body(
                    "Request issued from a forbidden network. Add 127.0.0.1/32 to your "
                    "allowed adresses in your /profil",
                    "forbidden",
                ),
            )
            return
        try:
            request = json.loads(raw or b"{}")
            variables = request.get("variables")
            if isinstance(variables, str):
                variables = json.loads(variables) if variables.strip() else None
            query = request.get("query")
            if not isinstance(query, str):
                raise ValueError("query")
        except (ValueError, AttributeError):
            self._json(400, _error_body("No query string was present", "bad_request"))
            return
        prepared = app.documents.get(query)
        operation_name = request.get("operationName") or None
        if operation_name is None and len(prepared.operations) == 1:
            operation_name = next(iter(prepared.operations))
        app.stats.count("operations", operation_name or "")
        if prepared.syntax_error:
            self._json(400, {"errors": [e.formatted for e in prepared.errors]})
            return
        ctx = app.context(spec, prepared)
        body = run(prepared, ctx, variables, operation_name)
        if fault == "timeout" and prepared.operations.get(operation_name) == OperationType.QUERY:
            body = _inject_timeout(body)
        slow = app.faults.slow_dossiers()
        if slow:
            body = _time_out_dossiers(body, slow)
        self._json(200, body)

    def do_GET(self) -> None:
        """Signed file downloads."""
        path = self.path.split("?")[0]
        if not path.startswith("/files/"):
            self._send(404 if path != GRAPHQL_PATH else 405, b"Not Found\n", "text/plain")
            return
        app = self.app
        key = app._verify(path[len("/files/") :])
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
