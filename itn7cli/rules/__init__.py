"""The eligibility rules of the ITN7 Axe 3 call. Importing this package registers every rule, in the
order findings are listed: applicant, territory, dates, money, texts, attachments, partners, labo, limit."""

from . import budget, calendrier, labo, limite, partenaires, pieces, porteur, texte  # noqa: F401  (registration)
from .engine import (
    A_VERIFIER,
    ELIGIBLE,
    INELIGIBLE,
    REGISTRY,
    RULESET_VERSION,
    SEVERITY,
    Context,
    Finding,
    evaluate,
    session_for,
    worst,
)
from .mapping import ROLES, Dossier, RoleMap, mappings_from_settings

__all__ = [
    "A_VERIFIER", "ELIGIBLE", "INELIGIBLE", "REGISTRY", "ROLES", "RULESET_VERSION", "SEVERITY", "Context",
    "Dossier", "Finding", "RoleMap", "evaluate", "mappings_from_settings", "session_for", "worst",
]
