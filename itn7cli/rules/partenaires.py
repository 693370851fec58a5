"""Projects carried by several collectivités (RULES.md `multi_porteurs`)."""

from __future__ import annotations

from collections.abc import Iterable

from .engine import A_VERIFIER, Context, Finding, rule
from .mapping import Dossier
from .porteur import ELIGIBLE_CJ, REVIEW_CJ, valid_siret


@rule("multi_porteurs", order=110, title="Multi-porteurs", label="partenaires à vérifier",
      family=(A_VERIFIER,))
def multi_porteurs(d: Dossier, ctx: Context) -> Iterable[Finding]:
    """Multi-porteur answer consistent with the partners listed, an operational contact, eligible partners."""
    multi = d.yes_no("multi_porteur", required=True)
    partners = [row for row in d.rows("partenaires")
                if row.text("partenaire_nom") or row.siret_champ("partenaire_siret")[0]]
    if multi and not partners:
        yield Finding("multi_porteurs", A_VERIFIER, "Projet déclaré porté par plusieurs collectivités, mais aucune "
                      "collectivité partenaire n'est indiquée.")
    if multi and not (d.text("contact_nom") and d.text("contact_email")):
        yield Finding("multi_porteurs", A_VERIFIER, "Projet porté par plusieurs collectivités sans contact "
                      "opérationnel complet (nom et courriel).")
    if multi is False and partners:
        yield Finding("multi_porteurs", A_VERIFIER, f"Projet déclaré porté par une seule collectivité, mais "
                      f"{len(partners)} partenaire(s) indiqué(s).")
    for row in partners:
        name = row.text("partenaire_nom") or "sans nom"
        siret, cj = row.siret_champ("partenaire_siret")
        if not valid_siret(siret):
            yield Finding("multi_porteurs", A_VERIFIER, f"Partenaire « {name} » : SIRET invalide ou absent "
                          f"(« {siret} »).")
        elif cj is None:
            yield Finding("multi_porteurs", A_VERIFIER, f"Partenaire « {name} » (SIRET {siret}) : catégorie "
                          "juridique inconnue.")
        elif cj not in ELIGIBLE_CJ:
            kind = f" ({REVIEW_CJ[cj]})" if cj in REVIEW_CJ else ""
            yield Finding("multi_porteurs", A_VERIFIER, f"Partenaire « {name} » (SIRET {siret}) : catégorie juridique "
                          f"{cj}{kind}, qui n'est pas celle d'un porteur éligible.")
