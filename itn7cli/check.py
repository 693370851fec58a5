"""`itn7 check`: run the call's rules on the stored dossiers and keep the results in the database.

A dossier is re-checked only when it changed since its last check (synced again, modified,
restored), when the rule set or the configuration changed, or when the number of dossiers of its
applicant changed (`limite_porteur` depends on every dossier). `force=True` re-checks everything.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlite_utils

from . import refdata as refdata_mod
from .config import Settings
from .errors import StoreError
from .rules import ROLES, RULESET_VERSION, Context, Dossier, evaluate, mappings_from_settings, session_for, worst
from .rules.priority import priority

BATCH = 500  # dossiers parsed and written per transaction: bounded memory, few commits


@dataclass
class Summary:
    """What a run did: how many dossiers were (re)checked out of how many."""

    checked: int = 0
    total: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    by_session: Counter[int | None] = field(default_factory=Counter)


def ensure_synced(db: sqlite_utils.Database) -> None:
    """Raises StoreError unless at least one démarche was synced into this database."""
    if "demarches" not in db.table_names() or not db.execute("SELECT count(*) FROM demarches").fetchone()[0]:
        raise StoreError("La base n'a jamais été synchronisée : lancez d'abord « itn7 sync ».")


def config_hash(settings: Settings, ref_meta: list[dict[str, Any]]) -> str:
    """A fingerprint of everything besides the dossier that changes verdicts: call settings, mapping, refdata."""
    relevant = {
        "sessions": [s.isoformat() for s in settings.sessions], "plafond_commune": settings.plafond_commune,
        "plafond_epci_statut": settings.plafond_epci_statut, "limite_porteur": settings.limite_porteur,
        "taille": [settings.taille_petite, settings.taille_grande], "fin": settings.fin_projet_max.isoformat(),
        "mapping": settings.mapping, "refdata": [(m["name"], m["imported_at"], m["rows"]) for m in ref_meta],
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]


def siren_counts(db: sqlite_utils.Database) -> dict[str, int]:
    """Non-deleted dossiers per applicant SIREN, across both démarches."""
    rows = db.execute("SELECT siren, count(*) FROM dossiers WHERE deletion_state IS NULL AND raw IS NOT NULL "
                      "AND siren IS NOT NULL GROUP BY siren")
    return {siren: count for siren, count in rows}


def _to_check(db: sqlite_utils.Database, chash: str, counts: dict[str, int], force: bool) -> list[int]:
    sql = """SELECT d.number, d.date_derniere_modification, d.synced_at, d.siren, c.number, c.ruleset_version,
                    c.config_hash, c.dossier_modified, c.dossier_synced, c.siren_count
             FROM dossiers d JOIN demarches m ON m.number = d.demarche_number
             LEFT JOIN checks c ON c.number = d.number
             WHERE d.raw IS NOT NULL AND d.deletion_state IS NULL ORDER BY d.number"""
    numbers = []
    for number, modified, synced, siren, checked, version, hash_, c_modified, c_synced, c_count in db.execute(sql):
        if (force or checked is None or version != RULESET_VERSION or hash_ != chash or modified != c_modified
                or synced != c_synced or (siren is not None and counts.get(siren, 0) != c_count)):
            numbers.append(number)
    return numbers


def _batches(numbers: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(numbers), BATCH):
        yield numbers[start:start + BATCH]


def run(db: sqlite_utils.Database, settings: Settings, *, force: bool = False) -> Summary:
    """Checks every non-deleted dossier that needs it and stores the results; returns what was done."""
    ensure_synced(db)
    mappings = mappings_from_settings(settings.mapping)
    ref = refdata_mod.load(db)
    chash = config_hash(settings, refdata_mod.meta(db))
    counts = siren_counts(db)
    context = Context(settings=settings, refdata=ref, siren_counts=counts)
    with db.atomic():  # results of dossiers deleted upstream since their check go away
        gone = "SELECT number FROM dossiers WHERE deletion_state IS NOT NULL"
        db.execute(f"DELETE FROM check_findings WHERE dossier_number IN ({gone})")
        db.execute(f"DELETE FROM checks WHERE number IN ({gone})")
    numbers = _to_check(db, chash, counts, force)
    summary = Summary(checked=len(numbers))
    for batch in _batches(numbers):
        marks = ",".join("?" * len(batch))
        rows = db.execute(
            "SELECT d.number, d.demarche_number, m.key, d.date_derniere_modification, d.synced_at, d.siren, d.raw "
            f"FROM dossiers d JOIN demarches m ON m.number = d.demarche_number WHERE d.number IN ({marks})", batch,
        ).fetchall()
        checks, findings = [], []
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        for number, demarche_number, key, modified, synced, siren, raw in rows:
            dossier = Dossier(json.loads(raw), key, mappings.get(key) or mappings["general"])
            found = evaluate(dossier, context)
            prio = priority(dossier, context)
            checks.append({
                "number": number, "demarche_number": demarche_number,
                "session": session_for(dossier.date_depot, settings.sessions), "status": worst(found),
                "priority": json.dumps(prio, ensure_ascii=False), "score": prio["score"],
                "ruleset_version": RULESET_VERSION, "config_hash": chash, "dossier_modified": modified,
                "dossier_synced": synced, "siren": siren, "siren_count": counts.get(siren or "", 0),
                "checked_at": stamp,
            })
            findings += [{"dossier_number": number, "position": i, **f.as_dict()} for i, f in enumerate(found)]
        with db.atomic():
            db.execute(f"DELETE FROM check_findings WHERE dossier_number IN ({marks})", batch)
            db.execute(f"DELETE FROM checks WHERE number IN ({marks})", batch)
            db.table("checks").insert_all(checks, pk="number")
            db.table("check_findings").insert_all(findings, pk=("dossier_number", "position"))
    for session, status, count in db.execute(
            "SELECT c.session, c.status, count(*) FROM checks c JOIN dossiers d ON d.number = c.number "
            "WHERE d.deletion_state IS NULL GROUP BY c.session, c.status"):
        summary.total += count
        summary.by_status[status] += count
        summary.by_session[session] += count
    return summary


def results(db: sqlite_utils.Database, session: int | None = None, demarche: str | None = None,
            status: str | None = None) -> list[dict[str, Any]]:
    """Stored results of non-deleted dossiers, as the JSON of `itn7 check --format json`, by dossier number."""
    ensure_synced(db)
    sql = ("SELECT c.number, m.key, c.session, c.status, c.priority FROM checks c "
           "JOIN dossiers d ON d.number = c.number JOIN demarches m ON m.number = d.demarche_number "
           "WHERE d.deletion_state IS NULL")
    params: list[Any] = []
    for clause, value in (("c.session = ?", session), ("m.key = ?", demarche), ("c.status = ?", status)):
        if value is not None:
            sql += f" AND {clause}"
            params.append(value)
    rows = db.execute(sql + " ORDER BY c.number", params).fetchall()
    by_dossier: dict[int, list[dict[str, str]]] = {}
    for number, rule, status_, message in db.execute(
            "SELECT dossier_number, rule, status, message FROM check_findings ORDER BY dossier_number, position"):
        by_dossier.setdefault(number, []).append({"rule": rule, "status": status_, "message": message})
    return [{"demarche": key, "number": number, "session": session_, "status": status_,
             "findings": by_dossier.get(number, []), "priority": json.loads(priority_)}
            for number, key, session_, status_, priority_ in rows]


def stale(db: sqlite_utils.Database) -> bool:
    """True when stored results no longer match the synced dossiers: a dossier new, changed, restored or
    deleted since its check, or results from another rule set. (Settings changes need `run` to see.)"""
    ensure_synced(db)
    if "checks" not in db.table_names():
        return True
    row = db.execute(
        """SELECT count(*) FROM dossiers d LEFT JOIN checks c ON c.number = d.number
           WHERE d.raw IS NOT NULL AND d.deletion_state IS NULL AND (c.number IS NULL
                 OR c.ruleset_version != ? OR d.synced_at IS NOT c.dossier_synced
                 OR d.date_derniere_modification IS NOT c.dossier_modified)""", [RULESET_VERSION]).fetchone()
    deleted = db.execute("SELECT count(*) FROM checks c JOIN dossiers d ON d.number = c.number "
                         "WHERE d.deletion_state IS NOT NULL").fetchone()
    return bool(row[0] or deleted[0])


def describe_champs(db: sqlite_utils.Database, settings: Settings) -> list[dict[str, Any]]:
    """Per démarche and synced revision: every champ descriptor with the role it serves, and unmapped roles."""
    ensure_synced(db)
    mappings = mappings_from_settings(settings.mapping)
    revisions = db.execute(
        "SELECT m.key, m.number, r.id, r.is_active, r.date_publication FROM revisions r "
        "JOIN demarches m ON m.number = r.demarche_number ORDER BY m.key, r.date_creation, r.id").fetchall()
    described = []
    for key, number, revision_id, active, published in revisions:
        mapping = mappings.get(key)
        descriptors = [dict(zip(("id", "kind", "parent_id", "type", "label"), row, strict=True)) for row in db.execute(
            "SELECT id, kind, parent_id, type, label FROM champ_descriptors WHERE revision_id = ? "
            "ORDER BY kind, parent_id IS NOT NULL, position", [revision_id])]
        roles_of: dict[str, list[str]] = {}
        unmapped = []
        for role in ROLES:
            if mapping is None or role.name not in mapping.targets:
                continue
            scope = [d for d in descriptors
                     if d["kind"] == role.kind and (d["parent_id"] is None) == (role.parent is None)]
            by_label = {d["label"]: d for d in scope if d["label"]}
            found = mapping.find(role.name, {d["id"]: d for d in scope}, by_label)
            if found is None:
                unmapped.append(role.name)
            else:
                roles_of.setdefault(found["id"], []).append(role.name)
        for descriptor in descriptors:
            descriptor["roles"] = roles_of.get(descriptor["id"], [])
        described.append({"demarche": key or str(number), "revision": revision_id, "active": bool(active),
                          "published": published, "descriptors": descriptors, "unmapped": unmapped})
    return described
