"""GraphQL over httpx: one pooled client, the token's rate limit, and the one retry policy.

The transport is plain httpx rather than gql's: rate limiting and partial-data timeouts must be seen
at the HTTP layer (a 429 or a 200 carrying `errors` is not a success), which gql's transport hides.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Self

import httpx

from .. import queries
from ..errors import ApiError
from .answers import Answer, PageError, TransientError, read_answer

USER_AGENT = "itn7 (SGAR PACA; https://github.com/) httpx"
DS_LIMIT = 400  # requests per minute per token (DS config/initializers/rack_attack.rb)


def retryable_status(status: int) -> bool:
    """The one rule for GraphQL and file downloads: 408, 425, 429 and 5xx deserve another try, no other 4xx."""
    return status in (408, 425, 429) or status >= 500


class RateLimiter:
    """Token bucket shared by every thread: at most `burst + per_minute` requests in any minute.

    With the defaults (300/min, burst 100) the clients of one token never exceed the API's 400
    requests in any minute, calendar minutes included; a 429 pauses every thread until the
    server's window ends (`pause`).
    """

    def __init__(self, per_minute: int, burst: int | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(burst if burst is not None else max(1, min(100, DS_LIMIT - per_minute)))
        self.tokens = self.capacity
        self.clock, self.sleep = clock, sleep
        self.updated = clock()
        self.paused_until = 0.0
        self.lock = threading.Lock()

    def acquire(self) -> None:
        """Takes a token, sleeping as long as needed; callers past the burst queue up at the rate."""
        with self.lock:
            now = self.clock()
            # Negative tokens are a debt: requests already promised a later slot.
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate) - 1
            self.updated = now
            wait = max(self.paused_until - now, -self.tokens / self.rate if self.tokens < 0 else 0.0)
        if wait > 0:
            self.sleep(wait)

    def pause(self, seconds: float) -> None:
        with self.lock:
            self.paused_until = max(self.paused_until, self.clock() + seconds)
            self.tokens = 0.0


_LIMITERS: dict[str, RateLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def shared_limiter(token: str, per_minute: int) -> RateLimiter:
    """The one limiter of a token in this process: DS counts requests per Authorization header, so the
    sync, link renewal, annotate and every other client of one token must draw from the same budget."""
    key = hashlib.sha256(token.encode()).hexdigest()
    with _LIMITERS_LOCK:
        if key not in _LIMITERS:
            # rate + burst stay under DS's limit in any minute, whatever the settings ask for
            _LIMITERS[key] = RateLimiter(min(per_minute, DS_LIMIT - 1))
        return _LIMITERS[key]


@dataclass
class RetryPolicy:
    """The one retry/backoff policy of GraphQL requests and file downloads.

    A 429 never counts as an attempt: the client waits for the window's reset, however many windows
    another client of the token has spent (up to `max_throttled` in a row, a server stuck refusing).
    """

    attempts: int = 8          # per request, all causes together
    connect_attempts: int = 2  # a server that refuses connections is down: fail fast
    base: float = 0.5
    cap: float = 30.0
    max_retry_after: float = 120.0
    page_attempts: int = 2     # a page that times out or gives a 500 this often is asked for smaller
    max_throttled: int = 30

    def backoff(self, attempt: int) -> float:
        return min(self.cap, self.base * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)


class Transport:
    """One pooled HTTP client for the whole run, safe to share between threads.

    Every client of one token draws from that token's one limiter (`shared_limiter`); a test may
    pass its own `limiter` or `sleep` (then the client gets a limiter of its own)."""

    def __init__(self, url: str, token: str, *, timeout: float = 60.0, requests_per_minute: int = 300,
                 retry: RetryPolicy | None = None, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep, max_connections: int = 8,
                 limiter: RateLimiter | None = None) -> None:
        self.url = url
        self.retry = retry or RetryPolicy()
        if limiter is None:
            limiter = (shared_limiter(token, requests_per_minute) if sleep is time.sleep
                       else RateLimiter(requests_per_minute, sleep=sleep))
        self.limiter = limiter
        self.sleep = sleep
        self.requests = 0
        self.throttled = 0
        self.server_date: datetime | None = None
        self._http = httpx.Client(
            headers={"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT,
                     "Content-Type": "application/json", "Accept": "application/json"},
            timeout=httpx.Timeout(timeout, connect=10.0),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def execute(self, operation: str, variables: Mapping[str, Any]) -> dict[str, Any]:
        """Runs a named operation of `queries/` and returns its `data`; retries what is transient.

        Fields hidden from the token below a dossier are not an error (see `answer`); data DS
        cannot serialise is (`ApiError`)."""
        answer = self.answer(operation, variables)
        if answer.data is None:
            raise ApiError(f"Erreur de l'API : {'; '.join(str(e.get('message')) for e in answer.bad)}")
        return answer.data

    def answer(self, operation: str, variables: Mapping[str, Any], *, partial: bool = False) -> Answer:
        """Runs a named operation and returns its `Answer`.

        With `partial`, dossiers DS cannot serialise come back as `bad` errors beside the rest of the
        data, and a request that keeps timing out (or giving a 500) raises `PageError` after
        `retry.page_attempts` tries instead of the whole retry budget."""
        body = json.dumps({"query": queries.text(operation), "variables": dict(variables),
                           "operationName": operation}).encode()
        attempt = connect_failures = page_failures = throttled = 0
        while True:
            self.limiter.acquire()
            try:
                return self._send(body, partial)
            except httpx.ConnectError:
                attempt += 1
                connect_failures += 1
                if connect_failures >= self.retry.connect_attempts:
                    raise ApiError(f"Impossible de joindre l'API ({httpx.URL(self.url).host}) : vérifiez la "
                                   "connexion réseau ou DS_API_URL.") from None
                self.sleep(self.retry.backoff(attempt))
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                attempt += 1
                self._retry_or_fail(attempt, TransientError(type(exc).__name__))
            except TransientError as exc:
                if exc.wait is not None:  # a spent window: wait for its end, however often it happens
                    throttled += 1
                    if throttled > self.retry.max_throttled:
                        raise ApiError(f"L'API refuse toujours les requêtes après {throttled} attentes de "
                                       "la fin de la fenêtre (429) : réessayez plus tard.") from None
                    self.limiter.pause(exc.wait)
                    continue
                attempt += 1
                if exc.page:
                    page_failures += 1
                    if partial and page_failures >= self.retry.page_attempts:
                        raise PageError(f"L'API échoue sur cette requête ({exc}).") from None
                self._retry_or_fail(attempt, exc)

    def _retry_or_fail(self, attempt: int, exc: TransientError) -> None:
        if attempt >= self.retry.attempts:
            raise ApiError(f"L'API ne répond pas correctement après {attempt} essais ({exc}) : "
                           "réessayez plus tard.") from None
        self.sleep(self.retry.backoff(attempt))

    def _send(self, body: bytes, partial: bool) -> Answer:
        response = self._http.post(self.url, content=body)
        self.requests += 1
        with contextlib.suppress(TypeError, ValueError):
            self.server_date = parsedate_to_datetime(response.headers.get("Date", "")).astimezone(UTC)
        status = response.status_code
        if status == 429:
            self.throttled += 1
            raise TransientError("429", window_reset(response, self.retry.max_retry_after))
        if retryable_status(status):
            raise TransientError(str(status), page=status == 500)
        return read_answer(status, response.content, partial)


def window_reset(response: httpx.Response, cap: float) -> float:
    """Seconds until the throttling window ends (at most `cap`). DS (config/initializers/rack_attack.rb)
    sends no Retry-After, only `RateLimit-Reset`: the epoch second the fixed window ends, read against
    the response's `Date`. Retry-After is honoured if a proxy adds one."""
    reset = response.headers.get("RateLimit-Reset", "")
    seconds: float | None = None
    with contextlib.suppress(ValueError):
        value = float(reset)
        # An epoch second, as DS sends; a small number is a delay (the IETF draft's form).
        seconds = value - _response_epoch(response) if value > 1e9 else value
    if seconds is None:
        retry_after = response.headers.get("Retry-After", "")
        try:
            seconds = float(retry_after)
        except ValueError:
            try:
                seconds = (parsedate_to_datetime(retry_after) - datetime.now(UTC)).total_seconds()
            except (TypeError, ValueError):
                seconds = 5.0
    # Date has whole seconds: the window may end up to one second later than it says.
    return min(max(seconds, 0.5), cap)


def _response_epoch(response: httpx.Response) -> float:
    with contextlib.suppress(TypeError, ValueError):
        return parsedate_to_datetime(response.headers.get("Date", "")).timestamp()
    return time.time()
