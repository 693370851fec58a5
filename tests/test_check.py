"""The check run on a stored database: results round-trip, re-check logic, the CLI's JSON output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
from typer.testing import CliRunner

from itn7cli import check, store
from itn7cli.cli import app
from itn7cli.config import Settings

from .factory import dossier, find

SETTINGS = Settings()


def demarche(number: int, key: str) -> dict[str, Any]:
    """A démarche whose single revision describes the champs of the factory's dossiers."""
    descriptors = [{"id": c["champDescriptorId"], "__typename": c["__typename"] + "Descriptor", "label": c["label"],
                    "required": True, "description": None} for c in dossier(key=key)["champs"]]
    return {"number": number, "id": f"D{number}", "title": f"ITN7 {key}", "state": "publiee",
            "activeRevision": {"id": f"R{number}"},
            "revisions": [{"id": f"R{number}", "champDescriptors": descriptors, "annotationDescriptors": []}],
            "groupeInstructeurs": []}


def save(db: sqlite_utils.Database, *nodes: dict[str, Any], number: int = 100) -> None:
    with db.atomic():
        store.save_dossiers(db, number, nodes)


@pytest.fixture
def db(tmp_path: Path) -> sqlite_utils.Database:
    database = store.open_db(tmp_path / "itn7.db")
    store.save_demarche(database, "general", demarche(100, "general"))
    store.save_demarche(database, "labo", demarche(200, "labo"))
    save(database, dossier(1), dossier(2))
    save(database, dossier(3, key="labo"), number=200)
    return database


def other_applicant(raw: dict[str, Any], siren: str = "210400701", siret: str = "21040070100012") -> dict[str, Any]:
    raw["demandeur"]["siret"] = siret
    raw["demandeur"]["entreprise"]["siren"] = siren
    return raw


def test_results_come_back_from_the_database_as_the_json_of_issue_3(db: sqlite_utils.Database) -> None:
    save(db, other_applicant(dossier(2)))  # dossiers 1 and 3 share Aiglun, under the limit of 2
    check.run(db, SETTINGS)
    priority = check.results(db)[0]["priority"]
    assert check.results(db, demarche="general") == [
        {"demarche": "general", "number": 1, "session": 1, "status": "eligible", "findings": [], "priority": priority},
        {"demarche": "general", "number": 2, "session": 1, "status": "eligible", "findings": [],
         "priority": check.results(db)[1]["priority"]},
    ]


def test_a_second_run_checks_nothing_when_nothing_changed(db: sqlite_utils.Database) -> None:
    check.run(db, SETTINGS)
    assert check.run(db, SETTINGS).checked == 0


def test_a_changed_dossier_is_the_only_one_rechecked(db: sqlite_utils.Database) -> None:
    check.run(db, SETTINGS)
    changed = dossier(2)
    changed["dateDerniereModification"] = "2021-05-20T10:00:00+02:00"
    find(changed, "Date prévisionnelle de fin du projet")["date"] = "2023-06-30"
    save(db, changed)
    assert (check.run(db, SETTINGS).checked, [r["status"] for r in check.results(db)]) == (
        1, ["a_verifier", "a_verifier", "a_verifier"])


def test_a_configuration_change_rechecks_everything(db: sqlite_utils.Database) -> None:
    check.run(db, SETTINGS)
    assert check.run(db, Settings(limite_porteur=5)).checked == 3


def test_all_forces_a_full_recheck(db: sqlite_utils.Database) -> None:
    check.run(db, SETTINGS)
    assert check.run(db, SETTINGS, force=True).checked == 3


def test_limite_porteur_is_lifted_on_unchanged_dossiers_when_a_sibling_is_deleted(db: sqlite_utils.Database) -> None:
    check.run(db, SETTINGS)
    flagged = [r["number"] for r in check.results(db) if any(f["rule"] == "limite_porteur" for f in r["findings"])]
    with db.atomic():
        store.mark_deleted(db, 100, [{"number": 2, "dateSupression": "2021-06-01T10:00:00+02:00"}], "supprime")
    check.run(db, SETTINGS)
    assert (flagged, [(r["number"], r["status"]) for r in check.results(db)]) == (
        [1, 2, 3], [(1, "eligible"), (3, "eligible")])


def test_stale_is_true_until_checked_and_again_after_a_dossier_changes(db: sqlite_utils.Database) -> None:
    before = check.stale(db)
    check.run(db, SETTINGS)
    after = check.stale(db)
    changed = dossier(1)
    changed["dateDerniereModification"] = "2021-05-21T10:00:00+02:00"
    save(db, changed)
    assert (before, after, check.stale(db)) == (True, False, True)


def test_the_json_format_writes_only_the_array_on_stdout(db: sqlite_utils.Database) -> None:
    path = Path(str(db.conn.execute("PRAGMA database_list").fetchone()[2]))
    db.close()
    result = CliRunner().invoke(app, ["check", "--db", str(path), "--format", "json", "--status", "a_verifier"])
    rows = json.loads(result.stdout)
    assert (result.exit_code, [(r["demarche"], r["number"], r["status"]) for r in rows], rows[0]["findings"],
            result.stderr) == (
        0, [("general", 1, "a_verifier"), ("general", 2, "a_verifier"), ("labo", 3, "a_verifier")],
        [{"rule": "limite_porteur", "status": "a_verifier", "message": "Le porteur (SIREN 210400016) a déposé 3 "
          "dossiers sur les deux démarches, au-delà de la limite de 2 par porteur."}],
        "3 dossier(s) contrôlé(s) sur 3.\n")


def test_the_table_shows_a_summary_per_status_and_per_session(db: sqlite_utils.Database) -> None:
    path = Path(str(db.conn.execute("PRAGMA database_list").fetchone()[2]))
    db.close()
    result = CliRunner().invoke(app, ["check", "--db", str(path), "--quiet"])
    assert (result.exit_code, result.stdout.splitlines()[-2:], result.stderr) == (
        0, ["Par statut : éligible 0 · à vérifier 3 · inéligible 0", "Par session : session 1 3"], "")


def test_check_without_a_database_fails_with_a_french_message(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["check", "--db", str(tmp_path / "absent.db")])
    assert (result.exit_code, result.stdout, " ".join(result.stderr.split())) == (
        5, "", f"Erreur : Base {tmp_path / 'absent.db'} introuvable : lancez d'abord « itn7 sync »."
    )


def test_check_on_a_database_never_synced_fails_with_a_french_message(tmp_path: Path) -> None:
    store.open_db(tmp_path / "vide.db").close()
    result = CliRunner().invoke(app, ["check", "--db", str(tmp_path / "vide.db"), "--format", "json"])
    assert (result.exit_code, result.stdout, result.stderr) == (
        5, "", "Erreur : La base n'a jamais été synchronisée : lancez d'abord « itn7 sync ».\n")


def test_every_new_command_has_a_french_help_with_an_example() -> None:
    helps = [CliRunner().invoke(app, [*command, "--help"]).stdout
             for command in (["check"], ["champs"], ["refdata", "import"], ["refdata", "update"])]
    assert [("Exemple" in h, "Usage" in h) for h in helps] == [(True, True)] * 4
