"""The limit of dossiers per applicant (RULES.md `limite_porteur`), counted across both démarches.

The counts come from the context: the orchestration counts every non-deleted dossier by SIREN.
"""

from __future__ import annotations

from collections.abc import Iterable

from .engine import A_VERIFIER, Context, Finding, rule
from .mapping import Dossier


@rule("limite_porteur", order=120, title="Dossiers par porteur", label="trop de dossiers du même porteur",
      family=(A_VERIFIER,))
def limite_porteur(d: Dossier, ctx: Context) -> Iterable[Finding]:
    """The same applicant (SIREN) has more dossiers than the configured limit: all of them are flagged."""
    if not d.siren:
        return
    count = ctx.siren_counts.get(d.siren, 0)
    limit = ctx.settings.limite_porteur
    if count > limit:
        yield Finding("limite_porteur", A_VERIFIER, f"Le porteur (SIREN {d.siren}) a déposé {count} dossiers sur les "
                      f"deux démarches, au-delà de la limite de {limit} par porteur.")
