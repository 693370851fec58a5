"""What the workbook shows, read from the store: one `Row` per dossier of a session, streamed.

Champ values are read through the check's role mapping (`rules.mapping`), so a form renamed on
the server or remapped in itn7.toml is read the same way by the check and by the export.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from .. import store
from ..config import PARIS, Settings
from ..rules import Dossier, RoleMap, mappings_from_settings
from ..rules.budget import is_excluded
from ..rules.engine import Unreadable, parse_instant
from ..rules.mapping import ChampSource, FormMap
from ..rules.porteur import departement_of, is_commune, is_epci
from ..store import Database, committee

DEPARTEMENTS = {
    "04": "Alpes-de-Haute-Provence", "05": "Hautes-Alpes", "06": "Alpes-Maritimes",
    "13": "Bouches-du-Rhône", "83": "Var", "84": "Vaucluse",
}
GROUPE_DEPARTEMENT = re.compile(r"^\s*(97\d|2[AB]|\d{2})\b", re.IGNORECASE)


@dataclass
class Expense:
    """One line of the « Dépenses prévisionnelles » block."""

    nature: str
    description: str
    amount: float | None

    @property
    def eligible(self) -> bool:
        return not is_excluded(self.nature)


@dataclass
class Row:
    """One dossier as the committee sees it."""

    number: int
    demarche_key: str
    demarche_number: int
    session: int
    state: str
    archived: bool
    date_depot: datetime | None
    porteur: str
    siret: str
    type_collectivite: str
    departement: str  # of the applicant's seat, from the INSEE commune code
    groupe: str
    groupe_departement: str  # whose referent instructs it: the groupe instructeur's département
    intitule: str
    thematique: str
    cout_total: float | None
    subvention: float | None
    plafonne: float | None
    status: str
    findings: list[tuple[str, str, str]]
    zrr: float | None
    taille: str
    score: float | None
    avis: str
    montant_propose: float | None
    expenses: list[Expense] = field(default_factory=list)
    modified: str | None = None  # DS's dateDerniereModification at the sync: the import spots later edits
    decision: str | None = None  # recorded decision of the committee: code, amount, motivation
    decision_amount: float | None = None
    decision_motivation: str | None = None


def paris_naive(value: Any) -> datetime | None:
    """An API instant as the naive Paris time Excel shows (Excel dates carry no time zone)."""
    moment = parse_instant(value)
    return moment.astimezone(PARIS).replace(tzinfo=None) if moment else None


def dossier_url(settings: Settings, demarche_number: int, number: int) -> str:
    """The dossier's page for instructeurs, on the host the API is read from (new or legacy)."""
    parts = urlsplit(settings.api_url)
    return f"{parts.scheme}://{parts.netloc}/procedures/{demarche_number}/dossiers/{number}"


def _safe(read: Any, *args: Any) -> Any:
    """A champ value, None when unreadable: the check already reports it as `donnees_illisibles`."""
    try:
        return read(*args)
    except (Unreadable, KeyError, TypeError, ValueError, AttributeError):
        return None


def _amount(d: ChampSource, role: str) -> float | None:
    found = _safe(d.amount, role)
    return found[1] if found else None


def capped(d: Dossier, requested: float | None, settings: Settings) -> float | None:
    """The requested grant, limited to the cap when a single commune asks (RULES.md plafond_commune)."""
    if requested is None:
        return None
    if _safe(is_commune, d) and _safe(d.yes_no, "multi_porteur") is not True:
        return min(requested, settings.plafond_commune)
    return requested


@dataclass(frozen=True)
class GrantLimits:
    """What bounds a dossier's grant: the amount requested, and whether the single-commune cap applies
    (or the committee may soften it, for an EPCI or a group of applicants)."""

    requested: float | None
    single_commune: bool
    epci: bool


def grant_limits(raw: bytes | str | None, key: str, mapping: FormMap | RoleMap) -> GrantLimits:
    """The grant's bounds read from a dossier's raw JSON through the role mapping; unknown when unreadable."""
    if raw is None:
        return GrantLimits(None, False, False)
    d = Dossier(store.parse_raw(raw), key, mapping)
    single = bool(_safe(is_commune, d)) and _safe(d.yes_no, "multi_porteur") is not True
    return GrantLimits(_amount(d, "subvention"), single, bool(_safe(is_epci, d)))


def _expenses(d: Dossier) -> list[Expense]:
    lines = []
    for row in _safe(d.rows, "depenses") or ():
        lines.append(Expense(_safe(row.text, "depense_nature") or "", _safe(row.text, "depense_description") or "",
                             _amount(row, "depense_montant")))
    return lines


def groupe_departement(groupe_label: str | None, seat: str) -> str:
    """The département of a groupe instructeur named « 04 - Alpes-de-Haute-Provence », else the seat's."""
    match = GROUPE_DEPARTEMENT.match(groupe_label or "")
    return match.group(1).upper() if match else seat


def _seat(record: dict[str, Any]) -> str:
    if record["city_code"]:
        return departement_of(record["city_code"])
    return (record["department_code"] or "").strip().upper()


def build_row(record: dict[str, Any], mapping: FormMap | RoleMap, settings: Settings,
              findings: list[tuple[str, str, str]]) -> Row:
    """One dossier's row from its stored columns, raw JSON (read by role) and check results."""
    d = Dossier(store.parse_raw(record["raw"]), record["key"], mapping)  # no raw: an unreadable stub
    priority = json.loads(record["priority"] or "{}")
    subvention = _amount(d, "subvention")
    seat = _seat(record)
    return Row(
        number=record["number"], demarche_key=record["key"], demarche_number=record["demarche_number"],
        session=record["session"], state=record["state"] or "", archived=bool(record["archived"]),
        date_depot=paris_naive(record["date_depot"]),
        porteur=store.applicant_name(record["raison_sociale"], record["prenom"], record["nom"]),
        siret=record["siret"] or "",
        type_collectivite=_safe(d.text, "type_collectivite") or "", departement=seat,
        groupe=record["groupe_instructeur_label"] or "",
        groupe_departement=groupe_departement(record["groupe_instructeur_label"], seat),
        intitule=_safe(d.text, "intitule") or "", thematique=_safe(d.text, "thematique") or "",
        cout_total=_amount(d, "cout_total"), subvention=subvention, plafonne=capped(d, subvention, settings),
        status=record["status"], findings=findings, zrr=priority.get("zrr"), taille=priority.get("taille") or "",
        score=record["score"], avis=_safe(d.text, "avis") or "", montant_propose=_amount(d, "montant_propose"),
        expenses=_expenses(d), modified=record["date_derniere_modification"], decision=record["decision"],
        decision_amount=record["decision_amount"], decision_motivation=record["decision_motivation"],
    )


def reading_forms(db: Database, settings: Settings) -> dict[str, FormMap | RoleMap]:
    """How to read each démarche's dossiers: its form resolved over every stored revision, so renamed champs
    are followed by id as `itn7 check` follows them; the configured roles for a démarche with no form stored."""
    from ..check import role_maps

    return {**mappings_from_settings(settings.mapping), **role_maps(db, settings)}


def session_rows(db: Database, settings: Settings, session: int,
                 demarche: str | None = None) -> Iterator[Row]:
    """The non-deleted dossiers of one session (0: of every session), by number, with their check results;
    a dossier the API could not serialise is listed with what is known of it and its finding."""
    mappings = reading_forms(db, settings)
    for batch in committee.session_records(db, session=session, demarche=demarche):
        findings = committee.findings(db, [r["number"] for r in batch])
        for record in batch:
            mapping = mappings.get(record["key"]) or mappings["general"]
            found = findings.get(record["number"], [])
            if record["unreadable"] and not found:
                found = [("donnees_illisibles", "a_verifier", f"Dossier illisible par l'API : {record['unreadable']}")]
            yield build_row(record, mapping, settings, found)


@dataclass
class SessionTotals:
    """Requested, proposed and attributed (the committee's « Retenu ») amounts of one session's dossiers."""

    dossiers: int = 0
    requested: float = 0.0
    proposed: float = 0.0
    attributed: float = 0.0
    decided: int = 0  # dossiers with a recorded decision


def session_totals(db: Database, settings: Settings, before: int,
                   demarche: str | None = None) -> dict[int, SessionTotals]:
    """The amounts of every session before `before`, for the envelope tables."""
    totals = {n: SessionTotals() for n in range(1, before)}
    if not totals:  # the first session: nothing to read (resolving the forms alone takes a tenth of a second)
        return totals
    mappings = reading_forms(db, settings)
    for batch in committee.session_records(db, before=before, demarche=demarche):
        for record in batch:
            d = Dossier(store.parse_raw(record["raw"]), record["key"],
                        mappings.get(record["key"]) or mappings["general"])
            total = totals[record["session"]]
            total.dossiers += 1
            total.requested += _amount(d, "subvention") or 0.0
            total.proposed += _amount(d, "montant_propose") or 0.0
            if record["decision"]:
                total.decided += 1
                if record["decision"] == "retenu":
                    total.attributed += record["decision_amount"] or 0.0
    return totals


def earlier_totals(db: Database, settings: Settings, session: int,
                   demarche: str | None = None) -> dict[int, SessionTotals]:
    """Requested, proposed and attributed amounts of the sessions before `session`, for the envelope table."""
    return session_totals(db, settings, session, demarche)


@dataclass
class Freshness:
    """When the data was synced and checked, and what the session leaves out."""

    synced_at: datetime | None
    checked_at: datetime | None
    ruleset: str | None
    deleted: int
    out_of_session: int


def freshness(db: Database, session: int, demarche: str | None = None) -> Freshness:
    """The dates the Synthèse shows, and the dossiers it does not list (deleted, filed after the last closing)."""
    found = committee.freshness(db, demarche)
    return Freshness(paris_naive(found["synced_at"]), paris_naive(found["checked_at"]), found["ruleset"],
                     found["deleted"], found["out_of_session"])
