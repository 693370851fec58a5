"""Attachments (RULES.md `pieces_manquantes`)."""

from __future__ import annotations

from collections.abc import Iterable

from .engine import A_VERIFIER, Context, Finding, rule
from .mapping import Dossier
from .texte import normalize

# Expense natures bought from a provider: they need a quote ("devis de la prestation s'il y a lieu").
SERVICE_NATURES = ("etude", "accompagnement", "developpement", "formation")


@rule("pieces_manquantes", order=90, title="Pièces manquantes", label="pièces manquantes",
      family=(A_VERIFIER,))
def pieces_manquantes(d: Dossier, ctx: Context) -> Iterable[Finding]:
    """No presentation document, no annexe 1, or no quote while expense lines buy a service."""
    missing = []
    for role in ("piece_presentation", "piece_annexe1"):
        if not d.files(role, required=True):
            missing.append(f"« {d.champ(role, required=True)['label']} »")  # type: ignore[index]
    natures = {row.text("depense_nature") for row in d.rows("depenses", required=True)}
    services = sorted(nature for nature in natures if normalize(nature).startswith(SERVICE_NATURES))
    if services and not d.files("piece_devis"):
        missing.append(f"devis (prestations prévues : {', '.join(services)})")
    if missing:
        yield Finding("pieces_manquantes", A_VERIFIER, f"Pièces manquantes : {', '.join(missing)}.")
