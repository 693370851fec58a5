"""The eligibility rules of the ITN7 Axe 3 call.

Importing this package imports every rule module beside it, which declares and registers its rules:
adding a rule is one module (plus its tests). Findings are listed in the rules' declared order:
applicant, territory, dates, money, texts, attachments, partners, labo, limit, end date.
"""

import importlib
import pkgutil

from . import engine
from .engine import (
    A_VERIFIER,
    ELIGIBLE,
    INELIGIBLE,
    REGISTRY,
    RULE_IDS,
    RULESET_VERSION,
    SEVERITY,
    SPECS,
    Context,
    Finding,
    RuleSpec,
    Unreadable,
    evaluate,
    session_for,
    worst,
)
from .mapping import ROLES, Dossier, FormMap, RoleMap, mappings_from_settings, resolve

# Modules that hold no rule: the machinery, and the priority score (information, not a verdict).
NOT_RULES = {"engine", "mapping", "priority"}
for _module in pkgutil.iter_modules(__path__):
    if _module.name not in NOT_RULES:
        importlib.import_module(f"{__name__}.{_module.name}")
engine.check_registry()

__all__ = [
    "A_VERIFIER", "ELIGIBLE", "INELIGIBLE", "REGISTRY", "ROLES", "RULESET_VERSION", "RULE_IDS", "SEVERITY", "SPECS",
    "Context", "Dossier", "Finding", "FormMap", "RoleMap", "RuleSpec", "Unreadable", "evaluate",
    "mappings_from_settings", "resolve", "session_for", "worst",
]
