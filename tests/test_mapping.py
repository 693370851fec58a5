"""Roles → champs: found once per démarche by label, then followed by descriptor id through every revision."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
from typer.testing import CliRunner

from itn7cli import check, store
from itn7cli.cli import app
from itn7cli.config import Settings
from itn7cli.errors import ConfigError
from itn7cli.fakeds import Dataset, FakeDS, TokenSpec
from itn7cli.rules import Dossier, mappings_from_settings
from itn7cli.rules.mapping import normalize_label

from .factory import dossier, drop, expense, find
from .syncutil import TOKEN, env_for
from .test_check import descriptor, synced

SETTINGS = Settings(limite_porteur=99)  # the crafted dossiers share one applicant
R1, R2 = "UmV2aXNpb24tMQ==", "UmV2aXNpb24tMg=="
# The six champs the administrators reworded mid-call, keeping their ids.
RENAMES = {
    "Montant de la subvention sollicitée (€)": "Aide demandée à l'État",
    "Coût total du projet HT (€)": "Budget global du projet, hors taxes",
    "Date prévisionnelle de fin du projet": "Date d'achèvement prévue",
    "Annexe 1 du cahier des charges": "Fiche projet signée (annexe 1)",
    "Dépenses prévisionnelles": "Détail des dépenses",
    "Description de la situation existante et des besoins identifiés": "Contexte et besoins",
}


def walk(raw: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """A copy of the dossier with `change` applied to every champ, repetition rows included."""
    out = copy.deepcopy(raw)
    for champ in out["champs"]:
        change(champ)
        for row in champ.get("rows") or ():
            for child in row["champs"]:
                change(child)
    return out


def renamed(raw: dict[str, Any]) -> dict[str, Any]:
    def rename(champ: dict[str, Any]) -> None:
        champ["label"] = RENAMES.get(champ["label"], champ["label"])
    return walk(raw, rename)


def own_ids(raw: dict[str, Any]) -> dict[str, Any]:
    """The dossier of a form whose descriptor ids are not those of forms.json."""
    def reid(champ: dict[str, Any]) -> None:
        champ["champDescriptorId"] = "VHlwZURlQ2hhbXAt" + champ["champDescriptorId"][::-1]
    return walk(raw, reid)


def filed(raw: dict[str, Any], number: int, revision: str) -> dict[str, Any]:
    out = copy.deepcopy(raw)
    out.update(number=number, id=f"RG9zc2llci{number}", revision={"id": revision})
    return out


def demarche(number: int, revisions: list[tuple[str, str, dict[str, Any]]]) -> dict[str, Any]:
    """A démarche whose revisions (id, publication, model dossier) describe the champs of each model."""
    return {"number": number, "id": f"D{number}", "title": "ITN7", "state": "publiee",
            "activeRevision": {"id": revisions[-1][0]},
            "revisions": [{"id": rid, "dateCreation": when, "datePublication": when,
                           "champDescriptors": [descriptor(c) for c in model["champs"]], "annotationDescriptors": []}
                          for rid, when, model in revisions],
            "groupeInstructeurs": []}


def database(tmp_path: Path, form: dict[str, Any], *dossiers: dict[str, Any]) -> sqlite_utils.Database:
    tmp_path.mkdir(exist_ok=True)
    db = store.open_db(tmp_path / "itn7.db")
    store.save_demarche(db, "general", form)
    with db.atomic():
        store.save_dossiers(db, form["number"], dossiers)
    synced(db)
    return db


def verdicts(db: sqlite_utils.Database) -> dict[int, tuple[str, list[tuple[str, str]]]]:
    check.run(db, SETTINGS)
    return {r["number"]: (r["status"], [(f["rule"], f["status"]) for f in r["findings"]]) for r in check.results(db)}


def messages(db: sqlite_utils.Database, number: int) -> list[str]:
    check.run(db, SETTINGS)
    return [f["message"] for r in check.results(db) if r["number"] == number for f in r["findings"]]


def tripping() -> list[dict[str, Any]]:
    """Dossiers that trip the rules reading the reworded champs, and one that trips none."""
    late, costly, excluded, no_annex = dossier(), dossier(), dossier(), dossier()
    find(late, "Date prévisionnelle de fin du projet")["date"] = "2023-03-31"
    find(costly, "Montant de la subvention sollicitée (€)")["decimal"] = 25000.0
    find(excluded, "Dépenses prévisionnelles")["rows"][1] = expense("Frais de personnel", "Chef de projet", 8000.0)
    find(no_annex, "Annexe 1 du cahier des charges")["files"] = []
    return [dossier(), late, costly, excluded, no_annex]


# ---------------------------------------------------------------- labels


def test_label_matching_ignores_case_accents_spacing_punctuation_and_units() -> None:
    variants = ["Montant de la subvention sollicitée (€)", "MONTANT DE LA SUBVENTION SOLLICITEE",
                "montant de la subvention  sollicitée (en euros)", "Montant de la subvention sollicitée :"]
    assert {normalize_label(v) for v in variants} == {"montantdelasubventionsollicitee"}


def test_a_dossier_read_alone_finds_a_role_by_a_label_written_differently() -> None:
    raw = dossier()
    find(raw, "Coût total du projet HT (€)").update(label="COUT TOTAL DU PROJET HT (en €)")
    view = Dossier(raw, "general", mappings_from_settings({})["general"])
    assert view.amount("cout_total")[1] == 20000.0


def test_a_configured_label_overrides_the_default() -> None:
    raw = dossier()
    find(raw, "Coût total du projet HT (€)").update(label="Budget total")
    mapping = mappings_from_settings({"general": {"cout_total": "Budget total"}})["general"]
    assert Dossier(raw, "general", mapping).amount("cout_total")[1] == 20000.0


def test_an_unknown_role_in_the_configuration_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="rôle inconnu « montant »"):
        mappings_from_settings({"general": {"montant": "Montant"}})


# ---------------------------------------------------------------- forms of the store


def test_a_form_whose_ids_differ_from_forms_json_is_checked_by_its_labels(tmp_path: Path) -> None:
    models = tripping()
    db = database(tmp_path, demarche(100, [(R1, "2021-03-01T10:00:00+01:00", own_ids(dossier()))]),
                  *(filed(own_ids(raw), n, R1) for n, raw in enumerate(models, start=1)))
    expected = database(tmp_path / "reference", demarche(100, [(R1, "2021-03-01T10:00:00+01:00", dossier())]),
                        *(filed(raw, n, R1) for n, raw in enumerate(models, start=1)))
    assert verdicts(db) == verdicts(expected)


def test_champs_renamed_in_a_later_revision_give_the_verdicts_of_the_same_dossiers_without_the_rename(
        tmp_path: Path) -> None:
    models = tripping()
    form = demarche(100, [(R1, "2021-03-01T10:00:00+01:00", dossier()),
                          (R2, "2021-06-15T10:00:00+02:00", renamed(dossier()))])
    before = [filed(raw, n, R1) for n, raw in enumerate(models, start=1)]
    after = [filed(renamed(raw), n, R2) for n, raw in enumerate(models, start=11)]
    results = verdicts(database(tmp_path, form, *before, *after))
    assert [results[n] for n in range(11, 16)] == [results[n] for n in range(1, 6)] == [
        ("eligible", []), ("a_verifier", [("calendrier", "a_verifier")]),
        ("a_verifier", [("incoherence_montants", "a_verifier")]),
        ("a_verifier", [("depenses_ineligibles", "a_verifier")]), ("a_verifier", [("pieces_manquantes", "a_verifier")])]


def test_a_champ_whose_type_changed_in_a_revision_is_unreadable_for_that_revisions_dossiers(tmp_path: Path) -> None:
    retyped = dossier()
    find(retyped, "Date prévisionnelle de fin du projet").update(__typename="TextChamp", text="fin 2022", date=None)
    form = demarche(100, [(R1, "2021-03-01T10:00:00+01:00", dossier()), (R2, "2021-06-15T10:00:00+02:00", retyped)])
    db = database(tmp_path, form, filed(dossier(), 1, R1), filed(retyped, 2, R2))
    assert (messages(db, 1), messages(db, 2)) == ([], [
        f"Le champ « Date prévisionnelle de fin du projet » (rôle date_fin) est de type Text au lieu de Date dans la "
        f"révision du 15/06/2021 ({R2}) du formulaire : illisible pour les dossiers de cette révision."])


def test_a_champ_removed_in_a_revision_is_unreadable_for_that_revisions_dossiers_only(tmp_path: Path) -> None:
    without = drop(dossier(), "Date prévisionnelle de fin du projet")
    form = demarche(100, [(R1, "2021-03-01T10:00:00+01:00", dossier()), (R2, "2021-06-15T10:00:00+02:00", without)])
    late = filed(dossier(), 1, R1)
    find(late, "Date prévisionnelle de fin du projet")["date"] = "2023-01-31"
    db = database(tmp_path, form, late, filed(without, 2, R2))
    assert (verdicts(db)[1], messages(db, 2)) == (("a_verifier", [("calendrier", "a_verifier")]), [
        f"Le champ « Date prévisionnelle de fin du projet » (rôle date_fin) n'existe pas dans la révision du "
        f"15/06/2021 ({R2}) du formulaire : illisible pour les dossiers de cette révision."])


def test_a_label_matching_two_champs_is_reported_and_never_guessed(tmp_path: Path) -> None:
    twice = dossier()
    twice["champs"].append({**find(twice, "Montant de la subvention sollicitée (€)"), "id": "c2",
                            "champDescriptorId": "Q2hhbXAtOTk5OQ==", "label": "Montant de la subvention sollicitée",
                            "decimal": 99.0})
    db = database(tmp_path, demarche(100, [(R1, "2021-03-01T10:00:00+01:00", twice)]), filed(twice, 1, R1))
    [problem] = messages(db, 1)
    [view] = check.describe_roles(db, SETTINGS)
    subvention = next(r for r in view.roles if r.role == "subvention")
    assert (problem, subvention.descriptor_id, subvention.problem) == (
        "Libellé ambigu pour le rôle subvention : « Montant de la subvention sollicitée (€) » désigne plusieurs champs "
        "(« Montant de la subvention sollicitée (€) » Q2hhbXAtMTAzNg== ; « Montant de la subvention sollicitée » "
        "Q2hhbXAtOTk5OQ==) ; indiquez l'identifiant du bon champ dans [mapping.general] d'itn7.toml (voir « itn7 "
        "champs »).", None, problem)


def test_a_configured_descriptor_id_settles_an_ambiguous_label(tmp_path: Path) -> None:
    twice = dossier()
    twice["champs"].append({**find(twice, "Montant de la subvention sollicitée (€)"), "id": "c2",
                            "champDescriptorId": "Q2hhbXAtOTk5OQ==", "decimal": 99.0})
    db = database(tmp_path, demarche(100, [(R1, "2021-03-01T10:00:00+01:00", twice)]), filed(twice, 1, R1))
    settings = Settings(limite_porteur=99, mapping={"general": {"subvention": "Q2hhbXAtOTk5OQ=="}})
    form = check.role_maps(db, settings)["general"]
    assert Dossier(filed(twice, 1, R1), "general", form).amount("subvention")[1] == 99.0


def test_the_champs_listing_follows_each_role_through_the_revisions(tmp_path: Path) -> None:
    without = renamed(drop(dossier(), "Thématique"))
    db = database(tmp_path, demarche(100, [(R1, "2021-03-01T10:00:00+01:00", dossier()),
                                           (R2, "2021-06-15T10:00:00+02:00", without)]))
    [view] = check.describe_roles(db, SETTINGS)
    roles = {r.role: r for r in view.roles}
    assert ((roles["subvention"].labels, roles["subvention"].toml_line),
            (roles["thematique"].missing, roles["thematique"].labels), roles["partenaires"].problem) == (
        ([("01/03/2021", "Montant de la subvention sollicitée (€)"), ("15/06/2021", "Aide demandée à l'État")],
         'subvention = "Q2hhbXAtMTAzNg=="  # Aide demandée à l\'État'),
        (["15/06/2021"], [("01/03/2021", "Thématique")]),
        "Champ introuvable pour « Collectivités partenaires » (rôle partenaires, cherché : « Collectivités "
        "partenaires ») : formulaire modifié ou correspondance à revoir.")


def test_itn7_champs_prints_the_lines_to_paste_and_marks_types_the_query_does_not_name(tmp_path: Path) -> None:
    carte = dossier()
    carte["champs"].append({"__typename": "CarteChamp", "id": "c77", "champDescriptorId": "Q2hhbXAtMTA3Nw==",
                            "label": "Emprise du projet", "stringValue": "2 zones"})
    db = database(tmp_path, demarche(100, [(R1, "2021-03-01T10:00:00+01:00", carte)]), filed(carte, 1, R1))
    db.close()
    result = CliRunner().invoke(app, ["champs", "--db", str(tmp_path / "itn7.db")], env={"COLUMNS": "200"})
    lines = result.stdout.splitlines()
    assert (result.exit_code, "[mapping.general]" in lines, 'cout_total = "Q2hhbXAtMTAzNQ=="  # Coût total du projet '
            "HT (€)" in lines, [line.strip() for line in lines if "CarteChamp" in line]) == (
        0, True, True, ["CarteChamp « Emprise du projet » Q2hhbXAtMTA3Nw=="])


def test_the_sync_summary_names_the_renamed_and_removed_champs_of_a_new_revision(tmp_path: Path) -> None:
    reworded = renamed(drop(dossier(), "Date prévisionnelle de fin du projet"))
    find(reworded, "Objectifs du projet")["label"] = "Objectifs"
    db = database(tmp_path, demarche(100, [(R1, "2021-03-01T10:00:00+01:00", dossier()),
                                           (R2, "2021-06-15T10:00:00+02:00", reworded)]))
    assert (check.revision_news(db, SETTINGS, {R1}), check.revision_news(db, SETTINGS, {R1, R2})) == (
        ["nouvelle révision de la démarche générale du 15/06/2021 : 6 libellés modifiés, suivis par identifiant ; "
         "1 champ supprimé : Date prévisionnelle de fin du projet"], [])


def test_itn7_sync_says_which_revisions_it_brought_over_real_http(tmp_path: Path) -> None:
    dataset = Dataset.generate(seed=3, counts={"general": 20, "labo": 3})
    general = dataset.demarches[dataset.numbers["general"]]
    published, general.revisions = general.revisions, general.revisions[:2]  # before the mid-call revision
    with FakeDS(dataset, tokens={TOKEN: TokenSpec()}) as server:
        env = env_for(server, tmp_path / "itn7.db", dataset.numbers)
        first = CliRunner().invoke(app, ["sync"], env=env)
        general.revisions = published
        second = CliRunner().invoke(app, ["sync"], env=env)
    news = [line for line in second.stderr.splitlines() if line.startswith("Nouvelle révision")]
    assert (first.exit_code, second.exit_code, news) == (0, 0, [
        "Nouvelle révision de la démarche générale du 01/07/2021 : 6 libellés modifiés, suivis par identifiant ; "
        "1 champ supprimé : Le projet s'inscrit dans.",
        "Nouvelle révision de la démarche générale du 06/09/2021 : 1 champ de type modifié : Date prévisionnelle "
        "de fin du projet (Date → Text, illisible pour les dossiers de cette révision).",
        "Nouvelle révision de la démarche générale du 13/09/2021 : 1 champ de type modifié : Date prévisionnelle "
        "de fin du projet (Text → Date)."])


def test_a_text_champ_turned_into_a_long_text_stays_readable(tmp_path: Path) -> None:
    form = demarche(100, [(R1, "2021-03-01T10:00:00+01:00", dossier()), (R2, "2021-06-15T10:00:00+02:00", dossier())])
    objectifs = next(d for d in form["revisions"][1]["champDescriptors"] if d["label"] == "Objectifs du projet")
    objectifs["__typename"] = "TextareaChampDescriptor"
    urbanism = filed(dossier(), 1, R2)
    find(urbanism, "Objectifs du projet")["text"] = "Dématérialiser les permis de construire."
    db = database(tmp_path, form, urbanism)
    assert verdicts(db) == {1: ("a_verifier", [("urbanisme", "a_verifier")])}


def test_a_new_revision_that_changes_how_the_form_is_read_rechecks_its_demarche(tmp_path: Path) -> None:
    db = database(tmp_path, demarche(100, [(R1, "2021-03-01T10:00:00+01:00", dossier())]),
                  filed(dossier(), 1, R1), filed(dossier(), 2, R1))
    check.run(db, SETTINGS)
    unchanged = check.run(db, SETTINGS).checked
    ambiguous = dossier()
    ambiguous["champs"].append({**find(ambiguous, "Thématique"), "id": "c99", "champDescriptorId": "Q2hhbXAtOTk5OQ=="})
    store.save_demarche(db, "general", demarche(100, [(R1, "2021-03-01T10:00:00+01:00", dossier()),
                                                      (R2, "2021-06-15T10:00:00+02:00", ambiguous)]))
    assert (unchanged, check.run(db, SETTINGS).checked) == (0, 2)
