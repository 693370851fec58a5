"""The API client on recorded responses: retries, the real 429, partial data, bad data, auth errors.

Waits are measured on an injected clock: no test sleeps or times anything."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest

from itn7cli.api import DSClient, Page, RateLimiter, RetryPolicy, shared_limiter
from itn7cli.errors import ApiError, AuthError

URL = "http://127.0.0.1:9/api/v2/graphql"
TOKEN = "TEST-TOKEN-api-7d3e"
PAGE = {"data": {"demarche": {"dossiers": {"pageInfo": {"hasNextPage": False, "endCursor": None}, "nodes": []}}}}


class FakeClock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def client_for(responses: list[httpx.Response | Exception], sleeps: list[float],
               clock: FakeClock | None = None,
               limiter: RateLimiter | None = None) -> tuple[DSClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    clock = clock or FakeClock()

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        item = responses.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.sleep(seconds)

    client = DSClient(URL, TOKEN, transport=httpx.MockTransport(handler), sleep=sleep,
                      retry=RetryPolicy(attempts=5),
                      limiter=limiter or RateLimiter(300, clock=clock, sleep=sleep))
    return client, seen


def ok() -> httpx.Response:
    return httpx.Response(200, json=PAGE)


def fetch(client: DSClient) -> Page:
    return next(client.dossier_pages(1, "2000-01-01T00:00:00+00:00"))


SERVER_NOW = datetime(2026, 3, 2, 10, 15, 42, tzinfo=UTC)


def throttled(reset_in: int) -> httpx.Response:
    """DS's own 429 (config/initializers/rack_attack.rb): plain text, no Retry-After."""
    return httpx.Response(429, text="Calm down, cowboy!", headers={
        "Date": format_datetime(SERVER_NOW, usegmt=True), "RateLimit-Remaining": "0",
        "RateLimit-Reset": str(int(SERVER_NOW.timestamp()) + reset_in)})


def test_a_429_waits_until_the_window_reset_read_against_the_date_header() -> None:
    clock = FakeClock()
    client, seen = client_for([throttled(18), ok()], [], clock)
    assert fetch(client).nodes == []
    assert len(seen) == 2 and clock.now == 18.0


def test_a_spent_window_never_becomes_a_failure_however_many_429_come_back() -> None:
    clock = FakeClock()
    client, seen = client_for([*(throttled(60) for _ in range(12)), ok()], [], clock)  # more than 5 attempts
    assert fetch(client).nodes == []
    assert len(seen) == 13 and clock.now == 12 * 60.0


def test_a_429_without_rate_limit_headers_honours_a_retry_after_from_a_proxy() -> None:
    clock = FakeClock()
    client, _ = client_for([httpx.Response(429, text="slow down", headers={"Retry-After": "7"}), ok()], [], clock)
    fetch(client)
    assert clock.now == 7.0


def test_a_429_seen_by_one_client_pauses_every_client_of_the_token() -> None:
    clock = FakeClock()
    waits: list[float] = []  # the shared limiter's waits; the clock stands still, as threads would see it
    limiter = RateLimiter(300, clock=clock, sleep=waits.append)
    first, _ = client_for([throttled(25), ok()], [], clock, limiter)
    second, _ = client_for([ok()], [], clock, limiter)
    fetch(first)
    assert waits == [25.0]
    fetch(second)  # never throttled itself, it still waits for the window's end
    assert waits == [25.0, 25.0]


def test_every_client_of_one_token_draws_from_one_limiter() -> None:
    with DSClient(URL, "jeton-a") as a, DSClient(URL, "jeton-a") as b, DSClient(URL, "jeton-b") as c:
        assert a.limiter is b.limiter is shared_limiter("jeton-a", 300)
        assert c.limiter is not a.limiter


def test_5xx_and_network_errors_are_retried_with_growing_waits() -> None:
    sleeps: list[float] = []
    client, seen = client_for([httpx.Response(502, text="<html>"), httpx.ReadTimeout("slow"),
                               httpx.Response(503, text="<html>"), ok()], sleeps)
    fetch(client)
    assert len(seen) == 4
    assert len(sleeps) == 3 and sleeps[2] > sleeps[0]


def test_a_timeout_error_with_partial_data_is_retried_and_never_returned() -> None:
    partial = {"data": {"demarche": {"dossiers": {"pageInfo": {"hasNextPage": False, "endCursor": "x"},
                                                  "nodes": [None]}}},
               "errors": [{"message": "Timeout on Dossier.champs", "extensions": {"code": "timeout"}}]}
    client, seen = client_for([httpx.Response(200, json=partial), ok()], [])
    assert fetch(client).nodes == []
    assert len(seen) == 2


def test_retries_stop_after_the_policy_and_say_so_in_french() -> None:
    client, seen = client_for([httpx.Response(503, text="down")] * 5, [])
    with pytest.raises(ApiError, match="après 5 essais"):
        fetch(client)
    assert len(seen) == 5


@pytest.mark.parametrize(("response", "expected"), [
    (httpx.Response(401, json={"errors": [{"message": "Token expired", "extensions": {"code": "unauthorized"}}],
                               "data": None}), "expiré"),
    (httpx.Response(403, json={"errors": [{"message": "Without a token, only persisted queries are allowed",
                                           "extensions": {"code": "forbidden"}}], "data": None}), "invalide ou absent"),
    (httpx.Response(403, json={"errors": [{"message": "Request issued from a forbidden network. Add 1.2.3.4/32",
                                           "extensions": {"code": "forbidden"}}], "data": None}), "réseau"),
    (httpx.Response(200, json={"data": None, "errors": [{
        "message": "An object of type Demarche was hidden due to permissions", "path": ["demarche"],
        "extensions": {"code": "unauthorized"}}]}), "n'a pas accès à la démarche"),
])
def test_authentication_failures_are_not_retried_and_name_the_fix(response: httpx.Response, expected: str) -> None:
    client, seen = client_for([response, ok()], [])
    with pytest.raises(AuthError, match=expected) as info:
        fetch(client)
    assert len(seen) == 1
    assert TOKEN not in str(info.value)


def test_a_refused_connection_fails_fast() -> None:
    client, seen = client_for([httpx.ConnectError("refused")] * 5, [])
    with pytest.raises(ApiError, match="Impossible de joindre l'API"):
        fetch(client)
    assert len(seen) == 2


def test_the_request_carries_the_bearer_token_and_the_named_operation() -> None:
    client, seen = client_for([ok()], [])
    fetch(client)
    body = json.loads(seen[0].content)
    assert seen[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert body["operationName"] == "getDossiers" and "fragment DossierFields" in body["query"]
    assert body["variables"]["updatedSince"] == "2000-01-01T00:00:00+00:00"


def test_pages_follow_end_cursors_until_has_next_page_is_false() -> None:
    def page(cursor: str | None, more: bool) -> httpx.Response:
        return httpx.Response(200, json={"data": {"demarche": {"dossiers": {
            "pageInfo": {"hasNextPage": more, "endCursor": cursor}, "nodes": [{"number": 1}]}}}})

    client, seen = client_for([page("c1", True), page("c2", True), page(None, False)], [])
    pages = list(client.dossier_pages(1, "2000-01-01T00:00:00+00:00"))
    assert len(pages) == 3
    assert [json.loads(r.content)["variables"]["after"] for r in seen] == [None, "c1", "c2"]


def requests_in_first_minute(limiter_factory: Callable[[FakeClock], RateLimiter], count: int) -> int:
    clock = FakeClock()
    limiter = limiter_factory(clock)
    stamps = []
    for _ in range(count):
        limiter.acquire()
        stamps.append(clock.now)
    return sum(1 for s in stamps if s < 60.0)


def test_the_rate_limiter_never_exceeds_400_requests_in_a_minute() -> None:
    made = requests_in_first_minute(lambda c: RateLimiter(300, clock=c, sleep=c.sleep), 1000)
    assert 300 <= made <= 400


def test_a_429_pauses_every_caller_of_the_limiter() -> None:
    clock = FakeClock()
    limiter = RateLimiter(300, clock=clock, sleep=clock.sleep)
    limiter.pause(12.0)
    limiter.acquire()
    assert clock.now >= 12.0


def test_in_any_calendar_minute_the_limiter_lets_through_at_most_400_requests() -> None:
    clock = FakeClock(now=37.5)  # starting mid-minute: the burst and the steady rate share a calendar minute
    limiter = RateLimiter(300, clock=clock, sleep=clock.sleep)
    per_minute: dict[int, int] = {}
    for _ in range(2000):
        limiter.acquire()
        per_minute[int(clock.now // 60)] = per_minute.get(int(clock.now // 60), 0) + 1
    assert max(per_minute.values()) <= 400
    assert sum(per_minute.values()) == 2000


def stub(number: int) -> dict:
    return {"id": f"RG9zc2llci0{number}", "number": number, "state": "en_construction", "archived": False,
            "dateDepot": "2025-01-02T10:00:00+01:00", "demandeur": {"__typename": "PersonneMorale", "siret": "1"}}


def page_of(nodes: list, errors: list | None = None, more: bool = False) -> httpx.Response:
    body: dict = {"data": {"demarche": {"dossiers": {"pageInfo": {"hasNextPage": more, "endCursor": "c9"},
                                                     "nodes": nodes}}}}
    if errors:
        body["errors"] = errors
    return httpx.Response(200, json=body)


def test_a_null_node_with_invalid_null_keeps_the_page_and_names_the_dossier_without_champs() -> None:
    bad = {"message": "Cannot return null for non-nullable field Champ.label", "extensions": {"code": "invalid_null"},
           "path": ["demarche", "dossiers", "nodes", 1, "champs", 0, "label"]}
    good = [{"number": 11, "champs": []}, None, {"number": 13, "champs": []}]
    client, seen = client_for([page_of(good, [bad]), page_of([stub(11), stub(12), stub(13)])], [])
    page = fetch(client)
    assert page.nodes == [good[0], good[2]] and page.stamps[1] is None
    assert page.unreadable == [(stub(12), bad["message"])]
    assert page.info["endCursor"] == "c9"
    assert [json.loads(r.content)["operationName"] for r in seen] == ["getDossiers", "getDossierStubs"]


def test_a_field_hidden_from_the_token_below_a_dossier_is_a_warning_not_a_refused_token() -> None:
    hidden = {"message": "An object of type Dossier was hidden due to permissions",
              "extensions": {"code": "unauthorized"},
              "path": ["demarche", "dossiers", "nodes", 0, "champs", 4, "dossier"]}
    node = {"number": 11, "champs": [{"__typename": "DossierLinkChamp", "stringValue": "42", "dossier": None}]}
    client, seen = client_for([page_of([node], [hidden])], [])
    page = fetch(client)
    assert page.nodes == [node] and page.unreadable == []
    assert page.warnings == ["demarche.dossiers.nodes.0.champs.4.dossier : " + hidden["message"]]
    assert len(seen) == 1


TIMEOUT = {"message": "Timeout on Dossier.champs", "extensions": {"code": "timeout"},
           "path": ["demarche", "dossiers", "nodes", 0, "champs"]}


@pytest.mark.parametrize(("failure", "reason"), [
    (lambda: page_of([None], [TIMEOUT], more=True), "données partielles"),
    (lambda: httpx.Response(500, json={"errors": [{"message": "Internal Server Error",
                                                   "extensions": {"code": "internal_server_error"}}]}), "500"),
], ids=["timeout with partial data", "repeated 500"])
def test_a_page_that_keeps_failing_is_asked_for_in_halves_then_named_without_champs(
        failure: Callable[[], httpx.Response], reason: str) -> None:
    asked: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body["operationName"] == "getDossierStubs":
            return page_of([stub(77)], more=True)
        asked.append(body["variables"]["first"])
        return failure()

    client = DSClient(URL, TOKEN, transport=httpx.MockTransport(handler), sleep=lambda s: None,
                      limiter=RateLimiter(300, clock=FakeClock(), sleep=lambda s: None))
    page = fetch(client)
    assert page.unreadable == [(stub(77), f"L'API échoue sur cette requête ({reason}).")]
    assert page.nodes == [] and page.raw == [None] and page.more
    # Two tries at each size is the policy's page_attempts; a smaller page asks again at once.
    assert asked == [100, 100, 50, 50, 25, 25, 12, 12, 6, 6, 3, 3, 1, 1]


def test_when_the_page_changed_between_the_two_reads_every_dossier_not_read_whole_is_named() -> None:
    bad = {"message": "Cannot return null for non-nullable field Champ.label", "extensions": {"code": "invalid_null"},
           "path": ["demarche", "dossiers", "nodes", 1, "champs", 0, "label"]}
    good = [{"number": 11, "champs": []}, None, {"number": 13, "champs": []}]
    # Dossier 14 was filed between the two requests: positions no longer say which node was null.
    client, _ = client_for([page_of(good, [bad]), page_of([stub(11), stub(12), stub(13), stub(14)])], [])
    page = fetch(client)
    assert [s["number"] for s, _ in page.unreadable] == [12, 14]
