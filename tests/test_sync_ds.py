"""The sync against a fake DS that answers as DS's code does: bad data, persistent timeouts, the real 429,
late commits, company data completed later, values beyond SQLite's types. Over real HTTP."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from itn7cli import store
from itn7cli.cli import app
from itn7cli.config import Settings
from itn7cli.fakeds import Dataset, FakeDS, TokenSpec
from itn7cli.store import unreadable

from .syncutil import TOKEN, content, early_in_a_window, env_for, run_sync

COUNTS = {"general": 150, "labo": 30}
PROJECT = "Q2hhbXAtMTAxMg=="  # Intitulé du projet
POPULATION = "Population de la collectivité (population municipale INSEE)"


@pytest.fixture
def dataset() -> Dataset:
    return Dataset.generate(seed=5, counts=COUNTS)


def live_numbers(path: Path) -> list[int]:
    db = store.open_db(path)
    try:
        return [r[0] for r in db.execute(f"SELECT d.number FROM dossiers d WHERE {store.LIVE} ORDER BY d.number")]
    finally:
        db.close()


def test_a_dossier_ds_cannot_serialise_is_named_the_rest_stored_then_read_once_repaired(
        server: FakeDS, dataset: Dataset, tmp_path: Path) -> None:
    db_path = tmp_path / "a.db"
    visible = dataset.visible_numbers("general")
    bad = visible[40]
    modified = dataset.dossier(bad).updated_at
    dataset.set_bad_data(bad)
    result = CliRunner().invoke(app, ["sync"], env=env_for(server, db_path, dataset.numbers))
    assert result.exit_code == 1, result.stderr
    assert f"Dossier n° {bad} illisible" in result.stderr and "Traceback" not in result.stderr
    everyone = sorted(visible + dataset.visible_numbers("labo"))
    assert live_numbers(db_path) == [n for n in everyone if n != bad]
    db = store.open_db(db_path)
    stub = db.execute("SELECT demarche_number, state, raw, deletion_state FROM dossiers WHERE number = ?",
                      [bad]).fetchone()
    assert stub == (dataset.numbers["general"], dataset.dossier(bad).state, None, None)
    [record] = unreadable.listed(db)
    assert record["number"] == bad and "Cannot return null" in record["message"]

    server.stats.reset()
    again = CliRunner().invoke(app, ["sync"], env=env_for(server, db_path, dataset.numbers))
    assert again.exit_code == 1 and f"Dossier n° {bad} illisible" in again.stderr
    assert server.stats.operations["rereadDossier"] == 2  # the unreadable one and the incomplete company
    assert unreadable.listed(db)[0]["attempts"] == 2

    dataset.set_bad_data(bad, False)  # DS repairs it without touching updated_at
    assert dataset.dossier(bad).updated_at == modified
    repaired = CliRunner().invoke(app, ["sync"], env=env_for(server, db_path, dataset.numbers))
    assert repaired.exit_code == 0, repaired.stderr
    assert unreadable.listed(db) == []
    run_sync(server, tmp_path / "fresh.db", dataset.numbers)
    assert content(db_path) == content(tmp_path / "fresh.db")


def test_a_dossier_whose_reads_keep_timing_out_is_isolated_named_and_read_once_it_answers(
        server: FakeDS, dataset: Dataset, tmp_path: Path) -> None:
    slow = dataset.visible_numbers("general")[70]
    server.faults.slow(slow)
    summaries = run_sync(server, tmp_path / "a.db", dataset.numbers)
    assert summaries[0].illisibles == [slow] and summaries[1].illisibles == []
    assert server.stats.operations["getDossierStubs"] >= 1
    everyone = sorted(dataset.visible_numbers("general") + dataset.visible_numbers("labo"))
    assert live_numbers(tmp_path / "a.db") == [n for n in everyone if n != slow]
    server.faults.slow(slow, on=False)
    summaries = run_sync(server, tmp_path / "a.db", dataset.numbers)
    assert summaries[0].illisibles == [] and summaries[0].nouveaux == 1
    run_sync(server, tmp_path / "fresh.db", dataset.numbers)
    assert content(tmp_path / "a.db") == content(tmp_path / "fresh.db")


def spend_window(server: FakeDS, token: str) -> None:
    """Another client of the same token uses up a window (until DS refuses it), early enough in the window
    that it is still spent when the sync starts."""
    early_in_a_window(server.rate_window, server.rate_window / 3)
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as other:
        while other.post(server.url, json={"query": "{ __typename }"}).status_code != 429:
            pass


def test_a_sync_meeting_a_window_spent_by_another_client_waits_for_its_end_and_completes(
        dataset: Dataset, tmp_path: Path) -> None:
    with FakeDS(dataset, tokens={TOKEN: TokenSpec()}, rate_limit=40, rate_window=6) as server:
        run_sync(server, tmp_path / "reference.db", dataset.numbers)
        spend_window(server, TOKEN)
        server.stats.reset()
        run_sync(server, tmp_path / "a.db", dataset.numbers)
        refused = server.stats.throttled
    # At most the requests in flight when the window was found spent (the streams' slots and the run's first
    # request), not one per retry.
    assert 1 <= refused <= Settings().concurrency + 1
    assert content(tmp_path / "a.db") == content(tmp_path / "reference.db")


def test_requests_of_one_token_never_pass_400_in_a_calendar_minute(
        server: FakeDS, dataset: Dataset, tmp_path: Path) -> None:
    run_sync(server, tmp_path / "a.db", dataset.numbers)
    minutes = server.stats.per_minute(TOKEN)
    assert minutes and max(minutes.values()) <= 400


def test_a_late_commit_is_caught_by_the_next_run_with_one_page_per_demarche(
        server: FakeDS, dataset: Dataset, tmp_path: Path) -> None:
    db_path = tmp_path / "a.db"
    run_sync(server, db_path, dataset.numbers)
    late, early = dataset.visible_numbers("general")[10:12]
    dataset.edit_champ_uncommitted(late, PROJECT, "Validé après coup")
    dataset.edit_champ(early, PROJECT, "Validé tout de suite")
    run_sync(server, db_path, dataset.numbers)  # its stream passes `early`, `late` not yet committed
    dataset.commit(late)  # visible now, with an updated_at behind `early`'s
    server.stats.reset()
    summaries = run_sync(server, db_path, dataset.numbers)
    assert server.stats.operations["getChanges"] == 1 and "getDossiers" not in server.stats.operations
    assert summaries[0].modifies == 1
    run_sync(server, tmp_path / "fresh.db", dataset.numbers)
    assert content(db_path) == content(tmp_path / "fresh.db")


def test_company_data_ds_completes_without_touching_the_dossier_is_picked_up(
        server: FakeDS, dataset: Dataset, tmp_path: Path) -> None:
    db_path = tmp_path / "a.db"
    run_sync(server, db_path, dataset.numbers)
    db = store.open_db(db_path)
    [incomplete] = [r[0] for r in db.execute(
        "SELECT number FROM dossiers WHERE demandeur_type = 'PersonneMoraleIncomplete'")]
    modified = dataset.dossier(incomplete).updated_at
    dataset.complete_company(incomplete)
    assert dataset.dossier(incomplete).updated_at == modified
    run_sync(server, db_path, dataset.numbers)
    row = db.execute("SELECT demandeur_type, raison_sociale FROM dossiers WHERE number = ?", [incomplete]).fetchone()
    assert row == ("PersonneMorale", "COMMUNE DE NICE")
    server.stats.reset()
    run_sync(server, db_path, dataset.numbers)
    assert server.stats.operations["rereadDossier"] == 0  # complete now: no more re-reads


def test_values_beyond_sqlite_types_are_kept_as_text_named_once_and_the_next_sync_moves_on(
        server: FakeDS, dataset: Dataset, tmp_path: Path) -> None:
    db_path = tmp_path / "a.db"
    big, odd = dataset.visible_numbers("general")[20:22]
    dataset.edit_champ(big, POPULATION, 12345678901234567890)  # 20 digits: past SQLite's 64-bit INTEGER
    dataset.add_raw_champ(odd, {"_kind": "Date", "id": "Q2hhbXAtOTk5Nw==", "champDescriptorId": "Q2hhbXAtOTk5Nw==",
                                "label": "Date de délibération", "date": "2023-02-30", "stringValue": "30 février 2023",
                                "updatedAt": "2025-01-01T00:00:00+01:00", "prefilled": False})
    env = {**env_for(server, db_path, dataset.numbers), "COLUMNS": "300"}
    result = CliRunner().invoke(app, ["sync"], env=env)
    assert result.exit_code == 0, result.stderr
    assert (f"2 valeurs hors limites conservées en texte : dossier {big}, champ {POPULATION} ; "
            f"dossier {odd}, champ Date de délibération") in result.stderr
    db = store.open_db(db_path)
    assert db.execute("SELECT value_text, value_integer, string_value FROM champs WHERE dossier_number = ? "
                      "AND label = ?", [big, POPULATION]).fetchone() == (
        "12345678901234567890", None, "12345678901234567890")
    assert db.execute("SELECT value_text, value_date FROM champs WHERE dossier_number = ? AND label = ?",
                      [odd, "Date de délibération"]).fetchone() == ("2023-02-30", None)
    # The rest of the page, and of those dossiers, is stored as usual.
    assert live_numbers(db_path) == sorted(dataset.visible_numbers("general") + dataset.visible_numbers("labo"))
    assert db.execute("SELECT count(*) FROM champs WHERE dossier_number = ? AND typeof(value_integer) = 'integer'",
                      [odd]).fetchone()[0] >= 1
    again = CliRunner().invoke(app, ["sync"], env=env)
    assert again.exit_code == 0 and "hors limites" not in again.stderr  # reported once, when stored
    assert "0 nouveau(x), 0 modifié(s)" in again.stderr


def test_a_champ_type_the_query_does_not_name_is_stored_with_its_type_and_string_value_only(
        server: FakeDS, dataset: Dataset, tmp_path: Path) -> None:
    number = dataset.visible_numbers("labo")[0]
    dataset.add_raw_champ(number, {"_kind": "RNA", "id": "Q2hhbXAtOTk5OA==", "champDescriptorId": "Q2hhbXAtOTk5OA==",
                                   "label": "Numéro RNA", "stringValue": "W751234567",
                                   "updatedAt": "2025-01-01T00:00:00+01:00", "prefilled": False})
    run_sync(server, tmp_path / "a.db", dataset.numbers)
    db = store.open_db(tmp_path / "a.db")
    row = db.execute("SELECT type, string_value, value_text, value_number, value_integer, value_boolean, value_date, "
                     "value_json FROM champs WHERE dossier_number = ? AND label = 'Numéro RNA'", [number]).fetchone()
    assert row == ("RNAChamp", "W751234567", None, None, None, None, None, None)


def test_a_link_to_a_dossier_the_token_cannot_see_does_not_stop_the_sync(
        dataset: Dataset, tmp_path: Path) -> None:
    general, labo = dataset.visible_numbers("general")[0], dataset.visible_numbers("labo")[0]
    dataset.add_raw_champ(general, {"_kind": "DossierLink", "id": "Q2hhbXAtOTk5OQ==",
                                    "champDescriptorId": "Q2hhbXAtOTk5OQ==", "label": "Dossier lié",
                                    "stringValue": str(labo), "linked": labo,
                                    "updatedAt": "2025-01-01T00:00:00+01:00", "prefilled": False})
    only_general = {"general": dataset.numbers["general"]}
    with FakeDS(dataset, tokens={TOKEN: TokenSpec(scope={dataset.numbers["general"]})}) as server:
        summaries = run_sync(server, tmp_path / "a.db", only_general)
    assert summaries[0].nouveaux == len(dataset.visible_numbers("general"))
    db = store.open_db(tmp_path / "a.db")
    assert db.execute("SELECT type, string_value FROM champs WHERE dossier_number = ? AND label = 'Dossier lié'",
                      [general]).fetchone() == ("DossierLinkChamp", str(labo))


def test_the_sync_lock_file_is_readable_by_its_owner_only(server: FakeDS, dataset: Dataset, tmp_path: Path) -> None:
    lock = tmp_path / "a.db.lock"
    original = os.umask(0o022)  # a usual umask would leave it readable by everyone
    try:
        run_sync(server, tmp_path / "a.db", dataset.numbers)
    finally:
        os.umask(original)
    assert lock.exists() and stat.S_IMODE(lock.stat().st_mode) == 0o600
