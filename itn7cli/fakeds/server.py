"""The fake DS server: its settings, lifecycle and signed file URLs (the HTTP side is in handler.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading

from .control import Faults, Stats, Throttle, TokenSpec
from .dataset import Dataset
from .engine import DocumentCache, Prepared, RequestContext, schema
from .files import FileSpec, Storage
from .handler import GRAPHQL_PATH, Handler, HTTPServer
from .renders import URL_LIFE_SHARE, RenderCache, warm_up


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
        self.renders: RenderCache | None = None
        if warm:
            from . import executor  # noqa: F401  (fails here, not at the first request, before graphql-core 3.3)

            self.renders = RenderCache(self.dataset, self.storage, lambda: self.url_ttl * URL_LIFE_SHARE)
        self.warmed: tuple[int, float] | None = None
        self._secret = secrets.token_bytes(32)
        self.throttle = Throttle()
        self._httpd: HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeDS:
        """Bind 127.0.0.1 (port 0 = any free port) and serve in a background thread."""
        if self._httpd is not None:
            return self
        httpd = HTTPServer(("127.0.0.1", self.port), Handler)
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

    def verify(self, token: str) -> str | None:
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


__all__ = ["FakeDS"]
