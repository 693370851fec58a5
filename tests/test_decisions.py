"""`itn7 decisions`: the committee's workbook back into DS, against the fake DS server over real HTTP.

The workbook is the real export; it is filled with openpyxl as a committee secretary would (sorting
included), imported, then applied by the real CLI. The fake's state mutations follow DS's rules.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from openpyxl import load_workbook
from typer.testing import CliRunner

from itn7cli import check, config, export, store, sync
from itn7cli.api import DSClient
from itn7cli.cli import app
from itn7cli.decisions import apply as apply_mod
from itn7cli.decisions.workbook import import_workbook
from itn7cli.fakeds import Dataset, FakeDS, TokenSpec
from itn7cli.fakeds.dataset import relay_id
from itn7cli.fakeds.forms import Descriptor
from itn7cli.fakeds.mutations import NO_ACCESS, READ_ONLY, Notification, notifications
from itn7cli.store import decisions as decision_store

WRITE_TOKEN = "tok-ecriture-decisions-4c1d"
READ_TOKEN = "tok-lecture-decisions-77ab"
SGAR = 1001
SGAR_ID = relay_id("Instructeur", SGAR)
SESSION = 1
KEY = "Clé itn7 (ne pas modifier)"
DECISION, AMOUNT, MOTIVATION = "Décision du comité", "Montant attribué (€)", "Motivation"


@dataclass
class World:
    dataset: Dataset
    server: FakeDS
    db_path: Path
    workbook: Path
    settings: config.Settings

    def env(self, token: str = WRITE_TOKEN) -> dict[str, str]:
        return {"DS_API_TOKEN": token, "DS_API_URL": self.server.url, "ITN7_DB": str(self.db_path),
                "ITN7_INSTRUCTEUR_ID": SGAR_ID, "COLUMNS": "250",
                "ITN7_DEMARCHE_GENERAL": str(self.dataset.numbers["general"]),
                "ITN7_DEMARCHE_LABO": str(self.dataset.numbers["labo"])}

    def resync(self) -> None:
        sync.sync_settings(self.settings, dict(self.dataset.numbers))
        with closing(self.db_path) as db:
            check.run(db, self.settings)


class closing:
    """An itn7 database opened for a block (named like contextlib's closing)."""

    def __init__(self, path: Path) -> None:
        self.db = store.open_db(path)

    def __enter__(self) -> Any:
        return self.db

    def __exit__(self, *exc: object) -> None:
        self.db.close()


DECISION_OPTIONS = ("Retenu", "Ajourné", "Refusé", "Classé sans suite")


def make_world(tmp_path: Path, *, decision_annotations: bool = False) -> Iterator[World]:
    dataset = Dataset.generate(seed=21, counts={"general": 40, "labo": 8})
    for demarche in dataset.demarches.values():
        for groupe in demarche.groupes:
            if SGAR not in groupe["instructeurs"]:
                groupe["instructeurs"].append(SGAR)
        if decision_annotations:  # a form whose administrators added the committee's annotations
            base = 1000 if demarche.key == "general" else 2000
            for revision in demarche.revisions:
                revision.annotations += [
                    Descriptor(base + 905, "DropDownList", "Décision du comité", options=DECISION_OPTIONS),
                    Descriptor(base + 906, "DecimalNumber", "Montant attribué (€)")]
    tokens = {WRITE_TOKEN: TokenSpec(write=True), READ_TOKEN: TokenSpec(write=False)}
    with FakeDS(dataset, tokens=tokens) as server:
        db_path = tmp_path / "itn7.db"
        settings = config.Settings(token=config.Secret(WRITE_TOKEN), api_url=server.url,
                                   demarches=dict(dataset.numbers), db_path=db_path, instructeur_id=SGAR_ID)
        built = World(dataset, server, db_path, tmp_path / "comite.xlsx", settings)
        built.resync()
        with closing(db_path) as db:
            export.export_session(db, settings, SESSION, built.workbook)
        server.stats.reset()
        yield built


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield from make_world(tmp_path)


@pytest.fixture
def annotated_world(tmp_path: Path) -> Iterator[World]:
    yield from make_world(tmp_path, decision_annotations=True)


def invoke(args: list[str], environment: dict[str, str], answer: str | None = None) -> Result:
    result = CliRunner().invoke(app, args, env=environment, input=answer)
    for token in (WRITE_TOKEN, READ_TOKEN):
        assert token not in result.stdout + result.stderr
    return result


def sheet_rows(path: Path, sheet: str = "Dossiers") -> list[dict[str, Any]]:
    ws = load_workbook(path)[sheet]
    header = [c.value for c in ws[1]]
    return [dict(zip(header, row, strict=False)) for row in ws.iter_rows(min_row=2, values_only=True)]


def number_of(row: dict[str, Any]) -> int:
    return int(row[KEY].split(":")[2][1:])


def fill(path: Path, decisions: dict[int, tuple[Any, Any, Any]], *, sheet: str = "Dossiers",
         sort_by: str | None = None) -> None:
    """Types decisions as a secretary would: optionally sorting the sheet first (whole rows move)."""
    wb = load_workbook(path)
    ws = wb[sheet]
    header = [c.value for c in ws[1]]
    if sort_by is not None:
        rows = [[c.value for c in row] for row in ws.iter_rows(min_row=2)]
        rows.sort(key=lambda r: str(r[header.index(sort_by)]), reverse=True)
        for r_index, values in enumerate(rows, start=2):
            for c_index, value in enumerate(values, start=1):
                ws.cell(r_index, c_index).value = value
    for row in ws.iter_rows(min_row=2):
        key = row[header.index(KEY)].value
        number = int(key.split(":")[2][1:]) if key else None
        if number in decisions:
            for column, value in zip((DECISION, AMOUNT, MOTIVATION), decisions[number], strict=True):
                row[header.index(column)].value = value
    wb.save(path)


def by_state(world: World) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for row in sheet_rows(world.workbook):
        found.setdefault(row["État DS"], []).append(row)
    return found


def recorded(world: World) -> dict[int, dict[str, Any]]:
    with closing(world.db_path) as db:
        return decision_store.recorded(db)


def do_import(world: World, *, partial: bool = False, **overrides: Any) -> Any:
    settings = replace(world.settings, **overrides) if overrides else world.settings
    with closing(world.db_path) as db:
        return import_workbook(db, settings, world.workbook, partial=partial)


# ---------------------------------------------------------------- the workbook


def test_the_decision_columns_are_unlocked_with_a_drop_down_and_the_key_is_hidden(world: World) -> None:
    wb = load_workbook(world.workbook)
    for name in ("Dossiers", "04 Alpes-de-Haute-Provence"):
        ws = wb[name]
        header = [c.value for c in ws[1]]
        assert header[-4:] == [DECISION, AMOUNT, MOTIVATION, KEY]
        assert ws.protection.sheet and ws.protection.password is None
        assert not ws.protection.sort and not ws.protection.autoFilter
        key_letter = ws.cell(1, len(header)).column_letter
        assert ws.column_dimensions[key_letter].hidden
        if ws.max_row > 1:
            assert [ws.cell(2, len(header) - i).protection.locked for i in (1, 2, 3)] == [False, False, False]
            assert ws.cell(2, 1).protection.locked
        choices = [dv for dv in ws.data_validations.dataValidation if dv.type == "list"]
        assert choices and choices[0].formula1 == '"Retenu,Ajourné,Refusé,Classé sans suite"'


# ---------------------------------------------------------------- the round trip


def test_the_full_round_trip_ends_with_ds_states_and_e_mails_exactly_as_decided(world: World) -> None:
    states = by_state(world)
    retained_new, retained = states["En construction"][0], states["En instruction"][0]
    refused, closed, postponed = states["En instruction"][1], states["En instruction"][2], states["En construction"][1]
    plan = {
        number_of(retained_new): ("Retenu", retained_new["Montant plafonné"], "Projet retenu par le comité."),
        number_of(retained): ("Retenu", min(retained["Montant plafonné"], 1000.0), "Retenu pour 1 000 €."),
        number_of(refused): ("Refusé", None, "Dépenses hors du champ de l'appel."),
        number_of(closed): ("Classé sans suite", None, "Doublon d'un autre dossier."),
        number_of(postponed): ("Ajourné", None, None),
    }
    fill(world.workbook, plan, sort_by="Porteur")

    first = invoke(["decisions", "import", str(world.workbook)], world.env())
    assert first.exit_code == 0, first.stderr
    assert "5 décision(s) enregistrée(s), 0 inchangée(s)" in first.stderr
    again = invoke(["decisions", "import", str(world.workbook)], world.env())
    assert "0 décision(s) enregistrée(s), 5 inchangée(s)" in again.stderr

    dry = invoke(["decisions", "apply"], world.env())
    assert dry.exit_code == 0, dry.stderr
    assert "passer en instruction puis accepter" in dry.stdout
    assert "4 demandeur(s) recevront un courriel" in dry.stderr
    assert world.server.stats.requests == 0  # a dry run reads the store only

    applied = invoke(["decisions", "apply", "--apply", "--oui"], world.env())
    assert applied.exit_code == 0, applied.stderr
    ds = world.dataset
    expected_states = {number_of(retained_new): "accepte", number_of(retained): "accepte",
                       number_of(refused): "refuse", number_of(closed): "sans_suite",
                       number_of(postponed): "en_construction"}
    assert {n: ds.dossiers[n].state for n in expected_states} == expected_states
    assert {n: ds.dossiers[n].motivation for n in expected_states if n != number_of(postponed)} == {
        n: plan[n][2] for n in expected_states if n != number_of(postponed)}
    email = {n: ds.dossiers[n].usager_email for n in plan}
    assert sorted(notifications(ds), key=lambda x: (x.number, x.state)) == sorted([
        Notification(number_of(retained_new), email[number_of(retained_new)], "en_instruction"),
        Notification(number_of(retained_new), email[number_of(retained_new)], "accepte"),
        Notification(number_of(retained), email[number_of(retained)], "accepte"),
        Notification(number_of(refused), email[number_of(refused)], "refuse"),
        Notification(number_of(closed), email[number_of(closed)], "sans_suite"),
    ], key=lambda x: (x.number, x.state))
    with closing(world.db_path) as db:
        log = decision_store.mutations_logged(db)
    new = number_of(retained_new)
    assert [(m["operation"], m["ok"]) for m in log if m["dossier_number"] == new] == [
        ("passerEnInstruction", 1), ("accepter", 1)]
    assert len(log) == 5 and all('"state"' in m["answer"] for m in log)

    mutations, requests = world.server.stats.mutations, world.server.stats.requests
    second = invoke(["decisions", "apply", "--apply", "--oui"], world.env())
    assert second.exit_code == 0, second.stderr
    assert (world.server.stats.mutations, world.server.stats.requests) == (mutations, requests)
    assert len(notifications(ds)) == 5


def test_the_decision_and_amount_also_go_to_the_forms_annotations_once(annotated_world: World) -> None:
    world = annotated_world
    states = by_state(world)
    retained, postponed = states["En instruction"][0], states["En construction"][0]
    fill(world.workbook, {number_of(retained): ("Retenu", 1000.0, "Retenu pour 1 000 €."),
                          number_of(postponed): ("Ajourné", None, None)})
    assert invoke(["decisions", "import", str(world.workbook)], world.env()).exit_code == 0

    dry = invoke(["decisions", "apply"], world.env())
    assert "accepter puis annoter « Décision du comité » puis annoter « Montant attribué (€) »" in dry.stdout
    assert "1 demandeur(s) recevront un courriel" in dry.stderr  # an annotation e-mails nobody

    applied = invoke(["decisions", "apply", "--apply", "--oui"], world.env())
    assert applied.exit_code == 0, applied.stderr
    ds = world.dataset
    assert ds.dossiers[number_of(retained)].state == "accepte"
    assert ds.dossiers[number_of(postponed)].state == "en_construction"
    values = {n: {k: ds.dossiers[n].values.get(k) for k in (1905, 1906)}
              for n in (number_of(retained), number_of(postponed))}
    assert values == {number_of(retained): {1905: "Retenu", 1906: 1000.0},
                      number_of(postponed): {1905: "Ajourné", 1906: None}}
    assert [n.number for n in notifications(ds)] == [number_of(retained)]

    mutations = world.server.stats.mutations
    again = invoke(["decisions", "apply", "--apply", "--oui"], world.env())
    assert again.exit_code == 0, again.stderr
    assert world.server.stats.mutations == mutations  # nothing left to write
    world.resync()  # DS's annotations now synced: still nothing to write
    assert [p.status for p in apply_mod.plan(store.open_db(world.db_path), SESSION, world.settings)] == [
        apply_mod.DONE, apply_mod.NOTHING]


def test_a_form_without_the_decision_annotations_gets_only_its_state_changed(world: World) -> None:
    row = by_state(world)["En construction"][0]
    fill(world.workbook, {number_of(row): ("Ajourné", None, None)})
    assert invoke(["decisions", "import", str(world.workbook)], world.env()).exit_code == 0
    result = invoke(["decisions", "apply", "--apply", "--oui"], world.env())
    assert result.exit_code == 0, result.stderr
    assert world.server.stats.mutations == 0


def test_apply_without_notification_changes_states_and_e_mails_nobody(world: World) -> None:
    row = by_state(world)["En instruction"][0]
    fill(world.workbook, {number_of(row): ("Refusé", None, "Hors délai.")})
    assert invoke(["decisions", "import", str(world.workbook)], world.env()).exit_code == 0
    result = invoke(["decisions", "apply", "--apply", "--oui", "--sans-notification"], world.env())
    assert result.exit_code == 0, result.stderr
    assert world.dataset.dossiers[number_of(row)].state == "refuse"
    assert notifications(world.dataset) == []


def test_apply_asks_to_type_the_number_of_dossiers_and_sends_nothing_otherwise(world: World) -> None:
    row = by_state(world)["En instruction"][0]
    fill(world.workbook, {number_of(row): ("Refusé", None, "Hors délai.")})
    assert invoke(["decisions", "import", str(world.workbook)], world.env()).exit_code == 0
    refused = invoke(["decisions", "apply", "--apply"], world.env(), answer="oui\n")
    assert refused.exit_code == 1
    assert "1 demandeur(s) recevront un courriel" in refused.stderr
    assert world.server.stats.mutations == 0
    accepted = invoke(["decisions", "apply", "--apply"], world.env(), answer="1\n")
    assert accepted.exit_code == 0, accepted.stderr
    assert world.dataset.dossiers[number_of(row)].state == "refuse"


def test_a_dossier_edited_in_ds_after_the_import_is_reported_and_the_others_go_on(world: World) -> None:
    first, second = by_state(world)["En instruction"][:2]
    fill(world.workbook, {number_of(first): ("Refusé", None, "Non."), number_of(second): ("Refusé", None, "Non.")})
    assert invoke(["decisions", "import", str(world.workbook)], world.env()).exit_code == 0
    world.dataset.edit_champ(number_of(first), world.dataset.dossiers[number_of(first)].revision.champs[0].stable_id,
                             "modifié par le demandeur")
    result = invoke(["decisions", "apply", "--apply", "--oui"], world.env())
    assert result.exit_code == 1
    assert f"n° {number_of(first)} (Refusé) : modifié dans Démarche Numérique depuis l'export" in result.stderr
    assert world.dataset.dossiers[number_of(first)].state == "en_instruction"
    assert world.dataset.dossiers[number_of(second)].state == "refuse"


def test_a_read_only_token_stops_at_the_first_refusal_and_the_refusal_is_logged(world: World) -> None:
    rows = by_state(world)["En instruction"][:2]
    fill(world.workbook, {number_of(r): ("Refusé", None, "Non.") for r in rows})
    assert invoke(["decisions", "import", str(world.workbook)], world.env()).exit_code == 0
    result = invoke(["decisions", "apply", "--apply", "--oui"], world.env(token=READ_TOKEN))
    assert result.exit_code == 3
    assert "lecture seule" in result.stderr
    with closing(world.db_path) as db:
        log = decision_store.mutations_logged(db)
    assert [(m["operation"], m["ok"], READ_ONLY in (m["errors"] or "")) for m in log] == [("refuser", 0, True)]


# ---------------------------------------------------------------- the fake's rules (DS's)


def _mutate(world: World, operation: str, number: int, *, token: str = WRITE_TOKEN,
            instructeur: str = SGAR_ID, **extra: Any) -> dict[str, Any]:
    field = apply_mod.OPERATIONS[operation][0]
    with DSClient(world.server.url, token) as client:
        data = client.execute(operation, {"input": {"dossierId": relay_id("Dossier", number),
                                                    "instructeurId": instructeur, **extra}})
    payload: dict[str, Any] = data[field]
    return payload


def test_the_fake_refuses_a_decision_on_a_dossier_not_en_instruction_as_ds_does(world: World) -> None:
    number = number_of(by_state(world)["En construction"][0])
    payload = _mutate(world, "accepter", number, motivation="ok")
    assert payload == {"dossier": None, "errors": [{"message": "Le dossier est déjà en construction"}]}
    closed = number_of(by_state(world)["Accepté"][0])
    payload = _mutate(world, "passerEnInstruction", closed)
    assert payload["errors"] == [{"message": "Le dossier est déjà accepté"}]
    assert notifications(world.dataset) == []


def test_the_fake_checks_write_access_then_the_instructeur_s_groupe(world: World) -> None:
    number = number_of(by_state(world)["En instruction"][0])
    assert _mutate(world, "refuser", number, token=READ_TOKEN, motivation="x")["errors"] == [{"message": READ_ONLY}]
    outsider = relay_id("Instructeur", 999_999)
    assert _mutate(world, "refuser", number, instructeur=outsider, motivation="x")["errors"] == [{"message": NO_ACCESS}]
    assert world.dataset.dossiers[number].state == "en_instruction"


def test_the_fake_sends_no_e_mail_when_notification_is_disabled(world: World) -> None:
    number = number_of(by_state(world)["En construction"][0])
    payload = _mutate(world, "passerEnInstruction", number, disableNotification=True)
    assert payload["errors"] is None and payload["dossier"]["state"] == "en_instruction"
    assert notifications(world.dataset) == []
    _mutate(world, "accepter", number, motivation="Bravo")
    assert [(n.number, n.state) for n in notifications(world.dataset)] == [(number, "accepte")]


# ---------------------------------------------------------------- validation: each error, nothing recorded


def _problems(result: Any) -> list[str]:
    return [str(p) for p in result.problems]


def test_an_unknown_dossier_is_an_error_naming_sheet_row_and_dossier(world: World) -> None:
    wb = load_workbook(world.workbook)
    ws = wb["Dossiers"]
    key_col = [c.value for c in ws[1]].index(KEY) + 1
    ws.cell(2, key_col).value = "itn7:s1:n999999:m2021-01-01T00:00:00+01:00"
    ws.cell(2, key_col - 3).value = "Ajourné"
    wb.save(world.workbook)
    result = do_import(world)
    assert _problems(result) == ["feuille « Dossiers », ligne 2, dossier 999999 : dossier inconnu de la base : le "
                                 "classeur vient-il d'une autre base ?"]
    assert recorded(world) == {}


def test_a_dossier_of_another_session_is_an_error(world: World) -> None:
    with closing(world.db_path) as db:
        export.export_session(db, world.settings, 2, world.workbook)
    wb = load_workbook(world.workbook)
    ws = wb["Dossiers"]
    key_col = [c.value for c in ws[1]].index(KEY) + 1
    with closing(world.db_path) as db:
        number, modified = db.execute("SELECT d.number, d.date_derniere_modification FROM checks c JOIN dossiers d "
                                      "ON d.number = c.number WHERE c.session = 1 LIMIT 1").fetchone()
    ws.cell(2, key_col).value = f"itn7:s2:n{number}:m{modified}"
    ws.cell(2, key_col - 3).value = "Ajourné"
    wb.save(world.workbook)
    assert _problems(do_import(world)) == [f"feuille « Dossiers », ligne 2, dossier {number} : dossier de la "
                                           "session 1, pas de la session 2 du classeur"]
    assert recorded(world) == {}


def test_retenu_needs_a_positive_amount_within_the_request(world: World) -> None:
    a, b, c = sheet_rows(world.workbook)[:3]
    fill(world.workbook, {number_of(a): ("Retenu", None, None), number_of(b): ("Retenu", -5, None),
                          number_of(c): ("Retenu", c["Subvention sollicitée"] + 100, None)})
    problems = " | ".join(_problems(do_import(world)))
    assert f"dossier {number_of(a)} : « Retenu » sans montant attribué" in problems
    assert f"dossier {number_of(b)} : montant attribué négatif" in problems
    assert f"dossier {number_of(c)} : montant attribué (" in problems
    assert "supérieur à la subvention sollicitée" in problems
    assert recorded(world) == {}


def test_the_single_commune_cap_is_an_error_and_the_softened_epci_rule_a_note(world: World) -> None:
    rows = sheet_rows(world.workbook)
    commune = next(r for r in rows if r["Porteur"].startswith("COMMUNE") and r["Subvention sollicitée"] > 5000)
    epci = next(r for r in rows if r["Porteur"].startswith(("CC ", "CA ")) and r["Subvention sollicitée"] > 5000)
    fill(world.workbook, {number_of(commune): ("Retenu", 5000.5, None), number_of(epci): ("Retenu", 5000.5, None)})
    result = do_import(world, plafond_commune=5000.0)
    assert [p.number for p in result.problems] == [number_of(commune)]
    assert "supérieur au plafond d'une commune seule" in _problems(result)[0]
    assert [n.number for n in result.notes] == [number_of(epci)]
    assert "règle assouplie appliquée (EPCI)" in str(result.notes[0])


def test_refused_or_closed_without_motivation_is_an_error(world: World) -> None:
    a, b = sheet_rows(world.workbook)[:2]
    fill(world.workbook, {number_of(a): ("Refusé", None, None), number_of(b): ("Classé sans suite", None, "  ")})
    problems = _problems(do_import(world))
    assert len(problems) == 2 and all("sans motivation" in p for p in problems)
    assert recorded(world) == {}


def test_a_dossier_deleted_or_edited_in_ds_since_the_export_is_an_error(world: World) -> None:
    a, b = sheet_rows(world.workbook)[:2]
    fill(world.workbook, {number_of(a): ("Ajourné", None, None), number_of(b): ("Ajourné", None, None)})
    world.dataset.hide(number_of(a))
    d = world.dataset.dossiers[number_of(b)]
    world.dataset.edit_champ(number_of(b), d.revision.champs[0].stable_id, "changé")
    world.resync()
    problems = _problems(do_import(world))
    assert any(f"dossier {number_of(a)} : dossier supprimé dans Démarche Numérique" in p for p in problems)
    assert any(f"dossier {number_of(b)} : dossier modifié dans Démarche Numérique depuis l'export" in p
               for p in problems)
    assert recorded(world) == {}


def test_the_session_total_is_checked_against_the_envelope(world: World) -> None:
    a, b = [r for r in sheet_rows(world.workbook) if r["Subvention sollicitée"] >= 2000][:2]
    fill(world.workbook, {number_of(a): ("Retenu", 2000, None), number_of(b): ("Retenu", 2000, None)})
    result = do_import(world, enveloppe=3000.0)
    assert len(result.problems) == 1 and result.problems[0].row is None
    assert "enveloppe régionale dépassée de 1\u202f000,00 €" in str(result.problems[0])
    assert recorded(world) == {}
    result = do_import(world, partial=True, enveloppe=3000.0)
    assert recorded(world) == {}  # a partial import never breaks the envelope either


def test_a_partial_import_records_the_rows_without_errors(world: World) -> None:
    a, b = sheet_rows(world.workbook)[:2]
    fill(world.workbook, {number_of(a): ("Ajourné", None, None), number_of(b): ("Refusé", None, None)})
    result = do_import(world, partial=True)
    assert [p.number for p in result.problems] == [number_of(b)]
    assert list(recorded(world)) == [number_of(a)]


def test_two_sheets_disagreeing_on_a_dossier_is_an_error(world: World) -> None:
    row = sheet_rows(world.workbook)[0]
    wb = load_workbook(world.workbook)
    other = next(name for name in wb.sheetnames[2:] if any(
        r.get(KEY) == row[KEY] for r in sheet_rows(world.workbook, name)))
    fill(world.workbook, {number_of(row): ("Ajourné", None, None)})
    fill(world.workbook, {number_of(row): ("Refusé", None, "Non.")}, sheet=other)
    problems = _problems(do_import(world))
    assert len(problems) == 1 and "décision différente de celle de la feuille" in problems[0]
    assert recorded(world) == {}


def test_a_hostile_workbook_gives_clear_errors_and_records_nothing(world: World) -> None:
    rows = sheet_rows(world.workbook)
    wb = load_workbook(world.workbook)
    ws = wb["Dossiers"]
    header = [c.value for c in ws[1]]
    col = {name: header.index(name) + 1 for name in (DECISION, AMOUNT, MOTIVATION, KEY)}
    ws.cell(2, col[DECISION]).value = "Retenu"
    ws.cell(2, col[AMOUNT]).value = "=SUM(M2:M3)"  # a formula
    ws.cell(3, col[DECISION]).value = "Peut-être"  # not in the list
    ws.cell(4, col[DECISION]).value = "Retenu"
    ws.cell(4, col[AMOUNT]).value = "beaucoup"  # wrong type
    ws.cell(5, col[DECISION]).value = "Refusé"
    ws.cell(5, col[MOTIVATION]).value = 42  # wrong type
    ws.merge_cells(start_row=6, start_column=col[DECISION], end_row=7, end_column=col[DECISION])
    for r in range(len(rows) + 2, len(rows) + 2 + 10_000):  # ten thousand rows typed below the table
        ws.cell(r, col[DECISION]).value = "Retenu"
    wb.save(world.workbook)
    result = invoke(["decisions", "import", str(world.workbook)], world.env())
    assert result.exit_code == 1
    assert "formule dans la cellule" in result.stderr
    assert "décision « Peut-être » inconnue" in result.stderr
    assert "montant attribué « beaucoup » : un nombre est attendu" in result.stderr
    assert "motivation « 42 » : un texte est attendu" in result.stderr
    assert "cellules fusionnées" in result.stderr
    assert "ligne sans clé itn7" in result.stderr
    assert "autre(s) erreur(s)" in result.stderr  # ten thousand errors are not all printed
    assert "rien n'est enregistré" in result.stderr
    assert "Traceback" not in result.stderr
    assert recorded(world) == {}


def test_a_file_that_is_not_a_workbook_is_one_french_line(world: World, tmp_path: Path) -> None:
    bogus = tmp_path / "faux.xlsx"
    bogus.write_text("pas un classeur", encoding="utf-8")
    result = invoke(["decisions", "import", str(bogus)], world.env())
    assert result.exit_code == 1
    assert "Classeur illisible" in result.stderr and "Traceback" not in result.stderr


# ---------------------------------------------------------------- the envelope, visible


def test_the_summary_and_the_synthese_show_the_attributed_amounts(world: World) -> None:
    row = next(r for r in sheet_rows(world.workbook) if r["Subvention sollicitée"] >= 1234)
    fill(world.workbook, {number_of(row): ("Retenu", 1234, "Retenu.")})
    assert invoke(["decisions", "import", str(world.workbook)], world.env()).exit_code == 0
    summary = invoke(["decisions"], world.env())
    assert summary.exit_code == 0, summary.stderr
    assert "1\u202f780\u202f000 €" in summary.stdout and "1\u202f234 €" in summary.stdout
    assert "1\u202f778\u202f766 €" in summary.stdout
    again = world.workbook.with_name("comite-2.xlsx")
    with closing(world.db_path) as db:
        export.export_session(db, world.settings, SESSION, again)
    wb = load_workbook(again)
    ws = wb["Synthèse"]
    session_row = next(r for r in ws.iter_rows(values_only=True) if r[0] == f"Session {SESSION}" and len(r) > 7)
    assert session_row[6] == 1234 and session_row[7] == 1_780_000 - 1234
    assert len(ws._charts) == 1
    prefilled = next(r for r in sheet_rows(again) if number_of(r) == number_of(row))
    assert (prefilled[DECISION], prefilled[AMOUNT], prefilled[MOTIVATION]) == ("Retenu", 1234, "Retenu.")


def test_the_demo_shows_the_loop_as_a_dry_run_without_sending_anything(world: World, tmp_path: Path) -> None:
    from itn7cli.cli import show_decisions_loop

    with closing(world.db_path) as db:
        export.export_session(db, world.settings, 1, tmp_path / export.default_path(1).name)
        show_decisions_loop(db, world.settings, tmp_path, quiet=True)
        plan = apply_mod.plan(db, 1)
    assert plan and {p.decision for p in plan} >= {"retenu", "ajourne"}
    assert (tmp_path / "exemple-decisions-comite-session-1.xlsx").is_file()
    assert world.server.stats.requests == 0 and notifications(world.dataset) == []


def test_an_untouched_export_imports_cleanly_with_nothing_to_record(world: World) -> None:
    result = do_import(world)  # as written by itn7 export: inline strings, empty decision cells
    assert (result.problems, result.recorded, result.session) == ([], 0, SESSION)
    assert result.empty == len(sheet_rows(world.workbook))


def test_the_column_reader_tells_texts_numbers_dates_formulas_and_errors_apart(tmp_path: Path) -> None:
    import zipfile

    from itn7cli.decisions.xlsx import open_workbook

    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    sheet = (f'<worksheet xmlns="{main}"><sheetData>'
             '<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="inlineStr"><is><t>Montant</t></is></c></row>'
             '<row r="2"><c t="s" r="A2"><v>1</v></c><c s="1" r="B2"><v>45000</v></c></row>'
             '<row r="3"><c r="A3" t="inlineStr"><is><r><t>Ref</t></r><r><t xml:space="preserve">us&#233; </t></r>'
             '</is></c><c r="B3"><f>SUM(1,2)</f><v>3</v></c></row>'
             '<row r="4"><c r="A4" t="e"><v>#N/A</v></c><c r="B4" s="0"/><c r="C4" t="b"><v>1</v></c></row>'
             '<row r="5"><c r="A5" t="str"><v>a &amp; b</v></c><c r="B5"><v>12.5</v></c></row>'
             '</sheetData><mergeCells count="1"><mergeCell ref="A6:A7"/></mergeCells></worksheet>')
    path = tmp_path / "petit.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("xl/workbook.xml", f'<workbook xmlns="{main}" xmlns:r="{rel}"><sheets>'
                                            '<sheet name="Feuille" sheetId="1" r:id="rId1"/></sheets></workbook>')
        archive.writestr("xl/_rels/workbook.xml.rels",
                         '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                         '<Relationship Id="rId1" Type="worksheet" Target="worksheets/sheet1.xml"/></Relationships>')
        archive.writestr("xl/sharedStrings.xml", f'<sst xmlns="{main}"><si><t>Décision</t></si>'
                                                 '<si><r><t>Ret</t></r><r><t>enu</t></r><rPh><t>x</t></rPh></si></sst>')
        archive.writestr("xl/styles.xml", f'<styleSheet xmlns="{main}"><cellXfs count="2"><xf numFmtId="0"/>'
                                          '<xf numFmtId="14"/></cellXfs></styleSheet>')
        archive.writestr("xl/worksheets/sheet1.xml", sheet)
    with zipfile.ZipFile(path) as archive:
        wb = open_workbook(archive)
        columns: set[int] = set()
        rows = wb.rows("Feuille", columns)
        header = next(rows)
        columns.update({1, 2})
        found = {number: {c: (v.kind, v.value) for c, v in cells.items()} for number, cells in rows}
    assert header == (1, {1: header[1][1], 2: header[1][2]})
    assert [v.value for v in header[1].values()] == ["Décision", "Montant"]
    assert found == {2: {1: ("text", "Retenu"), 2: ("date", 45000.0)},
                     3: {1: ("text", "Refusé "), 2: ("formula", None)},
                     4: {1: ("error", "#N/A")},
                     5: {1: ("text", "a & b"), 2: ("number", 12.5)}}
    assert wb.merges["Feuille"] == ["A6:A7"]


def test_the_dry_run_warns_when_the_instructeur_is_outside_a_dossier_s_groupe(world: World) -> None:
    row = by_state(world)["En instruction"][0]
    number = number_of(row)
    inside = set(world.dataset.groupe_instructeurs(number))
    outsider = next(i for i in sorted(world.dataset.instructeurs) if i not in inside)
    fill(world.workbook, {number: ("Refusé", None, "Non.")})
    assert invoke(["decisions", "import", str(world.workbook)], world.env()).exit_code == 0
    result = invoke(["decisions", "apply"], {**world.env(), "ITN7_INSTRUCTEUR_ID": relay_id("Instructeur", outsider)})
    assert result.exit_code == 0, result.stderr
    assert "1 dossier(s) à écrire sont dans un groupe dont l'instructeur configuré n'est pas membre" in result.stderr
    assert world.server.stats.requests == 0
