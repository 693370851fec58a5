"""Dates (RULES.md `hors_delai`, `calendrier`): the call's closings and the projects' end dates."""

from __future__ import annotations

from collections.abc import Iterable

from .engine import A_VERIFIER, INELIGIBLE, Context, Finding, Unreadable, paris_text, parse_instant, rule
from .mapping import Dossier


@rule("hors_delai", order=30, title="Hors délai", label="déposé hors délai",
      family=(INELIGIBLE,))
def hors_delai(d: Dossier, ctx: Context) -> Iterable[Finding]:
    """Filed after the last closing of the calendar (compared as instants, Paris time)."""
    filed = parse_instant(d.date_depot)
    if filed is None:
        raise Unreadable(f"Date de dépôt absente ou illisible (« {d.date_depot} ») : session impossible à déterminer.")
    last = max(ctx.settings.sessions)
    if filed > last:
        yield Finding("hors_delai", INELIGIBLE, f"Dossier déposé le {paris_text(filed)} (heure de Paris), après la "
                      f"dernière clôture de l'appel, le {paris_text(last)}.")


@rule("calendrier", order=130, title="Calendrier", label="calendrier du projet",
      family=(A_VERIFIER,))
def calendrier(d: Dossier, ctx: Context) -> Iterable[Finding]:
    """Planned end date after the call's horizon (results expected by the end of 2022)."""
    champ, end = d.date("date_fin", required=True)
    limit = ctx.settings.fin_projet_max
    if end is None:
        yield Finding("calendrier", A_VERIFIER, f"Date prévisionnelle de fin du projet non renseignée (champ "
                      f"« {champ and champ.get('label')} »).")
    elif end > limit:
        yield Finding("calendrier", A_VERIFIER, f"Fin du projet prévue le {end:%d/%m/%Y}, après le {limit:%d/%m/%Y} : "
                      "l'appel attend des résultats tangibles d'ici 2022.")
