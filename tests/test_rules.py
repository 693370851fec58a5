"""Every rule of RULES.md on crafted dossiers, with the boundaries of issue 3."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from itn7cli import annotate, refdata, store
from itn7cli.config import Settings
from itn7cli.export import sheets
from itn7cli.labels import STATUSES
from itn7cli.rules import Context, Dossier, Finding, engine, evaluate, mappings_from_settings, session_for, worst
from itn7cli.rules.engine import A_VERIFIER, ELIGIBLE, INELIGIBLE
from itn7cli.rules.priority import priority

from .factory import champ, dossier, drop, expense, files, find, partner

DATA = Path(__file__).with_name("data")
SETTINGS = Settings()


def check(raw: dict[str, Any], key: str = "general", settings: Settings = SETTINGS,
          counts: dict[str, int] | None = None, ref: refdata.RefData | None = None) -> list[Finding]:
    mapping = mappings_from_settings(settings.mapping)[key]
    return evaluate(Dossier(raw, key, mapping), Context(settings, ref, counts or {}))


def texts(raw: dict[str, Any], objectifs: str) -> dict[str, Any]:
    find(raw, "Objectifs du projet").update(text=objectifs, stringValue=objectifs)
    return raw


@pytest.fixture
def ref(tmp_path: Path) -> refdata.RefData:
    db = store.open_db(tmp_path / "ref.db")
    refdata.import_csv(db, [DATA])
    loaded = refdata.load(db)
    assert loaded is not None
    return loaded


# ---------------------------------------------------------------- the baseline


def test_a_complete_dossier_of_a_paca_commune_has_no_finding_and_is_eligible() -> None:
    findings = check(dossier())
    assert (findings, worst(findings)) == ([], ELIGIBLE)


def test_a_complete_labo_dossier_naming_its_laboratoire_has_no_finding() -> None:
    assert check(dossier(key="labo"), key="labo") == []


# ---------------------------------------------------------------- sessions and hors_delai


def test_a_dossier_filed_at_the_last_second_of_may_30_belongs_to_session_1() -> None:
    assert session_for("2021-05-30T23:59:59+02:00", SETTINGS.sessions) == 1


def test_a_dossier_filed_at_midnight_on_may_31_belongs_to_session_2() -> None:
    assert session_for("2021-05-31T00:00:00+02:00", SETTINGS.sessions) == 2


def test_a_utc_instant_equal_to_the_last_closing_in_paris_belongs_to_session_3() -> None:
    assert session_for("2021-10-15T21:59:59Z", SETTINGS.sessions) == 3


def test_a_dossier_filed_at_2200_utc_on_october_15_is_after_the_last_closing() -> None:
    assert session_for("2021-10-15T22:00:00Z", SETTINGS.sessions) is None


def test_a_dossier_filed_after_the_last_closing_is_ineligible_with_the_paris_time() -> None:
    raw = dossier()
    raw["dateDepot"] = "2021-10-15T22:00:00Z"
    assert check(raw) == [Finding("hors_delai", INELIGIBLE, "Dossier déposé le 16/10/2021 à 00:00:00 (heure de "
                                  "Paris), après la dernière clôture de l'appel, le 15/10/2021 à 23:59:59.")]


def test_a_dossier_without_filing_date_is_unreadable_not_a_crash() -> None:
    raw = dossier()
    raw["dateDepot"] = None
    assert check(raw) == [Finding("donnees_illisibles", A_VERIFIER, "Date de dépôt absente ou illisible (« None ») : "
                                  "session impossible à déterminer.")]


# ---------------------------------------------------------------- porteur_type


def test_a_personne_physique_is_ineligible_and_not_located() -> None:
    raw = dossier()
    raw["demandeur"] = {"__typename": "PersonnePhysique", "civilite": "Mme", "nom": "Martin", "prenom": "Claire",
                        "email": "c@example.org"}
    assert check(raw) == [Finding("porteur_type", INELIGIBLE, "Le demandeur est une personne physique : seuls les "
                                  "communes, EPCI, métropoles, départements et Région peuvent candidater.")]


def test_a_personne_morale_incomplete_is_to_be_verified_with_its_unknown_seat() -> None:
    raw = dossier()
    raw["demandeur"] = {"__typename": "PersonneMoraleIncomplete", "siret": "21040001600015"}
    assert check(raw) == [
        Finding("porteur_type", A_VERIFIER, "Le demandeur (SIRET 21040001600015) n'a pas été identifié par Démarche "
                "Numérique : vérifier sa catégorie juridique."),
        Finding("hors_region", A_VERIFIER, "Siège du demandeur inconnu (ni code commune INSEE ni département) : "
                "vérifier qu'il est en Provence-Alpes-Côte d'Azur."),
    ]


def test_an_association_is_ineligible_naming_its_legal_category() -> None:
    raw = dossier()
    raw["demandeur"]["entreprise"].update(formeJuridiqueCode="9220", formeJuridique="Association déclarée")
    assert check(raw) == [Finding("porteur_type", INELIGIBLE, "Catégorie juridique 9220 (Association déclarée) : "
                                  "seuls les communes, EPCI, métropoles, départements et Région peuvent candidater.")]


def test_a_ccas_is_ineligible_and_told_its_commune_should_apply() -> None:
    raw = dossier()
    raw["demandeur"]["entreprise"].update(formeJuridiqueCode="7361", formeJuridique="Centre communal d'action sociale")
    assert check(raw)[0].message.endswith("; c'est la commune de rattachement qui doit déposer le dossier.")


def test_a_sivu_is_to_be_verified_by_the_committee() -> None:
    raw = dossier()
    raw["demandeur"]["entreprise"].update(formeJuridiqueCode="7353", formeJuridique=None)
    assert check(raw) == [Finding("porteur_type", A_VERIFIER, "Catégorie juridique 7353 (SIVU) : ce porteur n'est pas "
                                  "expressément cité par l'appel (communes, EPCI, métropoles, départements et Région), "
                                  "le comité décide.")]


def test_a_communaute_de_communes_is_eligible() -> None:
    raw = dossier()
    raw["demandeur"]["entreprise"]["formeJuridiqueCode"] = "7346"
    assert check(raw) == []


# ---------------------------------------------------------------- hors_region


def test_a_corsican_commune_code_2a004_is_outside_paca() -> None:
    raw = dossier()
    raw["demandeur"]["address"].update(cityCode="2A004", postalCode="20167", departmentCode="2A")
    assert check(raw) == [Finding("hors_region", INELIGIBLE, "Le siège du demandeur est hors de la région "
                                  "Provence-Alpes-Côte d'Azur : département 2A (commune 2A004).")]


def test_a_reunion_commune_code_97411_gives_the_three_character_departement_974() -> None:
    raw = dossier()
    raw["demandeur"]["address"].update(cityCode="97411", postalCode="97400", departmentCode="974")
    assert check(raw) == [Finding("hors_region", INELIGIBLE, "Le siège du demandeur est hors de la région "
                                  "Provence-Alpes-Côte d'Azur : département 974 (commune 97411).")]


def test_a_paca_commune_with_another_departements_postal_code_stays_in_paca() -> None:
    raw = dossier()
    raw["demandeur"]["address"].update(cityCode="04058", postalCode="05110", departmentCode="04")
    assert check(raw) == []


def test_the_departement_code_is_used_when_the_commune_code_is_missing() -> None:
    raw = dossier()
    raw["demandeur"]["address"].update(cityCode=None, departmentCode="26")
    assert check(raw) == [Finding("hors_region", INELIGIBLE, "Le siège du demandeur est hors de la région "
                                  "Provence-Alpes-Côte d'Azur : département 26 (adresse du siège).")]


def test_an_epci_straddling_two_regions_is_reported_as_information(ref: refdata.RefData) -> None:
    raw = dossier()
    raw["demandeur"]["entreprise"].update(siren="248400251", formeJuridiqueCode="7348")
    raw["demandeur"]["siret"] = "24840025100018"
    raw["demandeur"]["address"]["cityCode"] = "84007"
    assert [f for f in check(raw, ref=ref) if f.rule == "hors_region"] == [
        Finding("hors_region", ELIGIBLE, "Information : l'EPCI CA du Grand Avignon (COGA) compte des communes hors "
                "région (départements 30, 84).")]


# ---------------------------------------------------------------- money


def test_a_single_commune_asking_more_than_30000_as_a_bigint_string_is_capped() -> None:
    raw = dossier()
    find(raw, "Montant de la subvention sollicitée (€)").update(
        __typename="IntegerNumberChamp", integer="45000", decimal=None, stringValue="45000")
    find(raw, "Coût total du projet HT (€)").update(decimal=50000.0)
    find(raw, "Dépenses prévisionnelles")["rows"][0]["champs"][2]["decimal"] = 42000.0
    assert check(raw) == [Finding("plafond_commune", A_VERIFIER, "Une commune seule demande 45 000 €, au-delà du "
                                  "plafond de 30 000 € : montant plafonné à 30 000 €.")]


def test_an_epci_above_the_cap_is_information_only() -> None:
    raw = dossier()
    raw["demandeur"]["entreprise"]["formeJuridiqueCode"] = "7348"
    find(raw, "Montant de la subvention sollicitée (€)")["decimal"] = 20000.0
    find(raw, "Coût total du projet HT (€)")["decimal"] = 20000.0
    settings = Settings(plafond_commune=15000.0)
    findings = check(raw, settings=settings)
    assert (findings, worst(findings)) == ([Finding(
        "plafond_commune", ELIGIBLE, "Information : l'EPCI demande 20 000 €, au-delà du plafond communal de 15 000 € ; "
        "un financement assoupli est possible pour les EPCI de communes rurales, le comité décide.")], ELIGIBLE)


def test_an_epci_above_the_cap_is_to_be_verified_when_the_committee_configures_it() -> None:
    raw = dossier()
    raw["demandeur"]["entreprise"]["formeJuridiqueCode"] = "7346"
    assert worst(check(raw, settings=Settings(plafond_commune=10000.0, plafond_epci_statut=True))) == A_VERIFIER


def test_a_commune_carrying_a_project_with_partners_is_not_capped() -> None:
    raw = dossier()
    find(raw, "Le projet est-il porté par plusieurs collectivités ?")["yesNo"] = True
    raw["champs"].append(champ("RepetitionChamp", 1005, "Collectivités partenaires",
                               rows=[partner("Digne-les-Bains", "21040070100012", "7210")]))
    assert check(raw, settings=Settings(plafond_commune=10000.0)) == []


def test_a_grant_above_the_cost_and_a_cost_unlike_the_expenses_are_incoherent() -> None:
    raw = dossier()
    find(raw, "Montant de la subvention sollicitée (€)")["decimal"] = 25000.0
    find(raw, "Coût total du projet HT (€)")["decimal"] = 21500.5
    assert check(raw) == [Finding("incoherence_montants", A_VERIFIER, "Montants incohérents : la subvention demandée "
                                  "(25 000 €) dépasse le coût total du projet (21 500,50 €) ; le coût total "
                                  "(21 500,50 €) diffère de la somme des dépenses (20 000 €), écart 1 500,50 €.")]


def test_a_cost_within_one_euro_of_the_expenses_is_coherent() -> None:
    raw = dossier()
    find(raw, "Coût total du projet HT (€)")["decimal"] = 20000.99
    assert check(raw) == []


def test_missing_and_negative_amounts_are_incoherent() -> None:
    raw = dossier()
    find(raw, "Montant de la subvention sollicitée (€)")["decimal"] = None
    find(raw, "Coût total du projet HT (€)")["decimal"] = -5.0
    assert check(raw) == [Finding("incoherence_montants", A_VERIFIER, "Montants incohérents : montant négatif : « Coût "
                                  "total du projet HT (€) » = -5 € ; montant non renseigné : « "
                                  "Montant de la subvention "
                                  "sollicitée (€) » ; le coût total (-5 €) diffère de la somme "
                                  "des dépenses (20 000 €), "
                                  "écart 20 005 €.")]


def test_only_excluded_expense_natures_make_the_dossier_ineligible() -> None:
    raw = dossier()
    find(raw, "Dépenses prévisionnelles")["rows"] = [
        expense("Frais de personnel", "Chef de projet", 12000.0),
        expense("Achat de matériel informatique", "Matériel", 8000.0),
    ]
    findings = [f for f in check(raw) if f.rule == "depenses_ineligibles" and f.status == INELIGIBLE]
    assert findings == [Finding("depenses_ineligibles", INELIGIBLE, "Toutes les dépenses sont d'une nature exclue par "
                                "l'appel (personnel, matériel informatique) : Frais de personnel (12 000 €), Achat de "
                                "matériel informatique (8 000 €).")]


def test_some_excluded_expenses_give_the_excluded_amount_and_the_remaining_base() -> None:
    raw = dossier()
    find(raw, "Dépenses prévisionnelles")["rows"][1] = expense("Frais de personnel", "Temps passé", 8000.0)
    assert check(raw) == [Finding("depenses_ineligibles", A_VERIFIER, "Dépenses d'une nature exclue : Frais de "
                                  "personnel (8 000 €) ; montant exclu 8 000 €, assiette éligible restante 12 000 €.")]


# ---------------------------------------------------------------- keywords


def test_urbanism_words_are_flagged_with_their_context() -> None:
    raw = texts(dossier(), "Dématérialiser les permis de construire avec Plat'AU.")
    assert check(raw) == [Finding("urbanisme", A_VERIFIER, "Le projet semble porter sur les autorisations d'urbanisme, "
                                  "exclues de cet appel (programme Démat.ADS) : « permis de "
                                  "construire » (Dématérialiser "
                                  "les permis de construire avec Plat'AU.) ; « Plat'AU » "
                                  "(…iser les permis de construire "
                                  "avec Plat'AU.).")]


def test_ads_inside_a_word_or_sve_without_urbanism_is_not_flagged() -> None:
    raw = texts(dossier(), "Les roads et les pads de la SVE des associations.")
    assert check(raw) == []


def test_archiving_words_are_flagged_for_axe_2() -> None:
    raw = texts(dossier(), "Mettre en place un SAE pour les archives communales.")
    assert check(raw) == [Finding("archivage", A_VERIFIER, "Le projet semble porter sur l'archivage, qui relève de "
                                  "l'Axe 2 : « SAE » (Mettre en place un SAE pour les archives "
                                  "communales.) ; « archives "
                                  "communales » (Mettre en place un SAE pour les archives communales.).")]


def test_the_payment_of_the_grant_is_not_archiving() -> None:
    assert check(texts(dossier(), "Le versement de la subvention interviendra en 2022.")) == []


def test_staff_words_are_flagged_accent_insensitively() -> None:
    raw = texts(dossier(), "La REMUNERATION d'un agent en CDD.")
    assert check(raw) == [Finding("depenses_ineligibles", A_VERIFIER, "Le texte évoque des frais de personnel, non "
                                  "finançables : « REMUNERATION » (La REMUNERATION d'un agent en CDD.) ; « CDD » (La "
                                  "REMUNERATION d'un agent en CDD.).")]


def test_poste_de_travail_is_equipment_not_a_staff_cost() -> None:
    raw = texts(dossier(), "Renouveler les postes de travail des agents.")
    assert check(raw) == [Finding("depenses_ineligibles", A_VERIFIER, "Le texte évoque un achat de matériel "
                                  "informatique, non finançable : « postes de travail » "
                                  "(Renouveler les postes de travail "
                                  "des agents.).")]


def test_formation_des_agents_is_an_eligible_theme_not_a_staff_cost() -> None:
    assert check(texts(dossier(), "Formation des agents à l'outil de gestion.")) == []


def test_recrutement_d_un_prestataire_is_not_a_staff_cost() -> None:
    assert check(texts(dossier(), "Recrutement d’un prestataire pour le développement.")) == []


def test_an_interactive_voice_server_cited_by_the_call_is_not_equipment() -> None:
    assert check(texts(dossier(), "Améliorer les parcours dans les serveurs vocaux interactifs.")) == []


def test_the_telephone_as_a_channel_to_users_is_not_equipment() -> None:
    assert check(texts(dossier(), "Les demandes arrivent par téléphone et au téléphone du standard.")) == []


def test_buying_telephones_is_still_flagged_as_equipment() -> None:
    raw = texts(dossier(), "Achat de téléphones pour les agents.")
    assert [f.rule for f in check(raw)] == ["depenses_ineligibles"]


# ---------------------------------------------------------------- pieces, partners, labo, limit, end date


def test_an_annexe_1_without_file_and_a_hidden_quote_are_missing_pieces() -> None:
    raw = drop(dossier(), "Devis de la prestation")
    find(raw, "Annexe 1 du cahier des charges")["files"] = []
    assert check(raw) == [Finding("pieces_manquantes", A_VERIFIER, "Pièces manquantes : « Annexe 1 du cahier des "
                                  "charges », devis (prestations prévues : Accompagnement par "
                                  "un prestataire (design de "
                                  "service, technique, conduite du changement), Développement).")]


def test_champs_hidden_by_a_condition_give_no_finding_when_not_needed() -> None:
    raw = drop(drop(dossier(), "Devis de la prestation"), "Solution numérique envisagée et justification de son choix")
    find(raw, "Dépenses prévisionnelles")["rows"] = [expense("Autre", "Frais de publication", 20000.0)]
    assert check(raw) == []


def test_a_multi_porteur_project_without_partners_or_contact_is_to_be_verified() -> None:
    raw = drop(dossier(), "Courriel du contact opérationnel")
    find(raw, "Le projet est-il porté par plusieurs collectivités ?")["yesNo"] = True
    assert check(raw) == [
        Finding("multi_porteurs", A_VERIFIER, "Projet déclaré porté par plusieurs collectivités, mais aucune "
                "collectivité partenaire n'est indiquée."),
        Finding("multi_porteurs", A_VERIFIER, "Projet porté par plusieurs collectivités sans contact opérationnel "
                "complet (nom et courriel)."),
    ]


def test_partners_listed_on_a_single_porteur_project_and_an_ineligible_partner_are_flagged() -> None:
    raw = dossier()
    raw["champs"].append(champ("RepetitionChamp", 1005, "Collectivités partenaires",
                               rows=[partner("Association des amis", "73282932000074", "9220")]))
    assert check(raw) == [
        Finding("multi_porteurs", A_VERIFIER, "Projet déclaré porté par une seule collectivité, mais 1 partenaire(s) "
                "indiqué(s)."),
        Finding("multi_porteurs", A_VERIFIER, "Partenaire « Association des amis » (SIRET 73282932000074) : catégorie "
                "juridique 9220, qui n'est pas celle d'un porteur éligible."),
    ]


def test_a_labo_dossier_without_laboratoire_nor_letter_is_to_be_verified() -> None:
    raw = dossier(key="labo")
    find(raw, "Laboratoire d'innovation territoriale qui accompagne le projet").update(text="", stringValue="")
    find(raw, "Lettre d'engagement du laboratoire d'innovation territoriale")["files"] = []
    assert check(raw, key="labo") == [
        Finding("labo_absent", A_VERIFIER, "Aucun laboratoire d'innovation territoriale n'est nommé."),
        Finding("labo_absent", A_VERIFIER, "La lettre d'engagement du laboratoire d'innovation territoriale est "
                "absente."),
    ]


def test_an_applicant_with_more_dossiers_than_the_limit_is_flagged() -> None:
    assert check(dossier(), counts={"210400016": 3}) == [Finding(
        "limite_porteur", A_VERIFIER, "Le porteur (SIREN 210400016) "
        "a déposé 3 dossiers sur les deux démarches, au-delà "
        "de la limite de 2 par porteur.")]


def test_an_applicant_at_the_limit_is_not_flagged() -> None:
    assert check(dossier(), counts={"210400016": 2}) == []


def test_a_project_ending_after_2022_is_to_be_verified() -> None:
    raw = dossier()
    find(raw, "Date prévisionnelle de fin du projet")["date"] = "2023-01-01"
    assert check(raw) == [Finding("calendrier", A_VERIFIER, "Fin du projet prévue le 01/01/2023, après le 31/12/2022 : "
                                  "l'appel attend des résultats tangibles d'ici 2022.")]


def test_a_project_ending_on_december_31_2022_is_in_time() -> None:
    raw = dossier()
    find(raw, "Date prévisionnelle de fin du projet")["date"] = "2022-12-31"
    assert check(raw) == []


# ---------------------------------------------------------------- donnees_illisibles


def test_a_required_champ_missing_from_the_form_is_unreadable_once() -> None:
    raw = drop(dossier(), "Montant de la subvention sollicitée (€)")
    assert check(raw) == [Finding("donnees_illisibles", A_VERIFIER, "Champ introuvable pour « Montant de la subvention "
                                  "sollicitée (€) » (rôle subvention, cherché : « Montant de la subvention sollicitée "
                                  "(€) ») : formulaire modifié ou correspondance à revoir.")]


def test_an_amount_champ_of_an_unexpected_type_is_unreadable() -> None:
    raw = dossier()
    find(raw, "Coût total du projet HT (€)").update(__typename="TextChamp", text="vingt mille")
    assert check(raw) == [Finding("donnees_illisibles", A_VERIFIER, "Le champ « Coût total du projet HT (€) » (rôle "
                                  "cout_total) est de type TextChamp alors qu'il faut un nombre : formulaire "
                                  "modifié ou correspondance à revoir.")]


def test_garbage_in_a_repetition_block_never_crashes_the_run() -> None:
    raw = dossier()
    find(raw, "Dépenses prévisionnelles")["rows"] = [{"id": "r1", "champs": "not a list"}]
    findings = check(raw)
    assert {f.rule for f in findings} == {"donnees_illisibles"}


# ---------------------------------------------------------------- priority


def test_a_small_zrr_commune_using_free_software_for_inclusion_scores_six(ref: refdata.RefData) -> None:
    raw = texts(dossier(), "Un logiciel libre pour la médiation numérique. " * 5)
    find(raw, "La solution retenue est-elle un logiciel libre ?")["yesNo"] = True
    prio = priority(Dossier(raw, "general", mappings_from_settings({})["general"]), Context(SETTINGS, ref))
    assert prio == {"zrr": 1.0, "taille": "petite", "population": 1432, "libre": True,
                    "libre_mots": ["logiciel libre"], "bonus": ["inclusion"], "score": 6.0,
                    "notes": ["description de la situation existante absente ou très courte"]}


def test_an_epci_gets_the_share_of_its_member_communes_in_zrr(ref: refdata.RefData) -> None:
    raw = dossier()
    raw["demandeur"]["entreprise"].update(siren="200054807", formeJuridiqueCode="7344")
    prio = priority(Dossier(raw, "general", mappings_from_settings({})["general"]), Context(SETTINGS, ref))
    assert (prio["zrr"], prio["taille"], prio["population"], prio["score"]) == (0.0, "grande", 1889666, 0.0)


def test_without_reference_data_the_priority_says_so() -> None:
    raw = copy.deepcopy(dossier())
    prio = priority(Dossier(raw, "general", mappings_from_settings({})["general"]), Context(SETTINGS, None))
    assert (prio["zrr"], prio["taille"], prio["notes"][0]) == (None, None, "données de référence absentes")


def test_a_piece_champ_holding_files_is_counted() -> None:
    raw = dossier()
    raw["champs"].append(files(1044, "Délibération ou engagement des collectivités partenaires", count=2))
    mapping = mappings_from_settings({})["general"]
    assert Dossier(raw, "general", mapping).files("piece_deliberation") == 2


# ---------------------------------------------------------------- the registry


def test_a_bug_in_a_rule_surfaces_as_a_bug_not_as_a_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(d: Dossier, ctx: Context) -> list[Finding]:
        return [Finding("calendrier", A_VERIFIER, d.raw["no such key"])]

    monkeypatch.setattr(engine, "REGISTRY", [engine.Rule("calendrier", broken)])
    with pytest.raises(KeyError, match="no such key"):
        check(dossier())


def test_only_unreadable_data_becomes_donnees_illisibles(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreadable(d: Dossier, ctx: Context) -> list[Finding]:
        raise engine.Unreadable("Champ illisible.")

    monkeypatch.setattr(engine, "REGISTRY", [engine.Rule("calendrier", unreadable)])
    assert check(dossier()) == [Finding("donnees_illisibles", A_VERIFIER, "Champ illisible.")]


def test_a_rule_id_is_declared_once() -> None:
    with pytest.raises(ValueError, match="declared twice"):
        engine.declare("calendrier", order=999, title="Calendrier", label="calendrier", family=(A_VERIFIER,))


def test_the_readme_rules_table_is_the_registry() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("| règle | statut | ce qui est vérifié |"):]
    lines = table.splitlines()[2:]
    end = next((i for i, line in enumerate(lines) if not line.startswith("|")), len(lines))
    rows = [line.split("|")[1:3] for line in lines[:end]]
    assert [(rule.strip(" `"), status.strip()) for rule, status in rows] == [
        (rule_id, " / ".join(STATUSES[s] for s in engine.SPECS[rule_id].family)) for rule_id in engine.RULE_IDS]


def test_the_workbook_and_the_annotation_name_rules_from_the_registry() -> None:
    assert (sheets.RULE_LABELS["hors_region"], annotate.RULE_LABELS["hors_region"], list(sheets.RULE_LABELS)) == (
        engine.SPECS["hors_region"].title, engine.SPECS["hors_region"].label, engine.RULE_IDS)


def test_keyword_scans_find_exactly_what_the_full_regex_scan_finds() -> None:
    from itn7cli.rules import priority as priority_module
    from itn7cli.rules import texte

    families = [texte.STAFF, texte.EQUIPMENT, texte.RECURRING, texte.URBANISM, texte.ARCHIVING, priority_module.LIBRE,
                *priority_module.BONUS.values()]
    raws = ["Recrutement d'un prestataire et recrutement de vacataires ; ETP, CDD et cdd.",
            "Postes de travail, poste de chargé de mission\x00plat'au, Plat'AU et plateforme Démat-ADS, ADS, SADS",
            "Serveur vocal interactif, serveurs, par téléphone, téléphones ; archivage électronique, SAE, versement",
            "logiciel libre sous AGPL ou GPL, gplx, agpl ; inclusion numérique, RGAA, formations, diagnostic",
            "urbanisme : SVE et DIA, saisine par voie électronique", "", "x" * 50]
    for family in families:
        for raw in raws:
            normalized = texte.normalize(raw)
            for scan, text in ((family.words, normalized), (family.acronyms, raw), (family.weak, raw),
                               (family.weak_words, normalized)):
                if scan.pattern is not None:
                    assert scan.spans(text) == [m.span() for m in scan.pattern.finditer(text)]


def test_a_pattern_s_literal_start_leaves_out_an_optional_last_character() -> None:
    from itn7cli.rules.texte import literal_prefix

    assert [literal_prefix(p) for p in (r"salaires?", r"recrut(?:er|ement)", r"embauch\w*", r"a?gpl", r"a|b",
                                        r"cart@ds")] == ["salaire", "recrut", "embauch", "", "", "cart@ds"]


def test_normalize_folds_a_cp1252_text_and_any_other_text_character_by_character() -> None:
    from itn7cli.rules import texte

    cp1252 = bytes(b for b in range(256) if b not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)).decode("cp1252")
    for text in (cp1252, "Déjà l’équipe « œuvre » à 5 € — ÉCOLE", "İstanbul ﬁnance Ωmega µ é"):
        assert texte.normalize(text) == "".join(texte._fold(char) for char in text)


def test_a_keyword_list_made_after_a_text_was_searched_finds_its_words_in_it() -> None:
    from itn7cli.rules import texte

    text = texte.normalize("Un tableur partagé et un wiki.")
    assert texte.hits(texte.STAFF, [(text, text)]) == []
    late = texte.Family(words=(r"tableurs?", r"wiki"), acronyms=("WIKI",))
    assert [word for word, _ in texte.hits(late, [(text, text)])] == ["tableur", "wiki"]


def test_keyword_hits_are_the_first_distinct_words_met_up_to_the_limit() -> None:
    from itn7cli.rules import texte

    raw = "Salaire, salaire, recrutement\x00ETP, embauche et vacataires"
    texts = [(raw, texte.normalize(raw))]
    assert [word for word, _ in texte.hits(texte.STAFF, texts)] == texte.matched_words(texte.STAFF, texts) == [
        "salaire", "recrutement", "etp"]
    assert texte.hits(texte.STAFF, texts, limit=1) == [("salaire", "« Salaire » (Salaire, salaire, recrutement)")]


def test_acronyms_and_false_positives_found_from_the_folded_text_are_those_of_the_full_regex_scan() -> None:
    from itn7cli.rules import priority as priority_module
    from itn7cli.rules import texte

    families = [texte.STAFF, texte.EQUIPMENT, texte.RECURRING, texte.URBANISM, texte.ARCHIVING, priority_module.LIBRE,
                *priority_module.BONUS.values()]
    raws = ["ETP, Etp, etp, ÉTP et ÉETP ; CDD’s, NAS/TBI, éADS, ADSé, SAE et Saé",
            "SVE, DIA et sve en urbanisme ; MIT, SILL et RGAA", "recrutement d'un prestataire, serveur vocal",
            "Formation des agents ; Recrutement du prestataire et recrutement des vacataires"]
    for family in families:
        for raw in raws:
            normalized = texte.normalize(raw)
            for scan, text in ((family.acronyms, raw), (family.weak, raw), (family.words, normalized),
                               (family.weak_words, normalized), (family.false_positives, normalized)):
                if scan.pattern is not None:
                    assert scan.spans(text, normalized) == [m.span() for m in scan.pattern.finditer(text)]


def test_a_keyword_whose_literal_start_is_not_ascii_is_looked_for_by_its_regex() -> None:
    from itn7cli.rules import texte

    scan = texte._Scan((r"écrans?",))
    assert (scan.prefixes, scan.spans("deux écrans, un écran")) == (None, [(5, 11), (16, 21)])


def test_a_family_is_found_in_a_text_exactly_when_it_has_matches_there() -> None:
    from itn7cli.rules import priority as priority_module
    from itn7cli.rules import texte

    families = [texte.STAFF, texte.EQUIPMENT, texte.RECURRING, texte.URBANISM, texte.ARCHIVING, priority_module.LIBRE,
                *priority_module.BONUS.values()]
    raws = ["Formation des agents, serveur vocal interactif, par téléphone", "formations et diagnostic ; RGAA",
            "SVE et DIA sans le contexte", "SVE en urbanisme", "citoyenneté", "rgaa, Sill", ""]
    for family in families:
        for raw in raws:
            normalized = texte.normalize(raw)
            assert family.found_in(raw, normalized) == bool(list(family.matches(raw, normalized))), (raw, family)
