"""The check run on a stored database: results round-trip, re-check logic, the CLI's JSON output."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
from typer.testing import CliRunner

from itn7cli import check, store, sync
from itn7cli.cli import app
from itn7cli.config import Secret, Settings
from itn7cli.errors import Itn7Error
from itn7cli.fakeds import Dataset, FakeDS, TokenSpec
from itn7cli.store import checks as checks_store
from itn7cli.store import unreadable as unreadable_store

from .factory import dossier, find

SETTINGS = Settings()


def demarche(number: int, key: str) -> dict[str, Any]:
    """A démarche whose single revision describes the champs of the factory's dossiers."""
    descriptors = [descriptor(c) for c in dossier(key=key)["champs"]]
    return {"number": number, "id": f"D{number}", "title": f"ITN7 {key}", "state": "publiee",
            "activeRevision": {"id": f"R{number}"},
            "revisions": [{"id": f"R{number}", "champDescriptors": descriptors, "annotationDescriptors": []}],
            "groupeInstructeurs": []}


def descriptor(champ: dict[str, Any]) -> dict[str, Any]:
    """The descriptor of a factory champ; a repetition block describes the champs of its first row."""
    out = {"id": champ["champDescriptorId"], "__typename": champ["__typename"] + "Descriptor", "label": champ["label"],
           "required": True, "description": None}
    if champ.get("rows"):
        out["champDescriptors"] = [descriptor(c) for c in champ["rows"][0]["champs"]]
    return out


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
    synced(database)
    return database


def synced(db: sqlite_utils.Database) -> None:
    """Records a completed sync, as `itn7 sync` does at its end."""
    db.table("sync_state").upsert({"demarche_number": 100, "last_success_at": "2021-06-01T10:00:00+00:00"},
                                  pk="demarche_number")


def other_applicant(raw: dict[str, Any], siren: str = "210400701", siret: str = "21040070100012") -> dict[str, Any]:
    raw["demandeur"]["siret"] = siret
    raw["demandeur"]["entreprise"]["siren"] = siren
    return raw


def test_results_come_back_from_the_database_as_the_json_of_issue_3(db: sqlite_utils.Database) -> None:
    inclusive = other_applicant(dossier(2))  # dossiers 1 and 3 share Aiglun, under the limit of 2
    find(inclusive, "La solution retenue est-elle un logiciel libre ?")["yesNo"] = True
    find(inclusive, "Objectifs du projet")["text"] = "Former des médiateurs à la médiation numérique."
    save(db, inclusive)
    check.run(db, SETTINGS)
    without_refdata = {"zrr": None, "taille": None, "population": None, "libre_mots": [],
                       "notes": ["données de référence absentes",
                                 "description de la situation existante absente ou très courte"]}
    assert check.results(db, demarche="general") == [
        {"demarche": "general", "number": 1, "session": 1, "status": "eligible", "findings": [],
         "priority": {**without_refdata, "libre": False, "bonus": [], "score": 0.0}},
        {"demarche": "general", "number": 2, "session": 1, "status": "eligible", "findings": [],
         "priority": {**without_refdata, "libre": True, "bonus": ["inclusion"], "score": 2.0}},
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


def test_a_forced_check_checks_every_live_dossier_and_no_deleted_one(db: sqlite_utils.Database) -> None:
    with db.atomic():
        store.mark_deleted(db, 100, [{"number": 2, "dateSupression": "2021-06-01T10:00:00+02:00"}], "supprime")
    assert (check.run(db, SETTINGS, force=True).checked, [r["number"] for r in check.results(db)]) == (2, [1, 3])


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
    path = store.store_path(db)
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
    path = store.store_path(db)
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
        5, "", "Erreur : La base n'a jamais été synchronisée jusqu'au bout : lancez d'abord « itn7 sync ».\n")


def test_every_new_command_has_a_french_help_with_an_example() -> None:
    helps = [CliRunner().invoke(app, [*command, "--help"]).stdout
             for command in (["check"], ["champs"], ["refdata", "import"], ["refdata", "update"])]
    assert [("Exemple" in h, "Usage" in h) for h in helps] == [(True, True)] * 4


def unreadable(db: sqlite_utils.Database, number: int, demarche_number: int = 100) -> None:
    """What the sync writes for a dossier the API cannot serialise: a stub row (if new) and its note."""
    with db.atomic():
        if not db.execute("SELECT count(*) FROM dossiers WHERE number = ?", [number]).fetchone()[0]:
            db.table("dossiers").insert({"number": number, "demarche_number": demarche_number,
                                         "date_depot": "2021-06-02T10:00:00+02:00"})
        unreadable_store.record(db, demarche_number, number, "invalid_null")
        db.execute("UPDATE unreadable_dossiers SET first_seen_at = '2021-06-03T08:00:00+00:00' WHERE number = ?",
                   [number])


UNREADABLE_MESSAGE = ("Dossier illisible dans l'API de Démarche Numérique depuis le 03/06/2021 : il est relu à chaque "
                      "synchronisation.")


def test_a_dossier_the_api_cannot_read_is_shown_to_be_verified_in_its_session(db: sqlite_utils.Database) -> None:
    unreadable(db, 9)
    summary = check.run(db, SETTINGS)
    [row] = [r for r in check.results(db) if r["number"] == 9]
    assert (summary.total, row) == (4, {
        "demarche": "general", "number": 9, "session": 2, "status": "a_verifier",
        "findings": [{"rule": "donnees_illisibles", "status": "a_verifier", "message": UNREADABLE_MESSAGE}],
        "priority": {"score": None, "notes": []}})


def test_a_dossier_read_before_keeps_its_verdicts_and_says_it_is_no_longer_readable(
        db: sqlite_utils.Database) -> None:
    save(db, other_applicant(dossier(2)))
    unreadable(db, 2)
    check.run(db, SETTINGS)
    [row] = [r for r in check.results(db) if r["number"] == 2]
    assert (row["status"], row["findings"]) == (
        "a_verifier", [{"rule": "donnees_illisibles", "status": "a_verifier", "message": UNREADABLE_MESSAGE}])


def test_an_unreadable_dossier_is_checked_again_at_every_run_and_leaves_once_read(db: sqlite_utils.Database) -> None:
    unreadable(db, 9)
    check.run(db, SETTINGS)
    again = check.run(db, SETTINGS).checked
    with db.atomic():
        unreadable_store.clear(db, [9])
        store.mark_deleted(db, 100, [{"number": 9, "dateSupression": "2021-06-05T10:00:00+02:00"}], "supprime")
    check.run(db, SETTINGS)
    assert (again, [r["number"] for r in check.results(db)]) == (1, [1, 2, 3])


def test_export_sees_an_unreadable_dossier_without_results_as_stale(db: sqlite_utils.Database) -> None:
    check.run(db, SETTINGS)
    before = check.stale(db)
    unreadable(db, 9)
    assert (before, check.stale(db)) == (False, True)


def test_the_table_titles_each_reason_with_its_rule(db: sqlite_utils.Database) -> None:
    path = store.store_path(db)
    db.close()
    result = CliRunner().invoke(app, ["check", "--db", str(path), "--quiet", "--demarche", "labo"],
                                env={"COLUMNS": "300"})
    assert "Dossiers par porteur : Le porteur (SIREN 210400016) a déposé 3 dossiers" in result.stdout


# The verdicts of the demo dataset (statuses, findings, priorities of its 360 dossiers), recorded before
# the check was made faster: a speed change must leave every one of them as it was. A deliberate change
# of a verdict bumps RULESET_VERSION and records the new digest here.
DEMO_VERDICTS = "cd0b446d770a8a58e833bdfc081f071974fa9e9c2067c77d2f67890fc5bf6ec2"


@pytest.fixture(scope="module")
def demo_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The database `itn7 demo` syncs (300 + 60 dossiers), synced once for the module: copy it before use."""
    dataset = Dataset.generate(seed=2021, counts={"general": 300, "labo": 60})
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    with FakeDS(dataset, tokens={"demo": TokenSpec()}) as server:
        sync.sync_settings(Settings(token=Secret("demo"), api_url=server.url, demarches=dict(dataset.numbers),
                                    db_path=path), dict(dataset.numbers))
    store.open_db(path).conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # one file to copy
    return path


def demo_copy(demo_base: Path, tmp_path: Path) -> sqlite_utils.Database:
    path = tmp_path / "demo.db"
    shutil.copyfile(demo_base, path)
    return store.open_db(path)


def verdicts_digest(db: sqlite_utils.Database) -> str:
    results = check.results(db)
    assert len(results) == 360
    return hashlib.sha256(json.dumps(results, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


def test_the_demo_dataset_gets_exactly_the_verdicts_recorded_before_the_check_was_sped_up(
        demo_base: Path, tmp_path: Path) -> None:
    db = demo_copy(demo_base, tmp_path)
    check.run(db, Settings())
    assert verdicts_digest(db) == DEMO_VERDICTS


def judged_elsewhere(monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    """Every check run from now on judges in 2 worker processes started by `method`, batches of 50, and
    fails if this process judges a dossier itself."""
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"démarrage « {method} » indisponible sur cette plateforme")
    monkeypatch.setattr(check, "START_METHOD", method)
    monkeypatch.setattr(check, "BATCH", 50)
    monkeypatch.setattr(check, "workers", lambda dossiers: 2)
    parent, batch = os.getpid(), check.Judge.batch

    def only_in_a_worker(self: check.Judge, *args: Any) -> Any:
        assert os.getpid() != parent, "judged in the parent process"
        return batch(self, *args)

    monkeypatch.setattr(check.Judge, "batch", only_in_a_worker)  # inherited by a fork, absent from a spawn


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_worker_processes_give_the_demo_dataset_exactly_its_recorded_verdicts(
        demo_base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    db = demo_copy(demo_base, tmp_path)
    judged_elsewhere(monkeypatch, method)
    assert check.run(db, Settings()).checked == 360
    assert verdicts_digest(db) == DEMO_VERDICTS


def test_a_check_interrupted_among_its_workers_keeps_its_saved_batches_and_the_next_run_does_the_rest(
        demo_base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = demo_copy(demo_base, tmp_path)
    judged_elsewhere(monkeypatch, "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    save, saved = checks_store.save_results, []

    def interrupted_at_the_third(db: sqlite_utils.Database, numbers: Any, *rows: Any) -> None:
        if len(saved) == 2:
            raise KeyboardInterrupt
        save(db, numbers, *rows)
        saved.append(len(numbers))

    monkeypatch.setattr(checks_store, "save_results", interrupted_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        check.run(db, Settings())
    kept = db.execute("SELECT count(*) FROM checks").fetchone()[0]
    monkeypatch.setattr(checks_store, "save_results", save)
    again = check.run(db, Settings()).checked
    assert (saved, kept, again) == ([50, 50], 100, 260)
    assert verdicts_digest(db) == DEMO_VERDICTS


def test_a_worker_killed_mid_check_is_a_french_error_and_the_saved_batches_stay(
        demo_base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("démarrage « fork » indisponible : le test tue un processus hérité de celui-ci")
    db = demo_copy(demo_base, tmp_path)
    judged_elsewhere(monkeypatch, "fork")
    batch = check.Judge.batch

    def killed_at_dossier_201(self: check.Judge, rows: Any, stamp: str) -> Any:
        if any(row["number"] == sorted_numbers[200] for row in rows):
            os._exit(9)  # as the kernel's out-of-memory killer would, with no goodbye
        return batch(self, rows, stamp)

    sorted_numbers = checks_store.live_numbers(db)  # the order batches are made and saved in
    monkeypatch.setattr(check.Judge, "batch", killed_at_dossier_201)
    with pytest.raises(Itn7Error, match="processus de contrôle s'est arrêté"):
        check.run(db, Settings())
    saved = [n for (n,) in db.execute("SELECT number FROM checks ORDER BY number")]
    monkeypatch.setattr(check.Judge, "batch", batch)
    again = check.run(db, Settings()).checked
    # Whole batches in order, up to one the crash lost at most; the next run checks exactly the rest.
    assert (saved == sorted_numbers[:len(saved)], len(saved) % 50, len(saved) <= 200, again) == (
        True, 0, True, 360 - len(saved))
    assert verdicts_digest(db) == DEMO_VERDICTS


def test_workers_are_not_forked_while_another_thread_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(check, "START_METHOD", "fork")
    with monkeypatch.context() as only_thread:  # other tests may have left a daemon thread behind
        only_thread.setattr(threading, "active_count", lambda: 1)
        alone = check.start_method()
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        beside_a_thread = check.start_method()
    finally:
        stop.set()
        other.join()
    assert (alone, beside_a_thread) == ("fork", "spawn")


def test_a_small_check_starts_no_process_and_a_large_one_one_per_processor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    assert (check.workers(check.PARALLEL_FROM - 1), check.workers(check.PARALLEL_FROM)) == (1, 3)


@pytest.mark.parametrize("node", [{"number": 1, "decimal": 1.5, "big": 2**70, "label": "Société « é »"},
                                  {"number": 2, "decimal": float("inf"), "integer": -float("inf")}],
                         ids=["ordinaire", "infini"])
def test_a_stored_dossier_s_json_is_read_as_json_reads_it_even_where_msgspec_refuses_it(node: dict[str, Any]) -> None:
    text = json.dumps(node, ensure_ascii=False, separators=(",", ":"))  # as the store writes it
    assert store.parse_raw(text) == store.parse_raw(text.encode()) == json.loads(text) == node


def test_the_dossiers_to_check_come_with_their_stored_json_as_utf8_bytes(db: sqlite_utils.Database) -> None:
    stored = dict(db.execute("SELECT number, raw FROM dossiers").fetchall())
    assert not stored[1].isascii()  # the test means something for accented text
    rows = checks_store.dossiers_to_check(db, [3, 1])
    assert [(r["number"], r["key"], r["raw"]) for r in rows] == [
        (1, "general", stored[1].encode()), (3, "labo", stored[3].encode())]
