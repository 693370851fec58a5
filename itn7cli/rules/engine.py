"""The rule engine: findings and statuses, the registry of rules, sessions, evaluation of one dossier.

Every rule is declared once (`declare`, or `rule(..., order=…)`) with its id from RULES.md, its
French title and label and its status family, and is one or more small functions. A rule yields
findings; a champ it cannot read raises `Unreadable`, which the engine turns into a
`donnees_illisibles` finding, so a changed form never stops a run. Any other exception is a bug.
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

# Bump whenever a rule, a keyword list, the score or the reading of forms changes: every stored result becomes stale.
RULESET_VERSION = "2021.3-3"

ELIGIBLE = "eligible"
A_VERIFIER = "a_verifier"
INELIGIBLE = "ineligible"
SEVERITY = {ELIGIBLE: 0, A_VERIFIER: 1, INELIGIBLE: 2}


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
class RuleSpec:
    """A rule as people read it, declared once: the workbook, the annotation, `itn7 check` and the
    README's table all read these texts.

    `order` places its findings (hard rules first); `title` names it in a column (« Hors région »);
    `label` names it inside a sentence (« siège hors région »); `family` lists the statuses it can give
    besides information (an `eligible` finding)."""

    id: str
    order: int
    title: str
    label: str
    family: tuple[str, ...]


@dataclass(frozen=True)
class Rule:
    id: str
    function: RuleFunction

    @property
    def doc(self) -> str:
        return (self.function.__doc__ or "").strip()


SPECS: dict[str, RuleSpec] = {}
RULE_IDS: list[str] = []  # every declared rule id, in the order findings are listed
REGISTRY: list[Rule] = []  # every rule function, in that order


def declare(rule_id: str, *, order: int, title: str, label: str, family: tuple[str, ...]) -> RuleSpec:
    """Declares a rule once: its id (as in RULES.md), its place, its French title and label, its statuses."""
    if rule_id in SPECS:
        raise ValueError(f"rule {rule_id!r} is declared twice")
    if any(spec.order == order for spec in SPECS.values()):
        raise ValueError(f"rule {rule_id!r}: order {order} is taken")
    spec = SPECS[rule_id] = RuleSpec(rule_id, order, title, label, family)
    RULE_IDS[:] = sorted(SPECS, key=lambda i: SPECS[i].order)
    REGISTRY.sort(key=_position)
    return spec


def _position(registered: Rule) -> int:
    spec = SPECS.get(registered.id)
    return spec.order if spec else 1_000_000  # declared later in the same package import


def rule(rule_id: str, *, order: int | None = None, title: str = "", label: str = "",
         family: tuple[str, ...] = ()) -> Callable[[RuleFunction], RuleFunction]:
    """Registers a rule function; with `order`, declares the rule as well (once per id, see `declare`).

    Several functions may share one id: the first declares it, the others give only the id."""
    if order is not None:
        declare(rule_id, order=order, title=title, label=label, family=family)

    def register(function: RuleFunction) -> RuleFunction:
        REGISTRY.append(Rule(rule_id, function))
        REGISTRY.sort(key=_position)  # stable: same-id functions keep import order
        return function

    return register


def check_registry() -> None:
    """Every registered function belongs to a declared rule: called once all rule modules are imported."""
    undeclared = sorted({r.id for r in REGISTRY} - set(SPECS))
    if undeclared:
        raise ValueError(f"rules registered but never declared: {', '.join(undeclared)}")


def rule_titles() -> dict[str, str]:
    """Rule id → title, for columns (« Hors région »)."""
    return {rule_id: SPECS[rule_id].title for rule_id in RULE_IDS}


def rule_labels() -> dict[str, str]:
    """Rule id → label, for sentences (« siège hors région »)."""
    return {rule_id: SPECS[rule_id].label for rule_id in RULE_IDS}


UNREADABLE = "donnees_illisibles"
declare(UNREADABLE, order=140, title="Données illisibles", label="données illisibles", family=(A_VERIFIER,))


def worst(findings: Iterable[Finding]) -> str:
    """The dossier's status: the worst status of its findings, `eligible` when there is none."""
    return max((f.status for f in findings), key=SEVERITY.__getitem__, default=ELIGIBLE)


def evaluate(dossier: Dossier, context: Context) -> list[Finding]:
    """Runs every registered rule; unreadable data becomes one `donnees_illisibles` finding per message.

    Only `Unreadable` is caught: any other exception in a rule is a bug, and surfaces as one."""
    findings: list[Finding] = []
    for registered in REGISTRY:
        try:
            findings.extend(registered.function(dossier, context))
        except Unreadable as exc:
            findings.append(Finding(UNREADABLE, A_VERIFIER, exc.message))
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
