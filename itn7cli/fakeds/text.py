"""French names, project texts and expense plans for generated dossiers."""

from __future__ import annotations

import random
import re
import unicodedata
from dataclasses import dataclass
from datetime import date

from .forms import EXPENSE_NATURES, INSCRIPTIONS, THEMES_GENERAL, THEMES_LABO

TITLES = {
    "general": "FITN7 – Axe 3 – Guichets territoriaux (PACA)",
    "labo": "FITN7 – Axe 3 – Projet appuyé par un laboratoire d'innovation territoriale (PACA)",
}
FORMES = {
    "7210": "Commune et commune nouvelle",
    "7220": "Département",
    "7230": "Région",
    "7343": "Communauté urbaine",
    "7344": "Métropole",
    "7346": "Communauté de communes",
    "7348": "Communauté d'agglomération",
    "7355": "Syndicat mixte ouvert",
    "9220": "Association déclarée",
}
LABOS = (
    "La 27e Région",
    "Lab'Sud — laboratoire d'innovation publique",
    "Lab Zéro (Région Sud)",
    "TerriLab 13",
    "Lab'Var Innovation",
)
FIRST = (
    "Camille",
    "Julien",
    "Sophie",
    "Mathieu",
    "Élodie",
    "Nicolas",
    "Aurélie",
    "Thomas",
    "Céline",
    "François",
    "Marion",
    "Sébastien",
    "Laure",
    "Olivier",
    "Chloé",
    "Rémi",
    "Hélène",
    "Loïc",
    "Anaïs",
    "Yannick",
)
LAST = (
    "Martin",
    "Bernard",
    "Roux",
    "Fabre",
    "Giraud",
    "Blanc",
    "Garcia",
    "Michel",
    "Lefèvre",
    "Arnaud",
    "Mercier",
    "Bonnet",
    "Faure",
    "Gauthier",
    "Chevalier",
    "Rolland",
    "Ferrand",
    "Pellegrin",
    "Bérard",
    "Olivé",
)
MONTHS = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)

SUBJECTS = (
    (
        "Guichet numérique unique des démarches de la collectivité",
        "Les usagers doivent encore se déplacer en mairie pour la plupart des démarches ; les formulaires papier "
        "sont ressaisis par les agents.",
    ),
    (
        "Portail citoyen et prise de rendez-vous en ligne",
        "Les demandes arrivent par téléphone et par courriel sans suivi ; les délais de réponse s'allongent.",
    ),
    (
        "Dématérialisation de la gestion des inscriptions scolaires et périscolaires",
        "Les familles remplissent chaque année des dossiers papier ; le traitement mobilise deux agents pendant "
        "plusieurs semaines.",
    ),
    (
        "Relation usagers : gestion des demandes citoyennes (GRC)",
        "Les signalements (voirie, propreté, éclairage) ne sont pas tracés et les usagers n'ont pas de retour.",
    ),
    (
        "Schéma directeur de la transformation numérique",
        "La collectivité ne dispose pas d'une vision d'ensemble de son système d'information ni de ses priorités.",
    ),
    (
        "Plateforme de participation citoyenne",
        "Les concertations se tiennent uniquement en réunion publique et touchent peu d'habitants.",
    ),
    (
        "Montée en compétences numériques des services",
        "Une enquête interne montre que la moitié des agents se sentent en difficulté avec les outils numériques.",
    ),
    (
        "Accueil numérique mutualisé en France services",
        "Les habitants éloignés du numérique ne trouvent pas d'accompagnement de proximité.",
    ),
)
KEYWORD_LINES = {
    "urbanisme": "Le projet prévoit la dématérialisation de l'instruction du permis de construire et des "
    "autorisations d'urbanisme (saisine par voie électronique).",
    "archivage": "Il comprend la mise en place d'un système d'archivage électronique (SAE) pour les archives "
    "communales.",
    "personnel": "Le financement couvre le recrutement d'un chargé de mission numérique pendant deux ans.",
    "materiel": "Le renouvellement de chaque poste de travail des agents d'accueil est prévu.",
}
POSITIVE = (
    "Un volet de formation des agents accompagne le déploiement.",
    "La solution retenue est un logiciel libre, mutualisé avec d'autres collectivités.",
    "Le projet s'inscrit dans une démarche d'inclusion numérique, avec des médiateurs numériques.",
    "Un diagnostic et une analyse des besoins des usagers ont été menés avec le centre social.",
    "Les démarches seront accessibles aux personnes en situation de handicap (RGAA).",
)
SERVICE_LINES = {
    EXPENSE_NATURES[0]: ("Diagnostic et schéma directeur", 6_000, 18_000),
    EXPENSE_NATURES[1]: ("Accompagnement au design de service", 5_000, 25_000),
    EXPENSE_NATURES[2]: ("Développement et paramétrage de la plateforme", 8_000, 45_000),
    EXPENSE_NATURES[3]: ("Formation des agents utilisateurs", 1_500, 8_000),
    EXPENSE_NATURES[4]: ("Recrutement d'un chargé de mission (12 mois)", 25_000, 45_000),
    EXPENSE_NATURES[5]: ("Achat de postes de travail et tablettes", 3_000, 15_000),
    EXPENSE_NATURES[6]: ("Communication auprès des habitants", 800, 4_000),
}


@dataclass
class Project:
    """The text and budget of one generated project."""

    title: str
    theme: str
    description: str
    objectives: str
    solution: str
    free_software: bool
    inscriptions: list[str]
    expenses: list[tuple[str, str, float]]


def slug(value: str) -> str:
    """ASCII lower-case slug, for e-mail addresses and filenames."""
    ascii_value = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_value.lower()).strip("-")


def person(r: random.Random) -> tuple[str, str]:
    """A French first and last name."""
    return r.choice(FIRST), r.choice(LAST)


def email(first: str, last: str, domain: str) -> str:
    """first.last@domain."""
    return f"{slug(first)}.{slug(last)}@{domain}"


def domain(name: str) -> str:
    """A plausible mail domain for a collectivité."""
    base = slug(name.replace("Commune de ", "").replace("Commune d'", ""))[:40] or "mairie"
    return f"{base}.fr"


def usager_email(r: random.Random, name: str) -> str:
    """The e-mail of the account that filed the dossier."""
    first, last = person(r)
    return email(first, last, domain(name))


def phone(r: random.Random) -> str:
    """A French phone number in the PACA range."""
    return "04 " + " ".join(f"{r.randint(0, 99):02d}" for _ in range(4))


def french_date(iso: str) -> str:
    """'2022-06-30' → '30 juin 2022' (how DS renders dates in stringValue)."""
    d = date.fromisoformat(iso)
    return f"{d.day} {MONTHS[d.month - 1]} {d.year}"


def motivation(r: random.Random, state: str) -> str:
    """A decision motivation."""
    return {
        "accepte": "Projet retenu par le comité régional de sélection.",
        "refuse": r.choice(["Projet hors du champ de l'appel à projets.", "Dépenses non éligibles."]),
        "sans_suite": "Dossier incomplet, sans réponse du porteur.",
    }[state]


def comment(r: random.Random, avis: str) -> str:
    """A référent's comment."""
    return r.choice(
        [
            f"Avis {avis.lower()} : projet cohérent avec la feuille de route départementale.",
            "À rapprocher du projet de l'EPCI voisin.",
            "Montant à confirmer après devis définitif.",
        ]
    )


def project(r: random.Random, index: int, key: str) -> Project:
    """A project; some indices carry the keywords and budgets that make the rules fire."""
    title, situation = SUBJECTS[r.randrange(len(SUBJECTS))]
    lines = [situation]
    if index % 43 == 2:
        lines.append(KEYWORD_LINES["urbanisme"])
        title = "Dématérialisation des autorisations d'urbanisme"
    if index % 47 == 3:
        lines.append(KEYWORD_LINES["archivage"])
    if index % 59 == 4:
        lines.append(KEYWORD_LINES["personnel"])
    if index % 61 == 6:
        lines.append(KEYWORD_LINES["materiel"])
    positives = r.sample(POSITIVE, r.randint(1, 3))
    free = any("logiciel libre" in p for p in positives) or r.random() < 0.3
    eligible = [n for n in EXPENSE_NATURES if n not in (EXPENSE_NATURES[4], EXPENSE_NATURES[5])]
    natures = r.sample(eligible, r.randint(1, 4))
    if index % 29 == 10:
        natures.append(EXPENSE_NATURES[4])
    if index % 31 == 11:
        natures.append(EXPENSE_NATURES[5])
    if index in (27, 57):
        natures = [EXPENSE_NATURES[4], EXPENSE_NATURES[5]]
    expenses = []
    for nature in natures:
        label, low, high = SERVICE_LINES[nature]
        expenses.append((nature, label, float(r.randint(low // 50, high // 50) * 50 + r.choice([0, 0, 0.5]))))
    return Project(
        title=title,
        theme=(THEMES_LABO[0] if key == "labo" else r.choice(THEMES_GENERAL)),
        description=" ".join(lines),
        objectives="Simplifier les démarches des habitants et réduire les délais de traitement. " + positives[0],
        solution=" ".join(positives[1:]) or "Solution éprouvée, choisie après consultation de trois éditeurs.",
        free_software=free,
        inscriptions=sorted(r.sample(INSCRIPTIONS, r.randint(0, 2))),
        expenses=expenses,
    )
