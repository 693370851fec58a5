"""Money (RULES.md `depenses_ineligibles` by expense nature, `plafond_commune`, `incoherence_montants`)."""

from __future__ import annotations

import functools
from collections.abc import Iterable

from .engine import A_VERIFIER, ELIGIBLE, INELIGIBLE, Context, Finding, euros, rule
from .mapping import ChampSource, Dossier
from .porteur import is_commune, is_epci
from .texte import normalize

# Natures of the expense drop-down the call excludes (staff, IT equipment), compared without accents.
EXCLUDED_NATURES = ("frais de personnel", "achat de materiel informatique")
TOLERANCE = 1.0  # euros: rounding of HT amounts typed by hand


def expense_lines(d: Dossier) -> list[tuple[str, float | None]]:
    """(nature, amount) of every expense line; the block itself is required."""
    lines: list[tuple[str, float | None]] | None = d.cache.get("expense_lines")
    if lines is None:  # two rules read them; an unreadable block raises at each, as it is not cached
        lines = d.cache["expense_lines"] = [(row.text("depense_nature"), _line_amount(row))
                                            for row in d.rows("depenses", required=True)]
    return lines


def _line_amount(row: ChampSource) -> float | None:
    return row.amount("depense_montant", required=True)[1]


@functools.lru_cache(maxsize=1024)  # a drop-down's few values, on every line of every dossier
def is_excluded(nature: str) -> bool:
    return normalize(nature).startswith(EXCLUDED_NATURES)


@rule("depenses_ineligibles", order=40, title="Dépenses inéligibles", label="dépenses non finançables",
      family=(INELIGIBLE, A_VERIFIER))
def depenses_par_nature(d: Dossier, ctx: Context) -> Iterable[Finding]:
    """Expense lines of an excluded nature: all of them → ineligible; some → review with the remaining base."""
    lines = expense_lines(d)
    excluded = [(nature, amount or 0.0) for nature, amount in lines if is_excluded(nature)]
    if not excluded:
        return
    detail = ", ".join(f"{nature} ({euros(amount)})" for nature, amount in excluded)
    if len(excluded) == len(lines):
        yield Finding("depenses_ineligibles", INELIGIBLE, f"Toutes les dépenses sont d'une nature exclue par l'appel "
                      f"(personnel, matériel informatique) : {detail}.")
        return
    excluded_total = sum(amount for _, amount in excluded)
    base = sum(amount or 0.0 for _, amount in lines) - excluded_total
    yield Finding("depenses_ineligibles", A_VERIFIER, f"Dépenses d'une nature exclue : {detail} ; montant exclu "
                  f"{euros(excluded_total)}, assiette éligible restante {euros(base)}.")


@rule("plafond_commune", order=50, title="Plafond commune", label="plafond communal dépassé",
      family=(A_VERIFIER,))
def plafond_commune(d: Dossier, ctx: Context) -> Iterable[Finding]:
    """A single commune asks more than the cap; an EPCI over the cap is information unless configured."""
    _, requested = d.amount("subvention", required=True)
    cap = ctx.settings.plafond_commune
    if requested is None or requested <= cap:
        return
    if is_commune(d) and d.yes_no("multi_porteur") is not True:
        yield Finding("plafond_commune", A_VERIFIER, f"Une commune seule demande {euros(requested)}, au-delà du "
                      f"plafond de {euros(cap)} : montant plafonné à {euros(cap)}.")
    elif is_epci(d):
        status = A_VERIFIER if ctx.settings.plafond_epci_statut else ELIGIBLE
        yield Finding("plafond_commune", status, f"Information : l'EPCI demande {euros(requested)}, au-delà du plafond "
                      f"communal de {euros(cap)} ; un financement assoupli est possible pour les EPCI de communes "
                      "rurales, le comité décide.")


@rule("incoherence_montants", order=60, title="Montants incohérents", label="montants incohérents",
      family=(A_VERIFIER,))
def incoherence_montants(d: Dossier, ctx: Context) -> Iterable[Finding]:
    """Missing or negative amounts, a grant above the cost, a cost unlike the sum of expense lines."""
    cost_champ, cost = d.amount("cout_total", required=True)
    grant_champ, grant = d.amount("subvention", required=True)
    problems = []
    for champ, value in ((cost_champ, cost), (grant_champ, grant)):
        label = champ.get("label") if champ else "?"
        if value is None:
            problems.append(f"montant non renseigné : « {label} »")
        elif value < 0:
            problems.append(f"montant négatif : « {label} » = {euros(value)}")
    if cost is not None and grant is not None and grant > cost:
        problems.append(f"la subvention demandée ({euros(grant)}) dépasse le coût total du projet ({euros(cost)})")
    lines = expense_lines(d)
    missing = [str(i) for i, (_, amount) in enumerate(lines, start=1) if amount is None]
    if missing:
        problems.append(f"dépense sans montant (ligne {', '.join(missing)})")
    if not lines:
        problems.append("aucune dépense prévisionnelle détaillée")
    elif cost is not None:
        total = sum(amount or 0.0 for _, amount in lines)
        if abs(total - cost) > TOLERANCE:
            problems.append(f"le coût total ({euros(cost)}) diffère de la somme des dépenses ({euros(total)}), "
                            f"écart {euros(abs(total - cost))}")
    if problems:
        text = " ; ".join(problems)
        yield Finding("incoherence_montants", A_VERIFIER, f"Montants incohérents : {text}.")
