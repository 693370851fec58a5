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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from . import queries
from .errors import ApiError, AuthError

USER_AGENT = "itn7 (SGAR PACA; https://github.com/) httpx"
PAGE_SIZE = 100  # the API's cap
# Codes of errors that leave the rest of the answer usable: DS nulls the one dossier it cannot
# serialise (`invalid_null`), or one field the token may not see (`unauthorized` below a dossier).
BAD_DATA = "invalid_null"
DOSSIER_STATES = ("en_construction", "en_instruction", "accepte", "refuse", "sans_suite")


def retryable_status(status: int) -> bool:
    """The one rule for GraphQL and file downloads: 408, 425, 429 and 5xx deserve another try, no other 4xx."""
    return status in (408, 425, 429) or status >= 500


class NotFoundError(ApiError):
    """The API says the object does not exist or is not visible (code `not_found`)."""


class PageError(ApiError):
    """One request keeps failing the same way (a 30 s `timeout` with partial data, a repeated 500): the
    answer depends on what is asked, so asking for less may isolate the dossier at fault."""


class TransientError(Exception):
    """A failure worth retrying (5xx, 429, network, partial data); never leaves this module.

    `wait` is the server's own delay (a 429's window reset); `page` marks failures that depend on
    the request itself (timeout, 500), which a page reader answers by asking for fewer dossiers."""

    def __init__(self, reason: str, wait: float | None = None, *, page: bool = False) -> None:
        super().__init__(reason)
        self.wait = wait
        self.page = page


@dataclass
class Answer:
    """A GraphQL answer kept although it carries errors: `data` (None when DS nulled the root), the
    `bad` errors (dossiers DS could not serialise, by path) and `warnings` (fields hidden from the token)."""

    data: dict[str, Any] | None
    bad: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ChangesTarget:
    """One démarche of a `changes` request: where its incremental stream starts (and its cursor) and where
    its list of purged dossiers starts. `changes`: ask for the first page of changed dossiers (an
    incremental run); `newest`: ask for the date of the most recently updated dossier of each state (a
    full pull)."""

    number: int
    updated_since: str
    after: str | None
    deleted_since: str | None
    changes: bool = True
    newest: bool = False


@dataclass
class Changes:
    """One démarche's part of a `changes` answer: metadata (as `demarche` gives it), the first page of
    changed dossiers (as `dossier_pages` yields them; None when not asked for, or not whole: a dossier DS
    could not serialise, which the usual reading then names), the first page of each deletion list (None:
    not read yet), and the date of the most recently updated dossier of each state (when asked for; a
    state without dossiers has none)."""

    meta: dict[str, Any]
    page: dict[str, Any] | None
    pending: dict[str, Any] | None
    deleted: dict[str, Any] | None
    newest: dict[str, str] = field(default_factory=dict)


class RateLimiter:
    """Token bucket shared by every thread: at most `burst + per_minute` requests in any minute.

    With the defaults (300/min, burst 100) the clients of one token never exceed the API's 400
    requests in any minute, calendar minutes included; a 429 pauses every thread until the
    server's window ends (`pause`).
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


DS_LIMIT = 400  # requests per minute per token (DS config/initializers/rack_attack.rb)
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

    def __enter__(self) -> DSClient:
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
        self._note_date(response)
        status = response.status_code
        if status == 429:
            self.throttled += 1
            raise TransientError("429", self._window_reset(response))
        if retryable_status(status):
            raise TransientError(str(status), page=status == 500)
        try:
            payload = response.json()
        except ValueError:
            if status >= 400:
                raise ApiError(f"L'API a répondu {status} sans contenu lisible.") from None
            raise TransientError(f"{status} non-JSON") from None
        if not isinstance(payload, dict):
            raise TransientError(f"{status} réponse inattendue")
        errors = [e for e in payload.get("errors") or [] if isinstance(e, dict)]
        messages = "; ".join(str(e.get("message", "")) for e in errors)
        if status >= 400:
            raise _auth_error(status, messages) or ApiError(f"L'API a refusé la requête ({status}) : {messages}")
        data = payload.get("data")
        answer = Answer(data if isinstance(data, dict) else None)
        fatal = []
        for error in errors:
            code = (error.get("extensions") or {}).get("code")
            if code == BAD_DATA and partial:
                answer.bad.append(error)
            elif code in ("unauthorized", "not_found") and _below_dossier(error.get("path")):
                # DS types/dossier_type.rb `self.authorized?`: a linked object of another démarche is
                # hidden from this token; the dossier itself is whole.
                answer.warnings.append(f"{'.'.join(str(p) for p in error['path'])} : {error.get('message')}")
            else:
                fatal.append(error)
        if fatal:
            self._raise_for_errors(fatal, "; ".join(str(e.get("message", "")) for e in fatal))
        if answer.data is None and not answer.bad:
            raise TransientError("réponse sans données")
        return answer

    @staticmethod
    def _raise_for_errors(errors: list[dict[str, Any]], messages: str) -> None:
        codes = {(e.get("extensions") or {}).get("code") for e in errors}
        if "timeout" in codes or "internal_server_error" in codes:
            # Partial data: never keep it, ask again (for less, if it keeps failing).
            raise TransientError("données partielles", page=True)
        if "unauthorized" in codes and "hidden due to permissions" in messages:
            raise AuthError("Ce jeton n'a pas accès à la démarche demandée : vérifiez le numéro de démarche "
                            "(ITN7_DEMARCHE_*) ou créez un jeton couvrant cette démarche.")
        auth = _auth_error(200, messages) if codes & {"unauthorized", "forbidden"} else None
        if auth:
            raise auth
        if "not_found" in codes:
            raise NotFoundError(f"Introuvable : {messages}")
        raise ApiError(f"Erreur de l'API : {messages}")

    def _window_reset(self, response: httpx.Response) -> float:
        """Seconds until the throttling window ends. DS (config/initializers/rack_attack.rb) sends no
        Retry-After, only `RateLimit-Reset`: the epoch second the fixed window ends, read against the
        response's `Date`. Retry-After is honoured if a proxy adds one."""
        reset = response.headers.get("RateLimit-Reset", "")
        seconds: float | None = None
        with contextlib.suppress(ValueError):
            value = float(reset)
            # An epoch second, as DS sends; a small number is a delay (the IETF draft's form).
            seconds = value - self._response_epoch(response) if value > 1e9 else value
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
        return min(max(seconds, 0.5), self.retry.max_retry_after)

    @staticmethod
    def _response_epoch(response: httpx.Response) -> float:
        with contextlib.suppress(TypeError, ValueError):
            return parsedate_to_datetime(response.headers.get("Date", "")).timestamp()
        return time.time()

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
        """Yields `{nodes, pageInfo, unreadable, warnings}` pages in keyset order until `hasNextPage` is false.

        A dossier DS cannot serialise comes back as a null node (DS app/graphql/api/v2/schema.rb
        `type_error`); a page that keeps timing out is asked for in halves down to one dossier. Either
        way the dossier is named by a query without champs, listed in `unreadable` as
        (stub node, message), and the stream moves past it."""
        first = PAGE_SIZE
        while True:
            variables: dict[str, Any] = {"number": number, "updatedSince": updated_since, "after": after,
                                         "first": first}
            if state:
                variables["state"] = state
            try:
                answer = self.answer("getDossiers", variables, partial=True)
            except PageError as exc:
                if first > 1:
                    first = max(1, first // 2)
                    continue
                page = self._stubs(variables)
                page["unreadable"] = [(stub, str(exc)) for stub in page["nodes"] if stub]
                page["nodes"] = [None] * len(page["nodes"])
            else:
                page = (answer.data or {})["demarche"]["dossiers"]
                page["warnings"] = answer.warnings
                page["unreadable"] = self._name_bad_nodes(page, answer.bad, variables) if answer.bad else []
                first = min(PAGE_SIZE, first * 2)
            page.setdefault("warnings", [])
            yield page
            info = page["pageInfo"]
            if not info["hasNextPage"]:
                return
            after = info["endCursor"] or after

    def _stubs(self, variables: Mapping[str, Any]) -> dict[str, Any]:
        """The same page without champs, which DS can still serialise."""
        page: dict[str, Any] = self.execute("getDossierStubs", variables)["demarche"]["dossiers"]
        return page

    def _name_bad_nodes(self, page: dict[str, Any], bad: list[dict[str, Any]],
                        variables: Mapping[str, Any]) -> list[tuple[dict[str, Any], str]]:
        messages: dict[int, str] = {}
        for error in bad:
            path = error.get("path") or []
            if "nodes" in path and path.index("nodes") + 1 < len(path):
                index = path[path.index("nodes") + 1]
                if isinstance(index, int):
                    messages.setdefault(index, str(error.get("message", "")))
        nodes = page["nodes"]
        stubs = self._stubs(variables)["nodes"]
        read = {node["number"] for node in nodes if node}
        aligned = len(stubs) == len(nodes) and all(
            node is None or (stub is not None and stub["number"] == node["number"])
            for node, stub in zip(nodes, stubs, strict=True))
        out = []
        for i, stub in enumerate(stubs):
            # Aligned, the null nodes are named by position. If a dossier moved between the two requests,
            # every dossier of the champ-less page not read whole is named: better once too often (a
            # readable one is cleared when read) than a bad one silently skipped.
            wanted = nodes[i] is None if aligned else True
            if stub and wanted and stub["number"] not in read:
                out.append((stub, messages.get(i) or "; ".join(str(e.get("message")) for e in bad)))
        return out

    def read_dossier(self, number: int) -> Answer:
        """One dossier by number, for re-reading: `data` is None (with `bad` errors) while DS cannot
        serialise it; `PageError` if it keeps timing out; `NotFoundError` once it is gone."""
        return self.answer("rereadDossier", {"number": number}, partial=True)

    def changes(self, targets: Sequence[ChangesTarget]) -> dict[int, Changes] | None:
        """One request for one or two démarches (`getChanges`): metadata, the first page of each deletion
        list and, as each target asks, the first page of dossiers changed since its checkpoint or the date
        of its most recently updated dossier.

        None when the request keeps failing (a page that keeps timing out): the caller then reads the usual
        way, which isolates and names the dossier at fault."""
        if not 1 <= len(targets) <= 2:
            raise ValueError("getChanges asks for one or two démarches")
        variables: dict[str, Any] = {}
        for alias, target in zip("AB", targets, strict=False):
            variables.update({f"number{alias}": target.number, f"since{alias}": target.updated_since,
                              f"after{alias}": target.after, f"deletedSince{alias}": target.deleted_since,
                              f"changes{alias}": target.changes, f"newest{alias}": target.newest})
        variables["withB"] = len(targets) == 2
        try:
            answer = self.answer("getChanges", variables, partial=True)
        except PageError:
            return None
        if answer.data is None or any(answer.data.get(alias) is None for alias in "ab"[:len(targets)]):
            return None
        # Bad data nulls one dossier of a page (`invalid_null`): that page alone is dropped.
        broken = {tuple(error.get("path") or ())[:2] for error in answer.bad}
        out: dict[int, Changes] = {}
        for alias, target in zip("ab", targets, strict=False):
            demarche = dict(answer.data[alias])
            page = demarche.pop("dossiers", None)
            newest = {}
            for state in DOSSIER_STATES:
                last = [n for n in (demarche.pop(state, None) or {}).get("nodes") or () if n]
                if last:
                    newest[state] = last[0]["dateDerniereModification"]
            pending, deleted = demarche.pop("pendingDeletedDossiers"), demarche.pop("deletedDossiers")
            if (alias, "pendingDeletedDossiers") in broken or (alias, "deletedDossiers") in broken:
                return None
            if page is not None and (alias, "dossiers") not in broken:
                page["warnings"] = [w for w in answer.warnings if w.startswith(f"{alias}.")]
                page["unreadable"] = []
            else:
                page = None
            retention = (answer.data.get(f"descriptor{alias.upper()}") or {}).get("dureeConservationDossiers")
            out[target.number] = Changes({**demarche, "dureeConservationDossiers": retention}, page, pending,
                                         deleted, newest)
        return out

    def deletion_pages(self, number: int, deleted_since: str | None, *,
                       after: Changes | None = None) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        """Yields ("masque" | "supprime", items): hidden dossiers awaiting purge, then purged ones.

        `after`: go on past the first pages a `changes` answer already gave."""
        cursors: dict[str, str | None] = {"pending": None, "deleted": None}
        wanted = {"pending": True, "deleted": True}
        if after is not None:
            for key, connection in (("pending", after.pending), ("deleted", after.deleted)):
                if connection is not None:
                    wanted[key] = bool(connection["pageInfo"]["hasNextPage"])
                    cursors[key] = connection["pageInfo"]["endCursor"]
        while any(wanted.values()):
            data = self.execute("getDeletions", {
                "number": number, "pendingAfter": cursors["pending"], "withPending": wanted["pending"],
                "deletedAfter": cursors["deleted"], "deletedSince": deleted_since, "withDeleted": wanted["deleted"],
            })["demarche"]
            for key, field_name, state in (("pending", "pendingDeletedDossiers", "masque"),
                                           ("deleted", "deletedDossiers", "supprime")):
                if not wanted[key]:
                    continue
                connection = data[field_name]
                yield state, [n for n in connection["nodes"] if n]
                info = connection["pageInfo"]
                wanted[key] = bool(info["hasNextPage"])
                cursors[key] = info["endCursor"] or cursors[key]


def _below_dossier(path: Any) -> bool:
    """Whether an error's path goes below one dossier (a champ, a linked object), not to the démarche."""
    if not isinstance(path, list) or not path:
        return False
    if "nodes" in path:
        return len(path) > path.index("nodes") + 2
    return path[0] == "dossier" and len(path) > 1
