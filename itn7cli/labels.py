"""The French labels a person reads, one table per concept: démarches, DS states, verdict statuses.

Rule titles live with the rules (their registry); everything else that names a code for a reader is here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DemarcheLabel:
    """How a démarche is named: in a sentence (« Démarche générale ») and in a narrow column (« Générale »)."""

    long: str
    short: str


DEMARCHES = {
    "general": DemarcheLabel("Démarche générale", "Générale"),
    "labo": DemarcheLabel("Démarche laboratoire d'innovation", "Laboratoire"),
}

# DS dossier states (DossierState in the API).
STATES = {
    "en_construction": "En construction", "en_instruction": "En instruction", "accepte": "Accepté",
    "refuse": "Refusé", "sans_suite": "Classé sans suite",
}

# Verdicts of `itn7 check`, lower case for use inside a sentence.
STATUSES = {"eligible": "éligible", "a_verifier": "à vérifier", "ineligible": "inéligible"}


def demarche(key: str | None, *, short: bool = False) -> str:
    """The label of a démarche key; an unknown key is shown as is."""
    label = DEMARCHES.get(key or "")
    if label is None:
        return key or ""
    return label.short if short else label.long
