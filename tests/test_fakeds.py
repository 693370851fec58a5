"""The fake DS server, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLUnionType,
    build_schema,
    validate,
)
from stdnum.fr import siret

from itn7cli import queries
from itn7cli.fakeds import Dataset, FakeDS, TokenSpec
from itn7cli.sync import EPOCH

from .syncutil import early_in_a_window

REAL_SCHEMA = Path(__file__).parents[2] / "shared/ds/schema.graphql"
SUBSET = Path(__file__).parents[1] / "itn7cli/fakeds/schema.graphql"
SINCE = "2021-01-01T00:00:00+00:00"
SMALL_DOSSIERS = """
query small($number: Int!, $first: Int, $after: String, $since: ISO8601DateTime, $created: ISO8601DateTime) {
  demarche(number: $number) {
    dossiers(first: $first, after: $after, updatedSince: $since, createdSince: $created) {
      pageInfo { hasNextPage endCursor }
      nodes { number dateDepot dateDerniereModification }
    }
  }
}
"""
WITHOUT_FRAGMENTS = """
query plain($number: Int!) {
  dossier(number: $number) {
    champs { __typename id label stringValue ... on TextChamp { value } ... on CheckboxChamp { checked: value } }
  }
}
"""
WITH_DROPDOWN = """
query typed($number: Int!) {
  dossier(number: $number) {
    champs {
      __typename id label stringValue
      ... on TextChamp { value }
      ... on DropDownListChamp { choice: value }
      ... on YesNoChamp { yesNo: value }
      ... on HeaderSectionChamp { level }
    }
  }
}
"""
ANNOTATIONS = (
    "query a($number: Int!) { dossier(number: $number) { id dateDerniereModification "
    "dateDerniereModificationAnnotations annotations { id label stringValue } } }"
)


@pytest.fixture
def dataset() -> Dataset:
    return Dataset.generate(seed=1, counts={"general": 120, "labo": 30})


@pytest.fixture
def server(dataset: Dataset) -> Iterator[FakeDS]:
    tokens = {
        "tok-lecture": TokenSpec(write=False),
        "tok-ecriture": TokenSpec(write=True, scope={dataset.numbers["general"]}),
        "tok-perime": TokenSpec(expired=True),
        "tok-reseau": TokenSpec(forbidden_network=True),
    }
    with FakeDS(dataset, tokens, url_ttl=2.0) as s:
        yield s


def post(
    server: FakeDS,
    query: str,
    variables: dict[str, Any] | None = None,
    token: str | None = "tok-lecture",
    auth: str | None = None,
) -> httpx.Response:
    headers = {}
    if auth is not None:
        headers["Authorization"] = auth
    elif token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(server.url, json={"query": query, "variables": variables or {}}, headers=headers, timeout=10)


def data(response: httpx.Response) -> Any:
    body = response.json()
    assert response.status_code == 200 and not body.get("errors"), body.get("errors")
    return body["data"]


def all_pages(server: FakeDS, number: int, **variables: Any) -> list[int]:
    seen: list[int] = []
    after = None
    while True:
        page = data(post(server, SMALL_DOSSIERS, {"number": number, "after": after, **variables}))
        conn = page["demarche"]["dossiers"]
        seen += [n["number"] for n in conn["nodes"]]
        if not conn["pageInfo"]["hasNextPage"]:
            return seen
        after = conn["pageInfo"]["endCursor"]


# ---------------------------------------------------------------- schema
@pytest.mark.skipif(not REAL_SCHEMA.exists(), reason="../shared/ds/schema.graphql absent : test non exécuté")
def test_schema_subset_matches_the_real_schema() -> None:
    real = build_schema(REAL_SCHEMA.read_text(encoding="utf-8"))
    subset = build_schema(SUBSET.read_text(encoding="utf-8"))
    problems = []
    for name, t in subset.type_map.items():
        if name.startswith("__"):
            continue
        r = real.type_map.get(name)
        if r is None or type(r) is not type(t):
            problems.append(f"{name}: absent or of another kind")
            continue
        if isinstance(t, GraphQLObjectType | GraphQLInterfaceType):
            assert isinstance(r, GraphQLObjectType | GraphQLInterfaceType)
            real_ifaces = {i.name for i in r.interfaces}
            problems += [f"{name} implements {i.name}" for i in t.interfaces if i.name not in real_ifaces]
            for fname, f in t.fields.items():
                rf = r.fields.get(fname)
                if rf is None or str(rf.type) != str(f.type):
                    problems.append(f"{name}.{fname}: {f.type} vs {rf.type if rf else 'absent'}")
                    continue
                for aname, a in f.args.items():
                    ra = rf.args.get(aname)
                    if ra is None or str(ra.type) != str(a.type) or ra.default_value != a.default_value:
                        problems.append(f"{name}.{fname}({aname}): {a.type} vs {ra.type if ra else 'absent'}")
                required = {n for n, a in rf.args.items() if a.type.__class__.__name__ == "GraphQLNonNull"}
                problems += [f"{name}.{fname}: required argument {n} missing" for n in required - set(f.args)]
        elif isinstance(t, GraphQLInputObjectType):
            assert isinstance(r, GraphQLInputObjectType)
            for fname, f in t.fields.items():
                rf = r.fields.get(fname)
                if rf is None or str(rf.type) != str(f.type):
                    problems.append(f"input {name}.{fname}: {f.type} vs {rf.type if rf else 'absent'}")
        elif isinstance(t, GraphQLEnumType):
            assert isinstance(r, GraphQLEnumType)
            problems += [f"enum {name}.{v}" for v in t.values if v not in r.values]
        elif isinstance(t, GraphQLUnionType):
            assert isinstance(r, GraphQLUnionType)
            problems += [f"union {name}" for m in t.types if m.name not in {x.name for x in r.types}]
    assert problems == []


def test_every_client_document_validates_against_the_subset() -> None:
    subset = build_schema(SUBSET.read_text(encoding="utf-8"))
    for path in queries.operation_files():
        for operation in _operations(path):
            assert validate(subset, queries.document(operation)) == [], operation


def _operations(path: Path) -> list[str]:
    return re.findall(r"^(?:query|mutation)\s+(\w+)", path.read_text(encoding="utf-8"), re.M)


# ---------------------------------------------------------------- dataset
def test_generation_is_deterministic() -> None:
    # Its speed is measured by bench/bench_sync.py (e), not asserted here.
    big = Dataset.generate(seed=7, counts={"general": 5000, "labo": 100})
    again = Dataset.generate(seed=7, counts={"general": 5000, "labo": 100})
    assert sorted(big.dossiers) == sorted(again.dossiers)
    assert len(big.visible_numbers("general")) == 5000


def test_generated_applicants_have_luhn_valid_sirets(dataset: Dataset) -> None:
    morales = [d.applicant for d in dataset.dossiers.values() if d.applicant.typename != "PersonnePhysique"]
    assert all(siret.is_valid(a.siret) for a in morales)
    assert {"7210", "7346", "7348", "7220", "7355", "9220"} <= {a.cj for a in morales}


# ---------------------------------------------------------------- paging
def test_a_page_is_capped_at_100_dossiers_even_when_500_are_asked(server: FakeDS, dataset: Dataset) -> None:
    page = data(
        post(
            server,
            queries.text("getDossiers"),
            {"number": dataset.numbers["general"], "first": 500, "updatedSince": SINCE},
        )
    )
    conn = page["demarche"]["dossiers"]
    assert len(conn["nodes"]) == 100
    assert conn["pageInfo"]["hasNextPage"] is True


def test_cursors_hold_utc_with_microseconds_and_dates_use_the_paris_offset(server: FakeDS, dataset: Dataset) -> None:
    page = data(post(server, SMALL_DOSSIERS, {"number": dataset.numbers["general"], "first": 3, "since": SINCE}))
    conn = page["demarche"]["dossiers"]
    ts, db_id = base64.b64decode(conn["pageInfo"]["endCursor"]).decode().split(";")
    assert len(ts) == len("2021-05-12T12:03:22.123456Z") and ts.endswith("Z") and db_id.isdigit()
    assert conn["nodes"][0]["dateDepot"][-6:] in ("+01:00", "+02:00")


def test_paging_by_updated_since_survives_dossiers_changing_between_pages(server: FakeDS, dataset: Dataset) -> None:
    number = dataset.numbers["general"]
    first = data(post(server, SMALL_DOSSIERS, {"number": number, "first": 50, "since": SINCE}))
    conn = first["demarche"]["dossiers"]
    seen = [n["number"] for n in conn["nodes"]]
    dataset.edit_champ(seen[0], 1012, "Titre modifié pendant la synchronisation")
    rest = _continue(server, number, conn["pageInfo"]["endCursor"])
    assert sorted(set(seen + rest)) == sorted(dataset.visible_numbers("general"))
    assert rest[-1] == seen[0]


def _continue(server: FakeDS, number: int, after: str) -> list[int]:
    seen: list[int] = []
    while True:
        page = data(post(server, SMALL_DOSSIERS, {"number": number, "first": 50, "since": SINCE, "after": after}))
        conn = page["demarche"]["dossiers"]
        seen += [n["number"] for n in conn["nodes"]]
        if not conn["pageInfo"]["hasNextPage"]:
            return seen
        after = conn["pageInfo"]["endCursor"]


def test_updated_since_filters_on_updated_at_and_ignores_created_since(server: FakeDS, dataset: Dataset) -> None:
    number = dataset.numbers["general"]
    changed = dataset.visible_numbers("general")[5]
    since = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() - 1))
    dataset.set_state(changed, "accepte")
    page = data(post(server, SMALL_DOSSIERS, {"number": number, "since": since, "created": "2030-01-01T00:00:00Z"}))
    assert [n["number"] for n in page["demarche"]["dossiers"]["nodes"]] == [changed]


def test_an_empty_last_page_has_a_null_end_cursor(server: FakeDS, dataset: Dataset) -> None:
    page = data(post(server, SMALL_DOSSIERS, {"number": dataset.numbers["labo"], "since": "2030-01-01T00:00:00Z"}))
    assert page["demarche"]["dossiers"] == {"pageInfo": {"hasNextPage": False, "endCursor": None}, "nodes": []}


# ---------------------------------------------------------------- deletions
def test_hidden_dossiers_move_to_pending_deletions_except_expired_ones(server: FakeDS, dataset: Dataset) -> None:
    number = dataset.numbers["labo"]
    by_admin, expired = dataset.visible_numbers("labo")[:2]
    before = {n["number"] for n in _deletions(server, number)["pendingDeletedDossiers"]["nodes"]}
    dataset.hide(by_admin, by="administration")
    dataset.hide(expired, by="expired")
    after = _deletions(server, number)
    pending = {n["number"]: n for n in after["pendingDeletedDossiers"]["nodes"]}
    assert set(pending) - before == {by_admin}
    assert pending[by_admin]["reason"] == "instructeur_request"
    assert not {by_admin, expired} & set(all_pages(server, number, since=SINCE))


def test_purging_a_dossier_its_usager_deleted_backdates_deleted_at(server: FakeDS, dataset: Dataset) -> None:
    target = next(n for n in dataset.visible_numbers("general") if dataset.dossier(n).state == "en_construction")
    dataset.hide(target, by="usager")
    hidden_at = _pending_date(server, dataset, target)
    time.sleep(1.1)
    dataset.purge(target)
    deleted = {n["number"]: n for n in _deletions(server, dataset.numbers["general"])["deletedDossiers"]["nodes"]}
    assert deleted[target]["dateSupression"] == hidden_at
    assert deleted[target]["reason"] == "user_request"


def _pending_date(server: FakeDS, dataset: Dataset, target: int) -> str:
    nodes = _deletions(server, dataset.numbers["general"])["pendingDeletedDossiers"]["nodes"]
    date: str = next(n["dateSupression"] for n in nodes if n["number"] == target)
    return date


def _deletions(server: FakeDS, number: int) -> Any:
    return data(post(server, queries.text("getDeletions"), {"number": number}))["demarche"]


def test_a_restored_dossier_comes_back_after_the_cursor(server: FakeDS, dataset: Dataset) -> None:
    target = dataset.visible_numbers("general")[0]
    dataset.hide(target)
    dataset.restore(target)
    assert all_pages(server, dataset.numbers["general"], since=SINCE)[-1] == target


def test_a_hidden_dossier_is_not_found(server: FakeDS, dataset: Dataset) -> None:
    target = dataset.visible_numbers("general")[0]
    dataset.hide(target)
    body = post(server, queries.text("getDossier"), {"number": target}).json()
    assert body["data"] is None
    assert body["errors"][0]["message"] == "Dossier not found"
    assert body["errors"][0]["extensions"] == {"code": "not_found"}


# ---------------------------------------------------------------- champ typing
def test_drop_down_champs_are_text_champs_unless_the_document_names_their_type(
    server: FakeDS, dataset: Dataset
) -> None:
    target = dataset.visible_numbers("general")[0]
    plain = {c["label"]: c for c in data(post(server, WITHOUT_FRAGMENTS, {"number": target}))["dossier"]["champs"]}
    typed = {c["label"]: c for c in data(post(server, WITH_DROPDOWN, {"number": target}))["dossier"]["champs"]}
    kind = "Type de collectivité"
    assert (plain[kind]["__typename"], typed[kind]["__typename"]) == ("TextChamp", "DropDownListChamp")
    assert plain[kind]["value"] == typed[kind]["choice"] == dataset.dossier(target).applicant.kind
    multi = "Le projet est-il porté par plusieurs collectivités ?"
    assert (plain[multi]["__typename"], typed[multi]["__typename"]) == ("CheckboxChamp", "YesNoChamp")
    assert plain["Porteur du projet"]["__typename"] == "TextChamp"
    assert plain["Courriel du contact opérationnel"]["__typename"] == "TextChamp"


def test_conditional_partners_block_is_omitted_for_a_single_porteur(server: FakeDS, dataset: Dataset) -> None:
    target = next(
        n
        for n in dataset.visible_numbers("general")
        if dataset.dossier(n).revision.number % 10 == 1 and dataset.dossier(n).values.get(1004) is False
    )
    node = data(post(server, queries.text("getDossier"), {"number": target}))["dossier"]
    labels = [c["label"] for c in node["champs"]]
    assert "Collectivités partenaires" not in labels
    population = next(c for c in node["champs"] if c["label"].startswith("Population"))
    assert population["__typename"] == "IntegerNumberChamp" and isinstance(population["integer"], str)


def test_rows_and_row_champs_carry_the_row_id(server: FakeDS, dataset: Dataset) -> None:
    target = dataset.visible_numbers("general")[0]
    node = data(post(server, queries.text("getDossier"), {"number": target}))["dossier"]
    block = next(c for c in node["champs"] if c["label"] == "Dépenses prévisionnelles")
    row = block["rows"][0]
    row_id = base64.b64decode(row["id"]).decode().removeprefix("Row-")
    assert base64.b64decode(row["champs"][0]["id"]).decode() == f"Champ-1032|{row_id}"
    assert row["champs"][0]["champDescriptorId"] == base64.b64encode(b"Champ-1032").decode()


# ---------------------------------------------------------------- auth and limits
@pytest.mark.parametrize(
    ("auth", "status", "message"),
    [
        (None, 403, "Without a token, only persisted queries are allowed"),
        ("Bearer inconnu", 403, "Without a token, only persisted queries are allowed"),
        ("Bearer tok-perime", 401, "Token expired"),
        (
            "Bearer tok-reseau",
            403,
            "Request issued from a forbidden network. Add 127.0.0.1/32 to your allowed adresses in your /profil",
        ),
    ],
)
def test_authentication_failures_have_the_real_status_and_body(
    server: FakeDS, dataset: Dataset, auth: str | None, status: int, message: str
) -> None:
    response = post(server, SMALL_DOSSIERS, {"number": dataset.numbers["general"]}, token=None, auth=auth)
    assert response.status_code == status
    assert response.json() == {
        "errors": [{"message": message, "extensions": {"code": "unauthorized" if status == 401 else "forbidden"}}],
        "data": None,
    }


def test_the_token_equals_form_of_the_header_is_accepted(server: FakeDS, dataset: Dataset) -> None:
    response = post(
        server, SMALL_DOSSIERS, {"number": dataset.numbers["general"], "first": 1}, auth="Bearer token=tok-lecture"
    )
    assert data(response)["demarche"]["dossiers"]["nodes"]


def test_a_demarche_outside_the_token_scope_is_hidden_with_http_200(server: FakeDS, dataset: Dataset) -> None:
    response = post(server, SMALL_DOSSIERS, {"number": dataset.numbers["labo"]}, token="tok-ecriture")
    assert response.status_code == 200
    assert response.json() == {
        "data": None,
        "errors": [
            {
                "message": "An object of type Demarche was hidden due to permissions",
                "locations": [{"line": 3, "column": 3}],
                "path": ["demarche"],
                "extensions": {"code": "unauthorized"},
            }
        ],
    }


def test_going_past_the_rate_limit_gives_ds_429_at_the_end_of_a_fixed_window_without_retry_after(
    server: FakeDS, dataset: Dataset
) -> None:
    server.rate_limit = 3
    variables = {"number": dataset.numbers["general"], "first": 1}
    early_in_a_window(server.rate_window, server.rate_window - 10)  # the six requests stay in one minute
    statuses = [post(server, SMALL_DOSSIERS, variables).status_code for _ in range(4)]
    last = post(server, SMALL_DOSSIERS, variables)
    other_token = post(server, SMALL_DOSSIERS, variables, token="tok-ecriture")
    assert statuses == [200, 200, 200, 429]
    assert last.status_code == 429 and last.text.startswith("Calme toi, cowboy")
    assert "Retry-After" not in last.headers and last.headers["RateLimit-Remaining"] == "0"
    reset = int(last.headers["RateLimit-Reset"])
    served_at = parsedate_to_datetime(last.headers["Date"]).timestamp()
    assert reset % 60 == 0 and 0 < reset - served_at <= 60  # the end of the current calendar minute
    assert other_token.status_code == 200  # windows are kept per Authorization header
    assert server.stats.throttled == 2


def test_every_request_counts_in_the_window_refused_ones_too(server: FakeDS, dataset: Dataset) -> None:
    server.rate_limit = 3
    server.rate_window = 3600  # one window for the whole test
    variables = {"number": dataset.numbers["general"], "first": 1}
    statuses = [post(server, SMALL_DOSSIERS, variables).status_code for _ in range(6)]
    assert statuses == [200, 200, 200, 429, 429, 429]
    minutes = server.stats.per_minute("tok-lecture")
    assert sum(minutes.values()) == 6 and server.stats.per_minute("tok-ecriture") == {}


# ---------------------------------------------------------------- faults
def test_forced_faults_give_429_then_html_503_then_success(server: FakeDS, dataset: Dataset) -> None:
    server.faults.fail_next(1, "429")
    server.faults.fail_next(1, "503")
    variables = {"number": dataset.numbers["general"], "first": 1}
    throttled, unavailable, ok = (post(server, SMALL_DOSSIERS, variables) for _ in range(3))
    assert throttled.status_code == 429 and "Retry-After" not in throttled.headers
    assert 0 < int(throttled.headers["RateLimit-Reset"]) - time.time() <= 2
    assert unavailable.status_code == 503 and unavailable.headers["Content-Type"].startswith("text/html")
    assert ok.status_code == 200


def page_of_dossiers(server: FakeDS, number: int, first: int = 10, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = post(
        server, queries.text("getDossiers"), {"number": number, "first": first, "updatedSince": SINCE, **extra}
    ).json()
    return body


def test_a_dossier_with_bad_data_is_a_null_node_with_invalid_null_and_the_rest_of_the_page_intact(
    server: FakeDS, dataset: Dataset
) -> None:
    number = dataset.numbers["general"]
    before = page_of_dossiers(server, number)["data"]["demarche"]["dossiers"]
    bad = before["nodes"][3]["number"]
    dataset.set_bad_data(bad)
    body = page_of_dossiers(server, number)
    page = body["data"]["demarche"]["dossiers"]
    assert page["nodes"][3] is None
    assert [n["number"] for i, n in enumerate(page["nodes"]) if i != 3] == [
        n["number"] for i, n in enumerate(before["nodes"]) if i != 3
    ]
    assert page["pageInfo"] == before["pageInfo"]
    assert [e["extensions"]["code"] for e in body["errors"]] == ["invalid_null"]
    assert body["errors"][0]["path"][:4] == ["demarche", "dossiers", "nodes", 3]
    assert body["errors"][0]["message"].startswith("Cannot return null for non-nullable field")
    # A query without champs still answers, and repairing the data does not touch updated_at.
    stubs = post(server, queries.text("getDossierStubs"), {"number": number, "first": 10, "updatedSince": SINCE})
    assert data(stubs)["demarche"]["dossiers"]["nodes"][3]["number"] == bad
    dataset.set_bad_data(bad, False)
    repaired = page_of_dossiers(server, number)["data"]["demarche"]["dossiers"]["nodes"][3]
    assert repaired["dateDerniereModification"] == before["nodes"][3]["dateDerniereModification"]


def test_a_slow_dossier_times_out_on_every_read_of_its_champs_and_answers_without_them(
    server: FakeDS, dataset: Dataset
) -> None:
    number = dataset.numbers["general"]
    slow = dataset.visible_numbers("general")[0]
    server.faults.slow(slow)
    for _ in range(3):
        body = post(server, queries.text("getDossier"), {"number": slow}).json()
        assert body["data"] is None and body["errors"][0]["extensions"] == {"code": "timeout"}
    page = page_of_dossiers(server, number, first=100)
    assert None in page["data"]["demarche"]["dossiers"]["nodes"]
    assert {e["extensions"]["code"] for e in page["errors"]} == {"timeout"}
    stubs = post(server, queries.text("getDossierStubs"), {"number": number, "first": 100, "updatedSince": SINCE})
    assert slow in {n["number"] for n in data(stubs)["demarche"]["dossiers"]["nodes"]}


LINKED = """
query linked($number: Int!) {
  dossier(number: $number) {
    number
    champs { __typename stringValue ... on DossierLinkChamp { dossier { number } } }
  }
}
"""


def test_a_linked_dossier_outside_the_token_scope_is_hidden_below_the_dossier_with_the_rest_intact(
    server: FakeDS, dataset: Dataset
) -> None:
    general, labo = dataset.visible_numbers("general")[0], dataset.visible_numbers("labo")[0]
    link_id = "Q2hhbXAtOTk5OQ=="
    dataset.add_raw_champ(general, {"_kind": "DossierLink", "id": link_id, "champDescriptorId": link_id,
                                    "label": "Dossier lié", "stringValue": str(labo), "linked": labo,
                                    "updatedAt": "2025-01-01T00:00:00+01:00", "prefilled": False})
    body = post(server, LINKED, {"number": general}, token="tok-ecriture").json()  # scope: general only
    link = body["data"]["dossier"]["champs"][-1]
    assert link == {"__typename": "DossierLinkChamp", "stringValue": str(labo), "dossier": None}
    assert body["data"]["dossier"]["number"] == general
    [error] = body["errors"]
    assert error["message"] == "An object of type Dossier was hidden due to permissions"
    assert error["extensions"] == {"code": "unauthorized"}
    assert error["path"][:2] == ["dossier", "champs"] and error["path"][-1] == "dossier"
    everything = data(post(server, LINKED, {"number": general}, token="tok-lecture"))
    assert everything["dossier"]["champs"][-1]["dossier"] == {"number": labo}


def test_a_late_commit_appears_with_an_updated_at_behind_changes_committed_before_it(
    server: FakeDS, dataset: Dataset
) -> None:
    late, early = dataset.visible_numbers("general")[:2]
    dataset.edit_champ_uncommitted(late, "Q2hhbXAtMTAxMg==", "Enregistré d'abord, validé ensuite")
    dataset.edit_champ(early, "Q2hhbXAtMTAxMg==", "Enregistré et validé")
    number = dataset.numbers["general"]
    since = dataset.dossier(early).updated_at.isoformat()
    uncommitted = data(post(server, ANNOTATIONS.replace("annotations {", "champs {"), {"number": late}))
    assert "Enregistré d'abord" not in str(uncommitted)  # not visible before its commit
    dataset.commit(late)
    assert dataset.dossier(late).updated_at < dataset.dossier(early).updated_at
    after = data(post(server, SMALL_DOSSIERS, {"number": number, "since": since}))["demarche"]["dossiers"]["nodes"]
    assert [n["number"] for n in after] == [early]  # a stream already past `early` never sees the late one
    overlap = (dataset.dossier(late).updated_at - timedelta(seconds=1)).isoformat()
    both = data(post(server, SMALL_DOSSIERS, {"number": number, "since": overlap}))["demarche"]["dossiers"]["nodes"]
    assert [n["number"] for n in both] == [late, early]


def test_a_champ_type_the_document_does_not_name_comes_with_its_string_value_only(
    server: FakeDS, dataset: Dataset
) -> None:
    number = dataset.visible_numbers("general")[0]
    dataset.add_raw_champ(number, {"_kind": "RNA", "id": "Q2hhbXAtOTk5OA==", "champDescriptorId": "Q2hhbXAtOTk5OA==",
                                   "label": "Numéro RNA", "stringValue": "W751234567",
                                   "updatedAt": "2025-01-01T00:00:00+01:00", "prefilled": False})
    champ = data(post(server, queries.text("getDossier"), {"number": number}))["dossier"]["champs"][-1]
    assert champ["__typename"] == "RNAChamp" and champ["stringValue"] == "W751234567"
    assert set(champ) == {"__typename", "id", "champDescriptorId", "label", "stringValue", "updatedAt"}


def test_a_timeout_fault_gives_partial_data_with_null_nodes(server: FakeDS, dataset: Dataset) -> None:
    server.faults.fail_next(1, "timeout")
    body = post(
        server, queries.text("getDossiers"), {"number": dataset.numbers["general"], "first": 10, "updatedSince": SINCE}
    ).json()
    nodes = body["data"]["demarche"]["dossiers"]["nodes"]
    assert nodes[0] is None and nodes[1] is not None
    assert body["errors"][0]["extensions"] == {"code": "timeout"}
    assert body["errors"][0]["path"] == ["demarche", "dossiers", "nodes", 0, "champs"]


def test_a_fail_rate_draws_faults_from_the_chosen_kinds(server: FakeDS, dataset: Dataset) -> None:
    server.faults.fail_rate = 0.5
    server.faults.kinds = ("502",)
    statuses = {
        post(server, SMALL_DOSSIERS, {"number": dataset.numbers["general"], "first": 1}).status_code for _ in range(20)
    }
    assert statuses == {200, 502}


def test_parallel_requests_are_served_concurrently(server: FakeDS, dataset: Dataset) -> None:
    server.faults.hold_after(0)  # every request waits inside the server until released
    variables = {"number": dataset.numbers["general"], "first": 1}
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(post, server, SMALL_DOSSIERS, variables) for _ in range(4)]
        try:
            while server.faults.held() < 4:  # all four are inside the server at once
                assert not any(f.done() for f in futures)
                time.sleep(0.01)
        finally:
            server.faults.release()
        assert [f.result().status_code for f in futures] == [200] * 4


def test_a_hold_on_some_operations_answers_the_others(server: FakeDS, dataset: Dataset) -> None:
    server.faults.hold_after(1, operations={"small"})
    variables = {"number": dataset.numbers["general"], "first": 1}
    assert post(server, SMALL_DOSSIERS, variables).status_code == 200  # the one answered
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(post, server, SMALL_DOSSIERS, variables)
        try:
            while server.faults.held() < 1:
                assert not held.done()
                time.sleep(0.01)
            other = post(server, "query other { __typename }")
            assert other.status_code == 200 and other.json() == {"data": {"__typename": "Query"}}
            assert not held.done()
        finally:
            server.faults.release()
        assert held.result().status_code == 200


# ---------------------------------------------------------------- files
def _files(server: FakeDS, number: int) -> list[dict[str, Any]]:
    node = data(post(server, queries.text("getDossier"), {"number": number}))["dossier"]
    return [f for c in node["champs"] if c["__typename"] == "PieceJustificativeChamp" for f in c["files"]]


def test_file_urls_serve_bytes_matching_the_checksum_then_expire(server: FakeDS, dataset: Dataset) -> None:
    target = dataset.visible_numbers("general")[0]
    f = _files(server, target)[0]
    response = httpx.get(f["url"])
    assert response.status_code == 200
    assert len(response.content) == int(f["byteSize"])
    assert base64.b64encode(hashlib.md5(response.content).digest()).decode() == f["checksum"]
    server.storage.advance(2.1)
    assert httpx.get(f["url"]).status_code == 401


def test_a_corrupt_file_fault_serves_bytes_that_fail_the_checksum(server: FakeDS, dataset: Dataset) -> None:
    target = dataset.visible_numbers("general")[0]
    spec = next(
        iter(v for v in dataset.dossier(target).values.values() if isinstance(v, list) and v and hasattr(v[0], "key"))
    )[0]
    server.faults.corrupt(spec.key)
    f = next(f for f in _files(server, target) if f["filename"] == spec.filename)
    body = httpx.get(f["url"]).content
    assert len(body) == spec.size
    assert base64.b64encode(hashlib.md5(body).digest()).decode() != f["checksum"]


def test_hostile_filenames_are_served_as_they_were_uploaded(server: FakeDS, dataset: Dataset) -> None:
    target = dataset.visible_numbers("general")[0]
    dataset.attach_file(target, "Devis de la prestation", "../../etc/passwd")
    assert "../../etc/passwd" in [f["filename"] for f in _files(server, target)]


# ---------------------------------------------------------------- mutation
def _mutation(
    server: FakeDS,
    dataset: Dataset,
    number: int,
    instructeur: int,
    annotation_id: str,
    value: dict[str, Any],
    token: str = "tok-ecriture",
) -> Any:
    return data(
        post(
            server,
            queries.text("modifierAnnotations"),
            {
                "input": {
                    "dossierId": dataset.dossier(number).id,
                    "instructeurId": base64.b64encode(f"Instructeur-{instructeur}".encode()).decode(),
                    "annotations": [{"id": annotation_id, "value": value}],
                }
            },
            token=token,
        )
    )["dossierModifierAnnotations"]


CONTROLE = base64.b64encode(b"Champ-1904").decode()


def test_a_read_only_token_cannot_write_annotations(server: FakeDS, dataset: Dataset) -> None:
    target = dataset.visible_numbers("general")[0]
    result = _mutation(
        server,
        dataset,
        target,
        dataset.groupe_instructeurs(target)[0],
        CONTROLE,
        {"text": "éligible"},
        token="tok-lecture",
    )
    read_only = "Le jeton utilisé est configuré seulement en lecture"
    assert result == {"annotations": None, "errors": [{"message": read_only}]}


def test_an_instructeur_outside_the_groupe_cannot_write_annotations(server: FakeDS, dataset: Dataset) -> None:
    target = dataset.visible_numbers("general")[0]
    outsider = next(i for i in dataset.instructeurs if i not in dataset.groupe_instructeurs(target))
    result = _mutation(server, dataset, target, outsider, CONTROLE, {"text": "éligible"})
    assert result["errors"] == [{"message": "L’instructeur n’a pas les droits d’accès à ce dossier"}]


def test_an_unknown_annotation_id_is_an_error(server: FakeDS, dataset: Dataset) -> None:
    target = dataset.visible_numbers("general")[0]
    result = _mutation(
        server,
        dataset,
        target,
        dataset.groupe_instructeurs(target)[0],
        base64.b64encode(b"Champ-1012").decode(),
        {"text": "x"},
    )
    assert result["annotations"] is None and result["errors"][0]["message"]


def test_writing_an_annotation_updates_it_and_bumps_the_dossier(server: FakeDS, dataset: Dataset) -> None:
    target = dataset.visible_numbers("general")[0]
    before = data(post(server, ANNOTATIONS, {"number": target}))["dossier"]
    result = _mutation(
        server, dataset, target, dataset.groupe_instructeurs(target)[0], CONTROLE, {"text": "eligible : aucun motif"}
    )
    after = data(post(server, ANNOTATIONS, {"number": target}))["dossier"]
    assert result == {
        "annotations": [{"id": CONTROLE, "champDescriptorId": CONTROLE, "stringValue": "eligible : aucun motif"}],
        "errors": None,
    }
    assert after["dateDerniereModification"] > before["dateDerniereModification"]
    assert after["dateDerniereModificationAnnotations"] > before["dateDerniereModificationAnnotations"]
    assert (server.stats.mutations, server.stats.mutations_applied) == (1, 1)


# ---------------------------------------------------------------- warm render cache (FakeDS(warm=True))
@pytest.fixture
def warm(dataset: Dataset) -> Iterator[FakeDS]:
    tokens = {
        "tok-lecture": TokenSpec(write=False),
        "tok-ecriture": TokenSpec(write=True, scope={dataset.numbers["general"]}),
    }
    with FakeDS(dataset, tokens, warm=True) as s:
        yield s


def _sync_page(server: FakeDS, token: str = "tok-lecture", **variables: Any) -> dict[str, Any]:
    """A page as the sync asks for it (itn7cli/api/client.py `dossier_pages`), the general démarche by default."""
    sent = {"number": server.dataset.numbers["general"], "updatedSince": EPOCH, "first": 100, **variables}
    body: dict[str, Any] = post(server, queries.text("getDossiers"), sent, token=token).json()
    return body


def _unsigned(body: dict[str, Any]) -> str:
    """The answer without its signed URLs, which name the server's port and signing time."""
    return re.sub(r'"url": "[^"]*"', '"url": ""', json.dumps(body, sort_keys=True))


def test_a_warm_server_answers_the_sync_pages_and_a_dossier_exactly_as_a_cold_one(
    warm: FakeDS, dataset: Dataset
) -> None:
    assert warm.renders is not None and warm.warmed is not None
    warmed, misses = warm.warmed[0], warm.renders.misses
    # Each token's view: tok-lecture's of both démarches, tok-ecriture's of the general one only.
    assert warmed == len(dataset.visible_numbers("general")) * 2 + len(dataset.visible_numbers("labo"))
    target = dataset.visible_numbers("general")[5]
    with FakeDS(dataset, dict(warm.tokens)) as cold:
        served = 0
        for variables in ({"state": "en_instruction"}, {"first": 7, "updatedSince": SINCE}, {}):
            page = _sync_page(warm, **variables)
            assert _unsigned(page) == _unsigned(_sync_page(cold, **variables))
            served += len(page["data"]["demarche"]["dossiers"]["nodes"])
        assert (warm.renders.hits, warm.renders.misses) == (served, misses)  # all from the warm-up
        for _ in range(2):  # a miss, then a hit
            one = post(warm, queries.text("getDossier"), {"number": target}).json()
            assert _unsigned(one) == _unsigned(post(cold, queries.text("getDossier"), {"number": target}).json())
    assert (warm.renders.hits, warm.renders.misses) == (served + 1, misses + 1)


def test_a_state_change_through_the_mutation_api_shows_in_the_next_warm_answer(warm: FakeDS, dataset: Dataset) -> None:
    target = next(n for n in dataset.visible_numbers("general") if dataset.dossier(n).state == "en_construction")

    def state() -> str:  # as the next sync would see it, whichever page the dossier is on
        after, states = None, {}
        while True:
            page = _sync_page(warm, after=after)["data"]["demarche"]["dossiers"]
            states.update({n["number"]: n["state"] for n in page["nodes"]})
            if not page["pageInfo"]["hasNextPage"]:
                return str(states[target])
            after = page["pageInfo"]["endCursor"]

    assert state() == "en_construction"
    instructeur = base64.b64encode(f"Instructeur-{dataset.groupe_instructeurs(target)[0]}".encode()).decode()
    moved = data(post(warm, queries.text("passerEnInstruction"),
                      {"input": {"dossierId": dataset.dossier(target).id, "instructeurId": instructeur}},
                      token="tok-ecriture"))["dossierPasserEnInstruction"]
    assert moved["errors"] is None and moved["dossier"]["state"] == "en_instruction"
    assert state() == "en_instruction"


def test_a_dataset_change_shows_in_the_next_warm_answer(warm: FakeDS, dataset: Dataset) -> None:
    target = next(n for n in dataset.visible_numbers("general") if not dataset.dossier(n).archived)
    getter = queries.text("getDossier")
    assert data(post(warm, getter, {"number": target}))["dossier"]["archived"] is False
    dataset.archive(target)
    assert data(post(warm, getter, {"number": target}))["dossier"]["archived"] is True


def test_a_dossier_whose_completion_errors_is_not_kept_by_the_warm_cache(warm: FakeDS, dataset: Dataset) -> None:
    bad = _sync_page(warm, first=10)["data"]["demarche"]["dossiers"]["nodes"][3]["number"]
    dataset.set_bad_data(bad)
    for _ in range(2):
        body = _sync_page(warm, first=10)
        assert body["data"]["demarche"]["dossiers"]["nodes"][3] is None
        assert [e["extensions"]["code"] for e in body["errors"]] == ["invalid_null"]
    assert warm.renders is not None and len(warm.renders) == 9


def _link(dataset: Dataset, number: int, linked: int) -> None:
    link_id = "Q2hhbXAtOTk5OQ=="
    dataset.add_raw_champ(number, {"_kind": "DossierLink", "id": link_id, "champDescriptorId": link_id,
                                   "label": "Dossier lié", "stringValue": str(linked), "linked": linked,
                                   "updatedAt": "2025-01-01T00:00:00+01:00", "prefilled": False})


def test_hiding_a_linked_dossier_shows_in_the_next_warm_answer_of_the_dossier_linking_it(
    warm: FakeDS, dataset: Dataset
) -> None:
    number, linked = dataset.visible_numbers("general")[:2]
    _link(dataset, number, linked)
    for _ in range(2):
        assert data(post(warm, LINKED, {"number": number}))["dossier"]["champs"][-1]["dossier"] == {"number": linked}
    dataset.hide(linked)  # the linking dossier itself is untouched
    body = post(warm, LINKED, {"number": number}).json()
    assert body["data"]["dossier"]["champs"][-1]["dossier"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["not_found"]


def test_a_token_never_gets_the_warm_view_of_another_token(warm: FakeDS, dataset: Dataset) -> None:
    general, labo = dataset.visible_numbers("general")[0], dataset.visible_numbers("labo")[0]
    _link(dataset, general, labo)
    for _ in range(2):
        everything = data(post(warm, LINKED, {"number": general}, token="tok-lecture"))
        assert everything["dossier"]["champs"][-1]["dossier"] == {"number": labo}
        hidden = post(warm, LINKED, {"number": general}, token="tok-ecriture").json()  # scope: general only
        assert hidden["data"]["dossier"]["champs"][-1]["dossier"] is None
        assert [e["extensions"]["code"] for e in hidden["errors"]] == ["unauthorized"]


def test_a_warm_answer_signs_new_urls_once_a_quarter_of_their_life_went_by(warm: FakeDS, dataset: Dataset) -> None:
    target = dataset.visible_numbers("general")[0]
    first = _files(warm, target)[0]["url"]
    assert _files(warm, target)[0]["url"] == first  # reused
    warm.storage.advance(warm.url_ttl * 0.3)
    renewed = _files(warm, target)[0]["url"]
    warm.storage.advance(warm.url_ttl * 0.8)
    assert (httpx.get(first).status_code, httpx.get(renewed).status_code) == (401, 200)
    warm.storage.rotate()
    assert httpx.get(_files(warm, target)[0]["url"]).status_code == 200
