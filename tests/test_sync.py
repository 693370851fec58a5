"""The sync against the fake DS server over real HTTP: full, incremental, deletions, faults, crashes."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock
from typer.testing import CliRunner

from itn7cli import store, sync
from itn7cli.api import DSClient
from itn7cli.cli import app
from itn7cli.errors import ApiError, AuthError
from itn7cli.fakeds import Dataset, FakeDS, TokenSpec
from itn7cli.store import syncstate

from .syncutil import TOKEN, content, env_for, run_sync

COUNTS = {"general": 230, "labo": 40}


@pytest.fixture
def dataset() -> Dataset:
    return Dataset.generate(seed=11, counts=COUNTS)


def test_a_first_sync_stores_every_visible_dossier_once_with_its_data(
        server: FakeDS, dataset: Dataset, tmp_path: Path) -> None:
    summaries = run_sync(server, tmp_path / "a.db", dataset.numbers)
    db = store.open_db(tmp_path / "a.db")
    for key, number in dataset.numbers.items():
        stored = [r[0] for r in db.execute("SELECT number FROM dossiers WHERE demarche_number = ? AND "
                                           "deletion_state IS NULL ORDER BY number", [number])]
        assert stored == sorted(dataset.visible_numbers(key))
    assert sum(s.nouveaux for s in summaries) == sum(COUNTS.values())
    some = dataset.visible_numbers("general")[0]
    kinds = {r[0] for r in db.execute("SELECT DISTINCT kind FROM champs WHERE dossier_number = ?", [some])}
    assert kinds == {"champ", "annotation"}
    assert db.execute("SELECT count(*) FROM champs WHERE row_id IS NOT NULL").fetchone()[0] > 0
    assert db.execute("SELECT count(*) FROM files WHERE checksum != ''").fetchone()[0] > 0
    assert db.execute("SELECT count(*) FROM traitements").fetchone()[0] >= sum(COUNTS.values())
    assert db.execute("SELECT count(*) FROM dossiers WHERE siret IS NOT NULL AND forme_juridique_code IS NOT NULL"
                      " AND city_code IS NOT NULL").fetchone()[0] > 0
    # Integer champs arrive as BigInt strings and are stored as integers.
    assert db.execute("SELECT typeof(value_integer) FROM champs WHERE type = 'IntegerNumberChamp' "
                      "AND value_integer IS NOT NULL LIMIT 1").fetchone()[0] == "integer"
    # The views a person browses work as they are.
    assert db.execute("SELECT count(*) FROM v_dossiers WHERE suppression IS NULL").fetchone()[0] == sum(
        COUNTS.values())
    assert db.execute("SELECT count(*) FROM v_champs").fetchone()[0] > 0


def test_a_second_sync_without_changes_makes_one_request_for_both_demarches_plus_one_per_incomplete_company(
        server: FakeDS, dataset: Dataset, tmp_path: Path) -> None:
    run_sync(server, tmp_path / "a.db", dataset.numbers)
    before = content(tmp_path / "a.db")
    db = store.open_db(tmp_path / "a.db")
    incomplete = db.execute("SELECT count(*) FROM dossiers WHERE demandeur_type = 'PersonneMoraleIncomplete'"
                            ).fetchone()[0]
    assert incomplete >= 1  # the dataset has one: DS may complete it without touching the dossier
    server.stats.reset()
    summaries = run_sync(server, tmp_path / "a.db", dataset.numbers)
    # One request for both démarches: metadata, one page of each incremental stream (its overlap for late
    # commits included) and of each deletion list; then a re-read by number of each demandeur whose company
    # data DS had not fetched.
    assert server.stats.operations == {"getChanges": 1, "rereadDossier": incomplete}
    assert server.stats.requests == 1 + incomplete
    assert all(s.nouveaux == s.modifies == s.supprimes == s.restaures == 0 for s in summaries)
    assert content(tmp_path / "a.db") == before


def test_an_incremental_sync_after_server_changes_equals_a_fresh_full_sync(
        server: FakeDS, dataset: Dataset, tmp_path: Path) -> None:
    run_sync(server, tmp_path / "incremental.db", dataset.numbers)
    general = dataset.visible_numbers("general")
    dataset.edit_champ(general[0], "Q2hhbXAtMTAxMg==", "Portail citoyen renouvelé")  # Intitulé du projet
    dataset.set_state(general[1], "accepte")
    dataset.hide(general[2], by="administration")
    in_construction = next(n for n in general[8:] if dataset.dossier(n).state == "en_construction")
    dataset.hide(in_construction, by="usager")
    dataset.purge(in_construction)  # backdated to the day its usager deleted it
    dataset.move_groupe(general[4], dataset.dossier(general[5]).groupe)
    dataset.archive(general[6])
    new = dataset.add_dossier("labo")
    hidden_then_restored = general[7]
    dataset.hide(hidden_then_restored, by="administration")
    run_sync(server, tmp_path / "incremental.db", dataset.numbers)
    dataset.restore(hidden_then_restored)

    summaries = run_sync(server, tmp_path / "incremental.db", dataset.numbers)
    run_sync(server, tmp_path / "fresh.db", dataset.numbers)

    assert content(tmp_path / "incremental.db") == content(tmp_path / "fresh.db")
    general_summary = summaries[0]
    assert general_summary.restaures == 1
    db = store.open_db(tmp_path / "incremental.db")
    states = dict(db.execute("SELECT number, coalesce(deletion_state, 'vivant') FROM dossiers").fetchall())
    assert states[general[2]] == "masque" and states[in_construction] == "supprime"
    assert states[new] == states[hidden_then_restored] == "vivant"


def test_full_sync_marks_dossiers_that_vanished_without_a_trace(
        server: FakeDS, dataset: Dataset, tmp_path: Path) -> None:
    run_sync(server, tmp_path / "a.db", dataset.numbers)
    expired = dataset.visible_numbers("labo")[0]
    dataset.hide(expired, by="expired")  # never listed in pendingDeletedDossiers
    run_sync(server, tmp_path / "a.db", dataset.numbers)
    db = store.open_db(tmp_path / "a.db")
    assert db.execute("SELECT deletion_state FROM dossiers WHERE number = ?", [expired]).fetchone()[0] is None
    summaries = run_sync(server, tmp_path / "a.db", dataset.numbers, full=True)
    assert db.execute("SELECT deletion_state FROM dossiers WHERE number = ?", [expired]).fetchone()[0] == "disparu"
    assert summaries[1].supprimes == 1


def test_the_sync_completes_with_exact_data_when_a_fifth_of_requests_fail(
        server: FakeDS, dataset: Dataset, tmp_path: Path) -> None:
    run_sync(server, tmp_path / "reference.db", dataset.numbers)
    server.faults.reseed(23)  # a seed whose first draws mix every kind of failure
    server.faults.fail_rate = 0.2
    server.faults.kinds = ("429", "502", "503", "timeout")
    server.stats.reset()
    run_sync(server, tmp_path / "faulty.db", dataset.numbers)
    assert sum(server.stats.faults.values()) >= 3 and len(server.stats.faults) >= 3
    assert content(tmp_path / "faulty.db") == content(tmp_path / "reference.db")


def test_with_the_server_down_the_sync_stops_with_a_french_message_and_leaves_the_database_unchanged(
        server: FakeDS, dataset: Dataset, tmp_path: Path) -> None:
    # How fast it gives up is the retry policy's (test_api: a refused connection fails fast) and bench_sync's.
    db_path = tmp_path / "a.db"
    run_sync(server, db_path, dataset.numbers)
    env = env_for(server, db_path, dataset.numbers)
    server.stop()
    before = hashlib.sha256(db_path.read_bytes()).hexdigest()
    result = CliRunner().invoke(app, ["sync"], env=env)
    assert result.exit_code == ApiError.exit_code
    assert "Impossible de joindre l'API" in result.stderr and "Traceback" not in result.stderr
    assert hashlib.sha256(db_path.read_bytes()).hexdigest() == before


@pytest.mark.parametrize("files", [[], ["--files"]], ids=["sync", "sync --files"])
@pytest.mark.parametrize(("spec", "expected"), [
    (TokenSpec(expired=True), "expiré"),
    (TokenSpec(forbidden_network=True), "réseau"),
    (TokenSpec(scope={1}), "n'a pas accès à la démarche"),
])
def test_a_refused_token_names_the_cause_and_writes_nothing(
        dataset: Dataset, tmp_path: Path, spec: TokenSpec, expected: str, files: list[str]) -> None:
    with FakeDS(dataset, tokens={TOKEN: spec}) as server:
        result = CliRunner().invoke(app, ["sync", *files], env=env_for(server, tmp_path / "a.db", dataset.numbers))
    assert result.exit_code == AuthError.exit_code
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "a.db").exists()


def test_an_unknown_demarche_number_names_the_variable_to_fix(dataset: Dataset, tmp_path: Path) -> None:
    with FakeDS(dataset, tokens={TOKEN: TokenSpec()}) as server:
        env = {**env_for(server, tmp_path / "a.db", dataset.numbers), "ITN7_DEMARCHE_LABO": "999999"}
        result = CliRunner().invoke(app, ["sync"], env=env)
    assert result.exit_code == 2
    assert "Démarche n° 999999 introuvable : vérifiez ITN7_DEMARCHE_LABO" in result.stderr
    assert not (tmp_path / "a.db").exists()


def test_an_unknown_token_is_reported_as_invalid(dataset: Dataset, tmp_path: Path) -> None:
    with FakeDS(dataset, tokens={"un-autre-jeton": TokenSpec()}) as server:
        result = CliRunner().invoke(app, ["sync"], env=env_for(server, tmp_path / "a.db", dataset.numbers))
    assert result.exit_code == AuthError.exit_code
    assert "Jeton d'API invalide ou absent" in result.stderr


def test_a_second_sync_on_the_same_database_refuses_while_one_is_running(
        server: FakeDS, dataset: Dataset, tmp_path: Path) -> None:
    db_path = tmp_path / "a.db"
    with FileLock(f"{db_path}.lock"):
        result = CliRunner().invoke(app, ["sync"], env=env_for(server, db_path, dataset.numbers))
    assert result.exit_code == 5
    assert "Une autre synchronisation est en cours" in result.stderr


def test_the_token_never_appears_in_output_database_or_traceback(
        server: FakeDS, dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db_path = tmp_path / "a.db"
    env = env_for(server, db_path, dataset.numbers)
    server.faults.fail_next(2, "503")
    result = CliRunner().invoke(app, ["sync"], env=env)
    assert result.exit_code == 0, result.stderr
    assert TOKEN not in result.stdout + result.stderr
    for path in tmp_path.iterdir():
        assert TOKEN.encode() not in path.read_bytes(), path

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("panne imprévue")

    monkeypatch.setattr(syncstate, "save_dossiers", explode)  # where the sync's pages are saved
    crashed = CliRunner().invoke(app, ["sync", "--full"], env=env)
    # A bug is reported as one, its traceback on stderr (exit 70): the token must not be in it either.
    assert crashed.exit_code == 70 and "RuntimeError: panne imprévue" in crashed.stderr
    assert TOKEN not in crashed.stdout + crashed.stderr


def test_cli_sync_prints_a_summary_per_demarche_on_stderr(server: FakeDS, dataset: Dataset, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["sync", "--demarche", "labo"],
                                env={**env_for(server, tmp_path / "a.db", dataset.numbers), "COLUMNS": "200"})
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "laboratoire" in result.stderr and "générale" not in result.stderr
    assert f"{COUNTS['labo']} nouveau(x), 0 modifié(s)" in result.stderr


def pages_committed(db_path: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute("SELECT coalesce(sum(pages), 0) FROM sync_streams").fetchone()[0]
    except sqlite3.Error:
        return 0


def wait_for_pages(process: subprocess.Popen[Any], db_path: Path, pages: int) -> None:
    """Polls the database another process writes until it holds `pages` committed pages."""
    while pages_committed(db_path) < pages:
        assert process.poll() is None, "the sync stopped before committing its pages"
        time.sleep(0.01)


@pytest.mark.parametrize("kill_after_pages", [1, 3, 6])
def test_a_sync_killed_between_pages_resumes_to_the_same_content(
        server: FakeDS, dataset: Dataset, tmp_path: Path, kill_after_pages: int) -> None:
    run_sync(server, tmp_path / "reference.db", dataset.numbers)
    db_path = tmp_path / "killed.db"
    # The first look, then `kill_after_pages` pages of dossiers; the server then stops answering pages,
    # so the sync cannot finish before it is killed, however fast or slow this machine is, and in
    # whatever order its first requests arrive.
    server.faults.hold_after(kill_after_pages, operations={"getDossiers"})
    process = subprocess.Popen([sys.executable, "-m", "itn7cli", "sync", "--quiet"],
                               env={**os.environ, **env_for(server, db_path, dataset.numbers)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_pages(process, db_path, kill_after_pages)
        process.send_signal(signal.SIGKILL)
        process.wait()
    finally:
        server.faults.release()
    assert process.returncode == -signal.SIGKILL
    run_sync(server, db_path, dataset.numbers)
    assert content(db_path) == content(tmp_path / "reference.db")


def test_ctrl_c_stops_with_a_french_message_and_the_next_run_resumes(
        server: FakeDS, dataset: Dataset, tmp_path: Path) -> None:
    run_sync(server, tmp_path / "reference.db", dataset.numbers)
    db_path = tmp_path / "interrupted.db"
    server.faults.hold_after(2, operations={"getDossiers"})
    process = subprocess.Popen([sys.executable, "-m", "itn7cli", "sync", "--quiet"],
                               env={**os.environ, **env_for(server, db_path, dataset.numbers)},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_pages(process, db_path, 2)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        server.faults.release()
    assert process.returncode == 130
    assert "Interrompu" in stderr and "Traceback" not in stderr
    run_sync(server, db_path, dataset.numbers)
    assert content(db_path) == content(tmp_path / "reference.db")


def test_the_incremental_stream_starts_ten_minutes_before_the_full_pull_on_the_servers_clock(
        server: FakeDS, dataset: Dataset, tmp_path: Path) -> None:
    skewed = datetime(2030, 1, 1, tzinfo=UTC)  # a server clock far from this machine's
    with DSClient(server.url, TOKEN) as client:
        metas = sync.fetch_metas(client, dict(dataset.numbers))
    run_sync(server, tmp_path / "a.db", dataset.numbers, metas=metas, server_date=skewed)
    db = store.open_db(tmp_path / "a.db")
    starts = {row[0] for row in db.execute("SELECT incremental_since FROM sync_state")}
    assert starts == {"2029-12-31T23:50:00+00:00"}


def test_a_demarche_replaced_in_the_settings_leaves_checks_and_comes_back_if_configured_again(
        server: FakeDS, dataset: Dataset, tmp_path: Path) -> None:
    db_path = tmp_path / "a.db"
    test_demarche, real_demarche = dataset.numbers["labo"], dataset.numbers["general"]
    run_sync(server, db_path, {"general": test_demarche})
    run_sync(server, db_path, {"general": real_demarche})
    db = store.open_db(db_path)
    live = {r[0] for r in db.execute("SELECT DISTINCT demarche_number FROM dossiers WHERE deletion_state IS NULL")}
    assert live == {real_demarche}
    assert {r[0] for r in db.execute("SELECT DISTINCT deletion_state FROM dossiers WHERE demarche_number = ?",
                                     [test_demarche])} <= {"demarche_retiree", "masque", "supprime"}
    assert {r["demarche_number"] for r in store.iter_dossiers(db)} == {real_demarche}  # what check reads
    summaries = run_sync(server, db_path, {"general": test_demarche})
    assert summaries[0].restaures == len(dataset.visible_numbers("labo"))
    assert {r["demarche_number"] for r in store.iter_dossiers(db)} == {test_demarche}


def test_changes_made_while_the_first_pull_runs_are_all_caught(
        server: FakeDS, dataset: Dataset, tmp_path: Path) -> None:
    general = dataset.visible_numbers("general")
    made: list[int] = []

    def change_after_the_first_page(demarche: int, nodes: list[dict]) -> None:
        # Runs in the sync's writer thread once a page is committed: the pull is under way, its other
        # streams are not finished, so every change below happens during it.
        if made:
            return
        for number in general[:40:4]:
            dataset.set_state(number, "accepte" if dataset.dossier(number).state != "accepte" else "refuse")
        for number in general[1:40:4]:
            dataset.edit_champ(number, "Q2hhbXAtMTAxMg==", f"Projet modifié pendant la synchronisation {number}")
        made.append(dataset.add_dossier("general"))

    run_sync(server, tmp_path / "during.db", dataset.numbers, after_page=change_after_the_first_page)
    assert made
    run_sync(server, tmp_path / "fresh.db", dataset.numbers)
    assert content(tmp_path / "during.db") == content(tmp_path / "fresh.db")
    assert made[0] in {row[0] for row in content(tmp_path / "during.db")["dossiers"]}
