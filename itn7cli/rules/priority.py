"""Priority criteria of the call (RULES.md « Priority criteria »): information for the committee,
never a reason to reject.

The score, out of 9:
- ZRR: 2 × the share of the applicant's communes classified in ZRR (a commune: 0 or 2; an EPCI,
  a département or the Région: the share of its PACA member communes);
- size (population municipale 2021): petite 2, moyenne 1, grande 0;
- free software: 1 when the form says so or the texts speak of free software / reuse;
- 1 per bonus theme found in the texts or ticked in « Le projet s'inscrit dans »: inclusion
  numérique, citoyenneté, emploi/formation, diagnostic/analyse des besoins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from .engine import Context, Unreadable
from .mapping import Dossier
from .texte import Family, Text, matched_words, normalize, project_texts

LIBRE = Family(
    words=(r"logiciels? libres?", r"open source", r"code source (?:ouvert|publie)", r"licence libre", r"agpl", r"gpl",
           r"eupl", r"mutualis(?:e|ee|es|ees|ation)", r"reutilis(?:able|ation)", r"reproductible", r"essaimage",
           r"communs? numeriques?", r"adullact", r"comptoir du libre", r"incubateur des territoires"),
    acronyms=("MIT", "SILL"),
)
BONUS = {
    "inclusion": Family(
        words=(r"inclusion numerique", r"mediation numerique", r"conseillers? numeriques?", r"fracture numerique",
               r"illectronisme", r"aidants connect", r"france services", r"pass numerique", r"accessibilite",
               r"publics? eloignes?"),
        acronyms=("RGAA",)),
    "citoyennete": Family(
        words=(r"citoyennete", r"participation citoyenne", r"democratie participative", r"budgets? participatifs?",
               r"consultations? (?:citoyennes?|publiques?)", r"concertation", r"civic ?tech", r"decidim",
               r"conseils? citoyens?")),
    "emploi_formation": Family(
        words=(r"formations?", r"montee en competences?", r"acculturation", r"pix", r"tutorat", r"emploi",
               r"insertion", r"apprentissage", r"alternance")),
    "diagnostic": Family(
        words=(r"diagnostics?", r"analyse des besoins", r"etat des lieux", r"enquetes? (?:usagers|agents)",
               r"schemas? directeurs?")),
}
# Options of « Le projet s'inscrit dans » (forms.json), by accent-free prefix.
INSCRIPTION_THEMES = {"une demarche d'inclusion": "inclusion", "la reprise de l'emploi": "emploi_formation",
                      "l'exercice de la citoyennete": "citoyennete"}
SHORT_DESCRIPTION = 200  # characters: "an empty or very short description" (REFERENCE.md B5)
MISSING_REFDATA = "données de référence absentes"
T = TypeVar("T")


def size_class(population: int | None, ctx: Context) -> str | None:
    if population is None:
        return None
    if population < ctx.settings.taille_petite:
        return "petite"
    return "moyenne" if population <= ctx.settings.taille_grande else "grande"


def territory(d: Dossier, ctx: Context, notes: list[str]) -> tuple[float | None, int | None]:
    """(share of ZRR communes, population municipale 2021) of the applicant, from the reference data."""
    if ctx.refdata is None or ctx.refdata.empty:
        notes.append(MISSING_REFDATA)
        return None, None
    found = ctx.refdata.applicant(d.siren, d.city_code if d.cj == "7210" else None)
    if found is None:
        notes.append(f"porteur absent des données de référence (SIREN {d.siren or 'inconnu'})")
        declared = readable(notes, lambda: d.amount("population")[1] if d.champ("population") else None, None)
        if declared is not None:
            notes.append("population déclarée par le porteur")
        return None, int(declared) if declared is not None else None
    return found


def themes(d: Dossier, texts: list[Text], notes: list[str]) -> list[str]:
    found = {name for name, family in BONUS.items() if any(family.found_in(*text) for text in texts)}
    ticked: list[str] = readable(notes, lambda: d.values("inscription"), [])
    for value in map(normalize, ticked):
        for prefix, name in INSCRIPTION_THEMES.items():
            if value.startswith(prefix):
                found.add(name)
    return sorted(found)


def readable(notes: list[str], read: Callable[[], T], default: T) -> T:
    """`read()`, or `default` with the reason in the notes when its champ cannot be read: one criterion
    lost, never the whole score."""
    try:
        return read()
    except Unreadable as exc:
        notes.append(exc.message)
        return default


def priority(d: Dossier, ctx: Context) -> dict[str, Any]:
    """The priority criteria and the documented score of one dossier; unreadable champs become notes."""
    notes: list[str] = []
    zrr, population = territory(d, ctx, notes)
    texts: list[Text] = readable(notes, lambda: project_texts(d), [])
    declared_libre = readable(notes, lambda: d.yes_no("logiciel_libre"), None)
    libre_words = matched_words(LIBRE, texts)
    bonus = themes(d, texts, notes)
    taille = size_class(population, ctx)
    if len(readable(notes, lambda: d.text("situation"), "")) < SHORT_DESCRIPTION:
        notes.append("description de la situation existante absente ou très courte")
    score = (2 * (zrr or 0.0) + {"petite": 2, "moyenne": 1}.get(taille or "", 0)
             + (1 if declared_libre or libre_words else 0) + len(bonus))
    return {"zrr": None if zrr is None else round(zrr, 2), "taille": taille, "population": population,
            "libre": declared_libre, "libre_mots": libre_words, "bonus": bonus, "score": round(score, 1),
            "notes": list(dict.fromkeys(notes))}
