"""Who applies and where (RULES.md `porteur_type`, `hors_region`).

Catégories juridiques are INSEE level III codes (REFERENCE.md §1); the territory is derived from
the INSEE commune code of the seat, never from the postal code (REFERENCE.md §2).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from stdnum.fr import siret as siret_number

from .engine import A_VERIFIER, ELIGIBLE, INELIGIBLE, Context, Finding, rule
from .mapping import Dossier

ELIGIBLE_CJ = {
    "7210": "commune", "7220": "département", "7230": "région", "7343": "communauté urbaine",
    "7344": "métropole", "7346": "communauté de communes", "7348": "communauté d'agglomération",
}
# Legally close to an eligible applicant but not listed by the call: the committee decides.
REVIEW_CJ = {
    "7345": "SIVOM", "7353": "SIVU", "7229": "autre collectivité territoriale",
    "7349": "autre établissement public local de coopération", "7354": "syndicat mixte fermé",
    "7355": "syndicat mixte ouvert", "7357": "PETR", "7340": "pôle métropolitain",
}
# Ineligible, with the body that should have applied instead.
REDIRECT_CJ = {
    "7312": "c'est la commune nouvelle qui doit déposer le dossier",
    "7361": "c'est la commune de rattachement qui doit déposer le dossier",
    "7367": "c'est l'EPCI de rattachement qui doit déposer le dossier",
}
COMMUNE_CJ = "7210"
EPCI_CJ = {"7343", "7344", "7346", "7348", "7345", "7353"}
PACA_DEPARTEMENTS = ("04", "05", "06", "13", "83", "84")
LISTED = "communes, EPCI, métropoles, départements et Région"


@functools.lru_cache(maxsize=65536)
def valid_siret(siret: str) -> bool:
    """python-stdnum's SIRET check, once per distinct number: the same collectivités apply again and again."""
    return bool(siret_number.is_valid(siret))


def departement_of(commune_code: str) -> str:
    """The département of an INSEE commune code: 3 characters overseas (97x), else 2 (2A/2B kept)."""
    code = commune_code.strip().upper()
    return code[:3] if code.startswith("97") else code[:2]


def is_commune(d: Dossier) -> bool:
    """A commune by its catégorie juridique, or by the form's type when DS gave no code."""
    if d.cj:
        return d.cj == COMMUNE_CJ
    return d.text("type_collectivite").lower() == "commune"


def is_epci(d: Dossier) -> bool:
    if d.cj:
        return d.cj in EPCI_CJ
    return d.text("type_collectivite").lower() in ("epci", "métropole")


@rule("porteur_type", order=10, title="Type de porteur", label="type de porteur",
      family=(INELIGIBLE, A_VERIFIER))
def porteur_type(d: Dossier, ctx: Context) -> Iterable[Finding]:
    """The applicant must be a commune, département, région or EPCI à fiscalité propre (INSEE code)."""
    if d.demandeur_type == "PersonnePhysique":
        yield Finding("porteur_type", INELIGIBLE, f"Le demandeur est une personne physique : seuls les {LISTED} "
                      "peuvent candidater.")
        return
    if d.siret and not valid_siret(d.siret):
        yield Finding("porteur_type", A_VERIFIER, f"Le SIRET du demandeur {d.siret} est invalide.")
    if d.demandeur_type == "PersonneMoraleIncomplete":
        yield Finding("porteur_type", A_VERIFIER, f"Le demandeur (SIRET {d.siret or 'inconnu'}) n'a pas été "
                      "identifié par Démarche Numérique : vérifier sa catégorie juridique.")
        return
    if not d.cj:
        yield Finding("porteur_type", A_VERIFIER, f"Catégorie juridique du demandeur inconnue (SIRET "
                      f"{d.siret or 'inconnu'}) : vérifier qu'il s'agit d'une collectivité éligible.")
        return
    label = d.forme_juridique or REVIEW_CJ.get(d.cj) or "type non listé"
    if d.cj in ELIGIBLE_CJ:
        return
    if d.cj in REVIEW_CJ:
        yield Finding("porteur_type", A_VERIFIER, f"Catégorie juridique {d.cj} ({label}) : ce porteur n'est pas "
                      f"expressément cité par l'appel ({LISTED}), le comité décide.")
        return
    hint = f" ; {REDIRECT_CJ[d.cj]}" if d.cj in REDIRECT_CJ else ""
    yield Finding("porteur_type", INELIGIBLE, f"Catégorie juridique {d.cj} ({label}) : seuls les {LISTED} "
                  f"peuvent candidater{hint}.")


@rule("hors_region", order=20, title="Hors région", label="siège hors région",
      family=(INELIGIBLE, A_VERIFIER))
def hors_region(d: Dossier, ctx: Context) -> Iterable[Finding]:
    """The applicant's seat must be in PACA (départements 04, 05, 06, 13, 83, 84)."""
    if d.demandeur_type == "PersonnePhysique":
        return  # no seat to locate; porteur_type already rejects it
    if d.city_code:
        departement, source = departement_of(d.city_code), f"commune {d.city_code}"
    elif d.department_code:
        departement, source = d.department_code, "adresse du siège"
    else:
        yield Finding("hors_region", A_VERIFIER, "Siège du demandeur inconnu (ni code commune INSEE ni "
                      "département) : vérifier qu'il est en Provence-Alpes-Côte d'Azur.")
        return
    if departement not in PACA_DEPARTEMENTS:
        yield Finding("hors_region", INELIGIBLE, f"Le siège du demandeur est hors de la région Provence-Alpes-Côte "
                      f"d'Azur : département {departement} ({source}).")
        return
    epci = ctx.refdata.epci(d.siren) if ctx.refdata and d.siren else None
    if epci and epci.get("nb_communes", 0) > epci.get("nb_communes_paca", 0):
        yield Finding("hors_region", ELIGIBLE, f"Information : l'EPCI {epci.get('epci_nom')} compte des communes hors "
                      f"région (départements {epci.get('departements', '').replace('|', ', ')}).")
