"""GraphQL over httpx for the DS API v2: authentication, rate limit, retries, page generators.

Knows nothing of SQLite. Documents come from `queries/` (see `queries.py`); they are validated
against the real schema by the tests, not on every request. The transport is plain httpx rather
than gql's: rate limiting and partial-data timeouts must be seen at the HTTP layer (a 429 or a
200 carrying `errors` is not a success), which gql's transport hides.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from . import queries
from .errors import ApiError, AuthError

USER_AGENT = "itn7 (SGAR PACA; https://github.com/) httpx"
RETRY_STATUSES = {429, 500, 502, 503, 504}


def retryable_status(status: int) -> bool:
    """The one rule for GraphQL and file downloads: 408, 425, 429 and 5xx deserve another try, no other 4xx."""
    return status in (408, 425, 429) or status >= 500


class NotFoundError(ApiError):
    """The API says the object does not exist or is not visible (code `not_found`)."""


class TransientError(Exception):
    """A failure worth retrying (5xx, 429, network, partial data); never leaves this module."""

    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.wait = wait


class RateLimiter:
    """Token bucket shared by every thread: at most `burst + per_minute` requests in any minute.

    With the defaults (300/min, burst 100) a client never exceeds the API's 400 requests per
    minute per token; a 429 pauses every thread until its Retry-After has passed.
    """

    def __init__(self, per_minute: int, burst: int | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(burst if burst is not None else max(1, min(100, 400 - per_minute)))
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
            _LIMITERS[key] = RateLimiter(per_minute)
        return _LIMITERS[key]


@dataclass
class RetryPolicy:
    attempts: int = 8          # per request, all causes together
    connect_attempts: int = 2  # a server that refuses connections is down: fail fast
    base: float = 0.5
    cap: float = 30.0
    max_retry_after: float = 120.0

    def backoff(self, attempt: int) -> float:
        return min(self.cap, self.base * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)


def _auth_error(status: int, message: str) -> AuthError | None:
    lowered = message.lower()
    if status == 401 or "token expired" in lowered:
        return AuthError("Jeton d'API expiré : créez-en un nouveau depuis « Mon profil » sur Démarche Numérique "
                         "puis mettez à jour DS_API_TOKEN.")
    if "forbidden network" in lowered:
        return AuthError("Jeton d'API refusé depuis ce réseau : ajoutez l'adresse IP de ce poste aux réseaux "
                         "autorisés du jeton (« Mon profil » > jetons d'API).")
    if status == 403 or "only persisted queries" in lowered:
        return AuthError("Jeton d'API invalide ou absent : vérifiez DS_API_TOKEN (jeton révoqué, mal copié ?).")
    return None


class DSClient:
    """One pooled HTTP client for the whole run, safe to share between threads."""

    def __init__(self, url: str, token: str, *, timeout: float = 60.0, requests_per_minute: int = 300,
                 retry: RetryPolicy | None = None, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep, max_connections: int = 8) -> None:
        self.url = url
        self.retry = retry or RetryPolicy()
        # A test's own clock gets its own limiter; real clients of one token share one.
        self.limiter = (shared_limiter(token, requests_per_minute) if sleep is time.sleep
                        else RateLimiter(requests_per_minute, sleep=sleep))
        self.sleep = sleep
        self.requests = 0
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

    def __enter__(self) -> DSClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def execute(self, operation: str, variables: Mapping[str, Any]) -> dict[str, Any]:
        """Runs a named operation of `queries/` and returns its `data`; retries what is transient."""
        body = json.dumps({"query": queries.text(operation), "variables": dict(variables),
                           "operationName": operation}).encode()
        attempt = connect_failures = 0
        while True:
            attempt += 1
            self.limiter.acquire()
            try:
                return self._send(body)
            except httpx.ConnectError:
                connect_failures += 1
                if connect_failures >= self.retry.connect_attempts:
                    raise ApiError(f"Impossible de joindre l'API ({httpx.URL(self.url).host}) : vérifiez la "
                                   "connexion réseau ou DS_API_URL.") from None
                self.sleep(self.retry.backoff(attempt))
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                self._retry_or_fail(attempt, TransientError(type(exc).__name__))
            except TransientError as exc:
                self._retry_or_fail(attempt, exc)

    def _retry_or_fail(self, attempt: int, exc: TransientError) -> None:
        if attempt >= self.retry.attempts:
            raise ApiError(f"L'API ne répond pas correctement après {attempt} essais ({exc}) : "
                           "réessayez plus tard.") from None
        wait = exc.wait if exc.wait is not None else self.retry.backoff(attempt)
        if exc.wait is not None:
            self.limiter.pause(wait)
        self.sleep(wait)

    def _send(self, body: bytes) -> dict[str, Any]:
        response = self._http.post(self.url, content=body)
        self.requests += 1
        self._note_date(response)
        status = response.status_code
        if status == 429:
            raise TransientError("429", self._retry_after(response))
        if status in RETRY_STATUSES:
            raise TransientError(str(status))
        try:
            payload = response.json()
        except ValueError:
            if status >= 400:
                raise ApiError(f"L'API a répondu {status} sans contenu lisible.") from None
            raise TransientError(f"{status} non-JSON") from None
        if not isinstance(payload, dict):
            raise TransientError(f"{status} réponse inattendue")
        errors = payload.get("errors") or []
        messages = "; ".join(str(e.get("message", "")) for e in errors if isinstance(e, dict))
        if status >= 400:
            raise _auth_error(status, messages) or ApiError(f"L'API a refusé la requête ({status}) : {messages}")
        if errors:
            self._raise_for_errors(errors, messages)
        data = payload.get("data")
        if not isinstance(data, dict):
            raise TransientError("réponse sans données")
        return data

    @staticmethod
    def _raise_for_errors(errors: list[Any], messages: str) -> None:
        codes = {(e.get("extensions") or {}).get("code") for e in errors if isinstance(e, dict)}
        if "timeout" in codes or "internal_server_error" in codes:
            # Partial data: never keep it, ask for the whole page again.
            raise TransientError("données partielles")
        if "unauthorized" in codes and "hidden due to permissions" in messages:
            raise AuthError("Ce jeton n'a pas accès à la démarche demandée : vérifiez le numéro de démarche "
                            "(ITN7_DEMARCHE_*) ou créez un jeton couvrant cette démarche.")
        auth = _auth_error(200, messages) if codes & {"unauthorized", "forbidden"} else None
        if auth:
            raise auth
        if "not_found" in codes:
            raise NotFoundError(f"Introuvable : {messages}")
        raise ApiError(f"Erreur de l'API : {messages}")

    def _retry_after(self, response: httpx.Response) -> float:
        value = response.headers.get("Retry-After", "")
        try:
            seconds = float(value)
        except ValueError:
            try:
                seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
            except (TypeError, ValueError):
                seconds = 5.0
        return min(max(seconds, 0.1), self.retry.max_retry_after)

    def _note_date(self, response: httpx.Response) -> None:
        value = response.headers.get("Date")
        if value:
            with contextlib.suppress(TypeError, ValueError):
                self.server_date = parsedate_to_datetime(value).astimezone(UTC)

    # ------------------------------------------------------------ page generators

    def demarche(self, number: int) -> dict[str, Any]:
        """The démarche with all revisions, descriptors and groupes instructeurs."""
        data = self.execute("getDemarche", {"number": number})
        retention = (data.get("descriptor") or {}).get("dureeConservationDossiers")
        return {**data["demarche"], "dureeConservationDossiers": retention}

    def dossier_pages(self, number: int, updated_since: str, *, after: str | None = None,
                      state: str | None = None) -> Iterator[dict[str, Any]]:
        """Yields `{nodes, pageInfo}` pages in keyset order until `hasNextPage` is false."""
        while True:
            variables: dict[str, Any] = {"number": number, "updatedSince": updated_since, "after": after}
            if state:
                variables["state"] = state
            page = self.execute("getDossiers", variables)["demarche"]["dossiers"]
            yield page
            info = page["pageInfo"]
            if not info["hasNextPage"]:
                return
            after = info["endCursor"] or after

    def deletion_pages(self, number: int, deleted_since: str | None) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        """Yields ("masque" | "supprime", items): hidden dossiers awaiting purge, then purged ones."""
        cursors: dict[str, str | None] = {"pending": None, "deleted": None}
        wanted = {"pending": True, "deleted": True}
        while any(wanted.values()):
            data = self.execute("getDeletions", {
                "number": number, "pendingAfter": cursors["pending"], "withPending": wanted["pending"],
                "deletedAfter": cursors["deleted"], "deletedSince": deleted_since, "withDeleted": wanted["deleted"],
            })["demarche"]
            for key, field, state in (("pending", "pendingDeletedDossiers", "masque"),
                                      ("deleted", "deletedDossiers", "supprime")):
                if not wanted[key]:
                    continue
                connection = data[field]
                yield state, [n for n in connection["nodes"] if n]
                info = connection["pageInfo"]
                wanted[key] = bool(info["hasNextPage"])
                cursors[key] = info["endCursor"] or cursors[key]
