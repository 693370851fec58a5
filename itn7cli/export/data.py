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

import sqlite_utils

from ..config import PARIS, Settings
from ..rules import Dossier, RoleMap, mappings_from_settings
from ..rules.budget import is_excluded
from ..rules.engine import Unreadable, parse_instant
from ..rules.mapping import ChampSource
from ..rules.porteur import departement_of, is_commune

BATCH = 500  # dossiers read per query: memory stays flat whatever the session's size

DEPARTEMENTS = {
    "04": "Alpes-de-Haute-Provence", "05": "Hautes-Alpes", "06": "Alpes-Maritimes",
    "13": "Bouches-du-Rhône", "83": "Var", "84": "Vaucluse",
}
DEMARCHE_LABELS = {"general": "Générale", "labo": "Laboratoire"}
STATE_LABELS = {
    "en_construction": "En construction", "en_instruction": "En instruction", "accepte": "Accepté",
    "refuse": "Refusé", "sans_suite": "Classé sans suite",
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


def _porteur(record: dict[str, Any]) -> str:
    name = record["raison_sociale"] or " ".join(p for p in (record["prenom"], record["nom"]) if p)
    return name or ""


def _seat(record: dict[str, Any]) -> str:
    if record["city_code"]:
        return departement_of(record["city_code"])
    return (record["department_code"] or "").strip().upper()


def build_row(record: dict[str, Any], mapping: RoleMap, settings: Settings,
              findings: list[tuple[str, str, str]]) -> Row:
    """One dossier's row from its stored columns, raw JSON (read by role) and check results."""
    d = Dossier(json.loads(record["raw"]), record["key"], mapping)
    priority = json.loads(record["priority"] or "{}")
    subvention = _amount(d, "subvention")
    seat = _seat(record)
    return Row(
        number=record["number"], demarche_key=record["key"], demarche_number=record["demarche_number"],
        session=record["session"], state=record["state"] or "", archived=bool(record["archived"]),
        date_depot=paris_naive(record["date_depot"]), porteur=_porteur(record), siret=record["siret"] or "",
        type_collectivite=_safe(d.text, "type_collectivite") or "", departement=seat,
        groupe=record["groupe_instructeur_label"] or "",
        groupe_departement=groupe_departement(record["groupe_instructeur_label"], seat),
        intitule=_safe(d.text, "intitule") or "", thematique=_safe(d.text, "thematique") or "",
        cout_total=_amount(d, "cout_total"), subvention=subvention, plafonne=capped(d, subvention, settings),
        status=record["status"], findings=findings, zrr=priority.get("zrr"), taille=priority.get("taille") or "",
        score=record["score"], avis=_safe(d.text, "avis") or "", montant_propose=_amount(d, "montant_propose"),
        expenses=_expenses(d),
    )


SELECT = """SELECT d.number, m.key, d.demarche_number, c.session, d.state, d.archived, d.date_depot, d.siret,
       d.raison_sociale, d.prenom, d.nom, d.city_code, d.department_code, d.groupe_instructeur_label, d.raw,
       c.status, c.priority, c.score
FROM checks c JOIN dossiers d ON d.number = c.number JOIN demarches m ON m.number = d.demarche_number
WHERE d.deletion_state IS NULL AND d.raw IS NOT NULL"""


def _records(db: sqlite_utils.Database, where: str, params: list[Any],
             demarche: str | None) -> Iterator[list[dict[str, Any]]]:
    sql = f"{SELECT} AND {where}"
    if demarche:
        sql += " AND m.key = ?"
        params = [*params, demarche]
    cursor = db.execute(sql + " ORDER BY d.number", params)
    names = [c[0] for c in cursor.description]
    while batch := cursor.fetchmany(BATCH):
        yield [dict(zip(names, values, strict=True)) for values in batch]


def _findings(db: sqlite_utils.Database, numbers: list[int]) -> dict[int, list[tuple[str, str, str]]]:
    marks = ",".join("?" * len(numbers))
    found: dict[int, list[tuple[str, str, str]]] = {}
    for number, rule, status, message in db.execute(
            f"SELECT dossier_number, rule, status, message FROM check_findings WHERE dossier_number IN ({marks}) "
            "ORDER BY dossier_number, position", numbers):
        found.setdefault(number, []).append((rule, status, message))
    return found


def session_rows(db: sqlite_utils.Database, settings: Settings, session: int,
                 demarche: str | None = None) -> Iterator[Row]:
    """The non-deleted dossiers of one session, by number, with their check results."""
    mappings = mappings_from_settings(settings.mapping)
    for batch in _records(db, "c.session = ?", [session], demarche):
        findings = _findings(db, [r["number"] for r in batch])
        for record in batch:
            mapping = mappings.get(record["key"]) or mappings["general"]
            yield build_row(record, mapping, settings, findings.get(record["number"], []))


@dataclass
class SessionTotals:
    """Requested and proposed amounts of one session's dossiers."""

    dossiers: int = 0
    requested: float = 0.0
    proposed: float = 0.0


def earlier_totals(db: sqlite_utils.Database, settings: Settings, session: int,
                   demarche: str | None = None) -> dict[int, SessionTotals]:
    """Requested and proposed amounts of the sessions before `session`, for the envelope table."""
    mappings = mappings_from_settings(settings.mapping)
    totals = {n: SessionTotals() for n in range(1, session)}
    for batch in _records(db, "c.session < ?", [session], demarche):
        for record in batch:
            d = Dossier(json.loads(record["raw"]), record["key"], mappings.get(record["key"]) or mappings["general"])
            total = totals[record["session"]]
            total.dossiers += 1
            total.requested += _amount(d, "subvention") or 0.0
            total.proposed += _amount(d, "montant_propose") or 0.0
    return totals


@dataclass
class Freshness:
    """When the data was synced and checked, and what the session leaves out."""

    synced_at: datetime | None
    checked_at: datetime | None
    ruleset: str | None
    deleted: int
    out_of_session: int


def freshness(db: sqlite_utils.Database, session: int, demarche: str | None = None) -> Freshness:
    """The dates the Synthèse shows, and the dossiers it does not list (deleted, filed after the last closing)."""
    synced = db.execute("SELECT max(last_success_at) FROM sync_state").fetchone()[0]
    checked, ruleset = db.execute("SELECT max(checked_at), max(ruleset_version) FROM checks").fetchone()
    scope, params = ("AND d.demarche_number IN (SELECT number FROM demarches WHERE key = ?)",
                     [demarche]) if demarche else ("", [])
    deleted = db.execute(f"SELECT count(*) FROM dossiers d WHERE d.deletion_state IS NOT NULL {scope}",
                         params).fetchone()[0]
    out = db.execute("SELECT count(*) FROM checks c JOIN dossiers d ON d.number = c.number "
                     f"WHERE c.session IS NULL AND d.deletion_state IS NULL {scope}", params).fetchone()[0]
    return Freshness(paris_naive(synced), paris_naive(checked), ruleset, deleted, out)
