"""The rule engine: findings and statuses, the registry of rules, sessions, evaluation of one dossier.

Every rule is a small function registered under its id from RULES.md. A rule yields findings;
a champ it cannot read raises `Unreadable`, which the engine turns into a `donnees_illisibles`
finding, so a changed form never crashes a run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..config import PARIS, Settings

if TYPE_CHECKING:
    from ..refdata import RefData
    from .mapping import Dossier

# Bump whenever a rule, a keyword list or the score changes: every stored result becomes stale.
RULESET_VERSION = "2021.3-2"

ELIGIBLE = "eligible"
A_VERIFIER = "a_verifier"
INELIGIBLE = "ineligible"
SEVERITY = {ELIGIBLE: 0, A_VERIFIER: 1, INELIGIBLE: 2}
STATUS_LABELS = {ELIGIBLE: "éligible", A_VERIFIER: "à vérifier", INELIGIBLE: "inéligible"}


@dataclass(frozen=True, slots=True)
class Finding:
    """One verdict of one rule on one dossier; the message is French and names the triggering value."""

    rule: str
    status: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "status": self.status, "message": self.message}


class Unreadable(Exception):
    """A champ a rule needs is missing or has an unexpected type (form changed, mapping wrong)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class Context:
    """What rules may read besides the dossier: settings, reference data, counts across dossiers."""

    settings: Settings
    refdata: RefData | None = None
    siren_counts: Mapping[str, int] = field(default_factory=dict)


RuleFunction = Callable[["Dossier", Context], Iterable[Finding]]


@dataclass(frozen=True)
class Rule:
    id: str
    function: RuleFunction

    @property
    def doc(self) -> str:
        return (self.function.__doc__ or "").strip()


# The rule ids of RULES.md, in the order findings are listed (hard rules first).
RULE_IDS = (
    "porteur_type", "hors_region", "hors_delai", "depenses_ineligibles", "plafond_commune", "incoherence_montants",
    "urbanisme", "archivage", "pieces_manquantes", "labo_absent", "multi_porteurs", "limite_porteur",
    "calendrier", "donnees_illisibles",
)
REGISTRY: list[Rule] = []


def rule(rule_id: str) -> Callable[[RuleFunction], RuleFunction]:
    """Registers a rule function under its RULES.md id; several functions may share one id."""
    if rule_id not in RULE_IDS:
        raise ValueError(f"unknown rule id {rule_id!r}: add it to RULE_IDS and RULES.md")

    def register(function: RuleFunction) -> RuleFunction:
        REGISTRY.append(Rule(rule_id, function))
        REGISTRY.sort(key=lambda r: RULE_IDS.index(r.id))  # stable: same-id functions keep import order
        return function

    return register


def worst(findings: Iterable[Finding]) -> str:
    """The dossier's status: the worst status of its findings, `eligible` when there is none."""
    return max((f.status for f in findings), key=SEVERITY.__getitem__, default=ELIGIBLE)


def evaluate(dossier: Dossier, context: Context) -> list[Finding]:
    """Runs every registered rule; unreadable data becomes one `donnees_illisibles` finding per champ."""
    findings: list[Finding] = []
    for registered in REGISTRY:
        try:
            findings.extend(registered.function(dossier, context))
        except Unreadable as exc:
            findings.append(Finding("donnees_illisibles", A_VERIFIER, exc.message))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            # Malformed JSON from an unexpected form: report it, never stop the run.
            message = f"Données inattendues pour la règle {registered.id} ({type(exc).__name__} : {exc})."
            findings.append(Finding("donnees_illisibles", A_VERIFIER, message))
    unique: dict[tuple[str, str], Finding] = {}
    for finding in findings:
        unique.setdefault((finding.rule, finding.message), finding)
    return list(unique.values())


# ---------------------------------------------------------------- instants and sessions


def parse_instant(value: Any) -> datetime | None:
    """An ISO 8601 instant from the API; a naive value is read as Paris time, never as UTC."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=PARIS)


def session_for(date_depot: Any, closings: Iterable[datetime]) -> int | None:
    """The first session (1-based) whose closing is at or after the filing instant; None after the last."""
    filed = parse_instant(date_depot)
    if filed is None:
        return None
    for number, closing in enumerate(sorted(closings), start=1):
        if filed <= closing:
            return number
    return None


def paris_text(moment: datetime) -> str:
    """An instant as a French reader expects it: Paris time, day first."""
    return moment.astimezone(PARIS).strftime("%d/%m/%Y à %H:%M:%S")


def euros(amount: float) -> str:
    """45000 → « 45 000 € »; cents only when there are some."""
    text = f"{amount:,.2f}" if round(amount, 2) != round(amount) else f"{amount:,.0f}"
    return text.replace(",", " ").replace(".", ",") + " €"
