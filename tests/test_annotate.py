"""`itn7 annotate` and `itn7 instructeurs` against the fake DS server over real HTTP.

Check results come from the real `itn7 check` (itn7cli/check.py), run on the synced fake dossiers.
"""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from itn7cli import annotate, check, config, store, sync
from itn7cli.cli import app
from itn7cli.fakeds import Dataset, FakeDS, TokenSpec
from itn7cli.fakeds.dataset import relay_id

WRITE_TOKEN = "tok-ecriture-5f0c2a9e-reconnaissable"
READ_TOKEN = "tok-lecture-9b41d7c3-reconnaissable"
COUNTS = {"general": 24, "labo": 6}
SGAR = 1001  # the first instructeur of the dataset; made a member of every groupe unless a test says otherwise
SGAR_ID = relay_id("Instructeur", SGAR)


def make_dataset(sgar_everywhere: bool) -> Dataset:
    dataset = Dataset.generate(seed=21, counts=COUNTS)
    if sgar_everywhere:
        for demarche in dataset.demarches.values():
            for groupe in demarche.groupes:
                if SGAR not in groupe["instructeurs"]:
                    groupe["instructeurs"].append(SGAR)
    return dataset


@pytest.fixture
def dataset() -> Dataset:
    return make_dataset(sgar_everywhere=True)


@pytest.fixture
def server(dataset: Dataset) -> Iterator[FakeDS]:
    tokens = {WRITE_TOKEN: TokenSpec(write=True), READ_TOKEN: TokenSpec(write=False)}
    with FakeDS(dataset, tokens=tokens) as running:
        yield running


def settings_for(server: FakeDS, dataset: Dataset, db_path: Path) -> config.Settings:
    return config.Settings(token=config.Secret(WRITE_TOKEN), api_url=server.url, demarches=dict(dataset.numbers),
                           db_path=db_path, instructeur_id=SGAR_ID)


def sync_and_check(server: FakeDS, dataset: Dataset, db_path: Path) -> None:
    """A real sync then a real check, as a user runs them before annotating."""
    cfg = settings_for(server, dataset, db_path)
    sync.sync_settings(cfg, dict(dataset.numbers))
    db = store.open_db(db_path)
    check.run(db, cfg)
    db.close()


@pytest.fixture
def db_path(server: FakeDS, dataset: Dataset, tmp_path: Path) -> Path:
    path = tmp_path / "itn7.db"
    sync_and_check(server, dataset, path)
    server.stats.reset()
    return path


def env(server: FakeDS, dataset: Dataset, db_path: Path, *, token: str = WRITE_TOKEN,
        instructeur: str | None = SGAR_ID) -> dict[str, str]:
    values = {"DS_API_TOKEN": token, "DS_API_URL": server.url, "ITN7_DB": str(db_path), "COLUMNS": "250",
              "ITN7_DEMARCHE_GENERAL": str(dataset.numbers["general"]),
              "ITN7_DEMARCHE_LABO": str(dataset.numbers["labo"])}
    if instructeur:
        values["ITN7_INSTRUCTEUR_ID"] = instructeur
    return values


def invoke(args: list[str], environment: dict[str, str]) -> Result:
    """Runs the CLI; whatever happens, no token ever shows in its output."""
    result = CliRunner().invoke(app, args, env=environment)
    for token in (WRITE_TOKEN, READ_TOKEN):
        assert token not in result.stdout + result.stderr
    return result


def written(db_path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db_path) as conn:
        return sorted(conn.execute("SELECT dossier_number, annotation_id, value, instructeur_id "
                                   "FROM annotations_written").fetchall())


def planned(db_path: Path, server: FakeDS, dataset: Dataset) -> list[annotate.Planned]:
    db = store.open_db(db_path)
    try:
        return annotate.plan(db, settings_for(server, dataset, db_path))
    finally:
        db.close()


def annotation_id(dataset: Dataset, key: str) -> str:
    base = 1000 if key == "general" else 2000
    return base64.b64encode(f"Champ-{base + 904}".encode()).decode()


# ---------------------------------------------------------------- verdict text


def test_the_verdict_text_gives_status_date_and_short_reasons_worst_first() -> None:
    findings = [("pieces_manquantes", "a_verifier"), ("hors_delai", "ineligible"), ("pieces_manquantes", "a_verifier")]
    text = annotate.verdict_text("ineligible", findings, "2026-11-28T09:00:00+00:00")
    assert text == "Inéligible (28/11/2026) : déposé hors délai ; pièces manquantes"


def test_an_eligible_verdict_lists_information_findings_as_notes() -> None:
    assert annotate.verdict_text("eligible", [], "2026-11-28T23:30:00+00:00") == "Éligible (29/11/2026)"
    assert (annotate.verdict_text("eligible", [("plafond_commune", "eligible")], "2026-11-28T09:00:00+00:00")
            == "Éligible (28/11/2026) — à noter : plafond communal dépassé")


def test_the_date_of_the_check_does_not_count_when_comparing_verdicts() -> None:
    assert annotate.verdict_key("À vérifier (01/02/2026) : pièces manquantes") == annotate.verdict_key(
        "À vérifier (28/11/2026) : pièces manquantes")
    assert annotate.verdict_key("Éligible (01/02/2026)") != annotate.verdict_key("Inéligible (01/02/2026)")


# ---------------------------------------------------------------- dry run


def test_a_dry_run_shows_each_dossier_s_verdict_and_writes_nothing(
        server: FakeDS, dataset: Dataset, db_path: Path) -> None:
    result = invoke(["annotate"], env(server, dataset, db_path))
    assert result.exit_code == 0, result.stderr
    assert server.stats.mutations == 0
    assert server.stats.requests == 0  # a dry run needs no network at all
    assert written(db_path) == []
    for key in ("general", "labo"):
        for number in dataset.visible_numbers(key):
            assert str(number) in result.stdout
    total = sum(COUNTS.values())
    assert f"Simulation : {total} annotation(s) à écrire, 0 déjà à jour, 0 impossible(s)" in result.stderr
    assert "Rien n'a été écrit" in result.stderr


def test_a_dry_run_warns_when_the_instructeur_is_not_in_the_groupes_of_the_dossiers(
        tmp_path: Path) -> None:
    dataset = make_dataset(sgar_everywhere=False)
    with FakeDS(dataset, tokens={WRITE_TOKEN: TokenSpec(write=True)}) as server:
        sync_and_check(server, dataset, tmp_path / "itn7.db")
        result = invoke(["annotate"], env(server, dataset, tmp_path / "itn7.db"))
        assert result.exit_code == 0, result.stderr
        assert server.stats.mutations == 0
    outside = sum(1 for key in ("general", "labo") for n in dataset.visible_numbers(key)
                  if SGAR not in dataset.groupe_instructeurs(n))
    assert outside > 0
    assert f"{outside} dossier(s) à écrire sont dans un groupe dont l'instructeur" in result.stderr


# ---------------------------------------------------------------- apply


def test_apply_writes_exactly_the_verdicts_that_differ_from_the_annotation(
        server: FakeDS, dataset: Dataset, db_path: Path) -> None:
    plan = planned(db_path, server, dataset)
    same, other = plan[0], plan[1]
    # In DS already: the same verdict from a check made another day, and a different verdict.
    dataset.set_annotation(same.number, 1904 if same.demarche == "general" else 2904,
                           annotate.DATE_PART.sub(" (02/03/2021)", same.verdict, count=1))
    dataset.set_annotation(other.number, 1904 if other.demarche == "general" else 2904, "Inéligible (02/03/2021)")
    sync_and_check(server, dataset, db_path)
    states = {n: d.state for n, d in dataset.dossiers.items()}
    server.stats.reset()

    result = invoke(["annotate", "--apply"], env(server, dataset, db_path))

    assert result.exit_code == 0, result.stderr
    expected = [(p.number, annotation_id(dataset, p.demarche), p.verdict, SGAR_ID) for p in plan if p is not same]
    assert written(db_path) == sorted(expected)
    assert server.stats.mutations == server.stats.mutations_applied == len(plan) - 1
    assert set(server.stats.operations) == {"modifierAnnotations"}  # no state change, no message
    assert {n: d.state for n, d in dataset.dossiers.items()} == states
    assert f"{len(plan) - 1} annotation(s) écrite(s), 1 déjà à jour, 0 en erreur." in result.stderr
    assert f"n° {other.number} : écrit « {other.verdict} »" in result.stdout


def test_a_second_apply_writes_nothing_and_sends_no_request(
        server: FakeDS, dataset: Dataset, db_path: Path) -> None:
    assert invoke(["annotate", "--apply"], env(server, dataset, db_path)).exit_code == 0
    server.stats.reset()
    result = invoke(["annotate", "--apply"], env(server, dataset, db_path))
    assert result.exit_code == 0, result.stderr
    assert server.stats.requests == 0
    assert f"0 annotation(s) écrite(s), {sum(COUNTS.values())} déjà à jour" in result.stderr


def test_after_the_next_sync_the_annotations_agree_with_what_was_written_and_nothing_is_rewritten(
        server: FakeDS, dataset: Dataset, db_path: Path) -> None:
    assert invoke(["annotate", "--apply"], env(server, dataset, db_path)).exit_code == 0
    sync_and_check(server, dataset, db_path)
    with sqlite3.connect(db_path) as conn:
        synced = sorted(conn.execute(
            "SELECT c.dossier_number, c.id, c.value_text FROM champs c JOIN annotations_written w "
            "ON w.dossier_number = c.dossier_number AND w.annotation_id = c.id").fetchall())
    assert synced == [(number, annotation, value) for number, annotation, value, _ in written(db_path)]
    assert len(synced) == sum(COUNTS.values())
    server.stats.reset()
    assert invoke(["annotate", "--apply"], env(server, dataset, db_path)).exit_code == 0
    assert server.stats.mutations == 0


def test_a_changed_verdict_is_written_again_on_the_next_apply(
        server: FakeDS, dataset: Dataset, db_path: Path) -> None:
    assert invoke(["annotate", "--apply"], env(server, dataset, db_path)).exit_code == 0
    before = {p.number: p.verdict for p in planned(db_path, server, dataset)}
    hidden, target = list(before)[:2]
    dataset.hide(hidden)  # a dossier deleted on DS is no longer annotated…
    dataset.edit_champ(target, "Date prévisionnelle de fin du projet", "2030-01-01")  # …and this verdict changes
    sync_and_check(server, dataset, db_path)
    after = {p.number: p.verdict for p in planned(db_path, server, dataset)}
    assert hidden not in after
    # Besides the edited one, verdicts counting the applicant's dossiers may change with the deletion.
    changed = {n for n in after if annotate.verdict_key(after[n]) != annotate.verdict_key(before[n])}
    assert target in changed
    server.stats.reset()
    result = invoke(["annotate", "--apply"], env(server, dataset, db_path))
    assert result.exit_code == 0, result.stderr
    assert server.stats.mutations_applied == len(changed)
    assert {int(line.split()[1]) for line in result.stdout.splitlines()} == changed


def test_per_dossier_errors_are_reported_and_the_other_dossiers_are_still_written(tmp_path: Path) -> None:
    dataset = make_dataset(sgar_everywhere=False)  # the instructeur is in one groupe only
    db_path = tmp_path / "itn7.db"
    with FakeDS(dataset, tokens={WRITE_TOKEN: TokenSpec(write=True)}) as server:
        sync_and_check(server, dataset, db_path)
        numbers = [n for key in ("general", "labo") for n in dataset.visible_numbers(key)]
        member = sorted(n for n in numbers if SGAR in dataset.groupe_instructeurs(n))
        outside = sorted(set(numbers) - set(member))
        assert len(member) >= 2 and outside
        # The annotation was removed from the form after the sync: DS no longer knows the id we hold.
        removed = member[0]
        with sqlite3.connect(db_path) as conn:
            conn.execute("UPDATE champs SET id = ? WHERE dossier_number = ? AND descriptor_id = ?",
                         [base64.b64encode(b"Champ-1999").decode(), removed, annotation_id(dataset, "general")])
        server.stats.reset()

        result = invoke(["annotate", "--apply"], env(server, dataset, db_path))

        assert server.stats.mutations == len(numbers)
        assert server.stats.mutations_applied == len(member) - 1
    assert result.exit_code == 1
    assert [row[0] for row in written(db_path)] == member[1:]
    errors = result.stderr.splitlines()
    for number in outside:
        assert any(line.startswith(f"n° {number} : l'instructeur n'appartient pas au groupe") for line in errors)
    assert any(line.startswith(f"n° {removed} : annotation refusée") and "n’existe pas" in line for line in errors)
    assert f"{len(member) - 1} annotation(s) écrite(s), 0 déjà à jour, {len(outside) + 1} en erreur." in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_a_read_only_token_is_refused_cleanly_after_one_attempt(
        server: FakeDS, dataset: Dataset, db_path: Path) -> None:
    result = invoke(["annotate", "--apply"], env(server, dataset, db_path, token=READ_TOKEN))
    assert result.exit_code == 3
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Erreur : Le jeton d'API est en lecture seule")
    assert "Traceback" not in result.stderr
    assert server.stats.mutations == 1
    assert server.stats.mutations_applied == 0
    assert written(db_path) == []


def test_apply_without_an_instructeur_id_is_refused_before_any_request(
        server: FakeDS, dataset: Dataset, db_path: Path) -> None:
    result = invoke(["annotate", "--apply"], env(server, dataset, db_path, instructeur=None))
    assert result.exit_code == 2
    assert "ITN7_INSTRUCTEUR_ID" in result.stderr
    assert server.stats.requests == 0


def test_the_instructeur_may_be_given_by_e_mail(server: FakeDS, dataset: Dataset, db_path: Path) -> None:
    result = invoke(["annotate", "--apply", "--session", "1"],
                    env(server, dataset, db_path, instructeur=dataset.instructeurs[SGAR].upper()))
    assert result.exit_code == 0, result.stderr
    with sqlite3.connect(db_path) as conn:
        session_1 = {row[0] for row in conn.execute("SELECT number FROM checks WHERE session = 1")}
    assert session_1
    assert {row[0] for row in written(db_path)} == session_1
    assert {row[3] for row in written(db_path)} == {SGAR_ID}


def test_writes_survive_server_errors_through_the_client_s_retries(
        server: FakeDS, dataset: Dataset, db_path: Path) -> None:
    server.faults.fail_next(2, "502")
    result = invoke(["annotate", "--apply", "--demarche", "labo"], env(server, dataset, db_path))
    assert result.exit_code == 0, result.stderr
    assert [row[0] for row in written(db_path)] == sorted(dataset.visible_numbers("labo"))


# ---------------------------------------------------------------- instructeurs


def test_instructeurs_lists_every_groupe_with_its_instructeurs_ids_and_e_mails(
        server: FakeDS, dataset: Dataset, db_path: Path) -> None:
    result = invoke(["instructeurs"], env(server, dataset, db_path))
    assert result.exit_code == 0, result.stderr
    for demarche in dataset.demarches.values():
        for groupe in demarche.groupes:
            assert groupe["label"] in result.stdout
            for member in groupe["instructeurs"]:
                assert relay_id("Instructeur", member) in result.stdout
                assert dataset.instructeurs[member] in result.stdout
    assert "(ITN7_INSTRUCTEUR_ID)" in result.stdout
