"""The API client on recorded responses: retries, Retry-After, partial data, auth errors."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from itn7cli.api import DSClient, RateLimiter, RetryPolicy
from itn7cli.errors import ApiError, AuthError

URL = "http://127.0.0.1:9/api/v2/graphql"
TOKEN = "TEST-TOKEN-api-7d3e"
PAGE = {"data": {"demarche": {"dossiers": {"pageInfo": {"hasNextPage": False, "endCursor": None}, "nodes": []}}}}


def client_for(responses: list[httpx.Response | Exception],
               sleeps: list[float]) -> tuple[DSClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        item = responses.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    client = DSClient(URL, TOKEN, transport=httpx.MockTransport(handler), sleep=sleeps.append,
                      retry=RetryPolicy(attempts=5))
    return client, seen


def ok() -> httpx.Response:
    return httpx.Response(200, json=PAGE)


def fetch(client: DSClient) -> dict:
    return next(client.dossier_pages(1, "2000-01-01T00:00:00+00:00"))


def test_a_429_waits_for_its_retry_after_then_succeeds() -> None:
    sleeps: list[float] = []
    client, seen = client_for([httpx.Response(429, text="Calm down, cowboy!", headers={"Retry-After": "7"}), ok()],
                              sleeps)
    assert fetch(client)["nodes"] == []
    assert len(seen) == 2 and 7.0 in sleeps


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
    assert fetch(client)["nodes"] == []
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


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


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
