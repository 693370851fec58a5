"""The « laboratoire d'innovation » démarche (RULES.md `labo_absent`)."""

from __future__ import annotations

from collections.abc import Iterable

from .engine import A_VERIFIER, Context, Finding, rule
from .mapping import Dossier


@rule("labo_absent", order=100, title="Laboratoire absent", label="laboratoire d'innovation absent",
      family=(A_VERIFIER,))
def labo_absent(d: Dossier, ctx: Context) -> Iterable[Finding]:
    """Démarche « labo »: a laboratoire d'innovation territoriale must be named, with its engagement letter."""
    if d.demarche_key != "labo":
        return
    if not d.text("laboratoire", required=True):
        yield Finding("labo_absent", A_VERIFIER, "Aucun laboratoire d'innovation territoriale n'est nommé.")
    if not d.files("lettre_laboratoire", required=True):
        yield Finding("labo_absent", A_VERIFIER, "La lettre d'engagement du laboratoire d'innovation territoriale "
                      "est absente.")
